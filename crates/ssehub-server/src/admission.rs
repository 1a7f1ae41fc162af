//! Admission: the limits a subscribe or publish request must pass before
//! the hub does any work for it, and the slots an admitted subscriber holds
//! for as long as its stream lives.
//!
//! - concurrent subscriptions per client IP (the TCP peer address) and per
//!   token subject (`sub`; anonymous subscribers are counted per IP only):
//!   `429`;
//! - open subscriber streams over the whole hub (the connection ceiling):
//!   `503`;
//! - subscribe requests per client IP and publications per token subject
//!   (or per token, for a token without `sub`), each a token bucket with a
//!   burst: `429`.
//!
//! Every refusal carries `Retry-After` and is counted in
//! `ssehub_limited_total{limit}`. The slots are taken once at connect and
//! given back once when the [`Slots`] guard is dropped, which the
//! subscriber's response body holds: whatever ends the stream (the client
//! leaving, the drain, its lifetime, the broker dropping a slow client)
//! frees them. Nothing here runs per event.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::sync::lock;

/// How long a client refused for a concurrency limit is asked to wait: a
/// slot frees only when another stream ends, which no one can predict.
const SLOT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How often the rate limiters forget the keys whose buckets are full
/// again (they would otherwise keep one entry per IP or token ever seen).
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The limits, as configured (`0`: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LimitsConfig {
    pub per_ip: u32,
    pub per_subject: u32,
    pub ceiling: usize,
    pub publish_rate: u32,
    pub publish_burst: u32,
    pub subscribe_rate: u32,
    pub subscribe_burst: u32,
}

/// Which limit refused a request: the `limit` label of
/// `ssehub_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Limit {
    ConnectionsPerIp,
    ConnectionsPerSubject,
    Connections,
    PublishRate,
    SubscribeRate,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Self::ConnectionsPerIp => "connections_per_ip",
            Self::ConnectionsPerSubject => "connections_per_subject",
            Self::Connections => "connections",
            Self::PublishRate => "publish_rate",
            Self::SubscribeRate => "subscribe_rate",
        }
    }

    /// `503` for the hub's own ceiling (another node may have room), `429`
    /// for what the client itself asked too much of.
    fn status(self) -> StatusCode {
        match self {
            Self::Connections => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// Label of the refusal-by-limit counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct LimitLabels {
    /// `connections_per_ip`, `connections_per_subject`, `connections`,
    /// `publish_rate` or `subscribe_rate`.
    pub limit: &'static str,
}

/// A request refused by a limit, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub(crate) struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self.limit {
            Limit::ConnectionsPerIp => "too many subscriptions from this address",
            Limit::ConnectionsPerSubject => "too many subscriptions for this subject",
            Limit::Connections => "the hub holds as many connections as it can",
            Limit::PublishRate => "too many publications for this token",
            Limit::SubscribeRate => "too many subscribe requests from this address",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.limit.status()
    }

    /// The answer: the status, `Retry-After` in whole seconds (at least 1)
    /// and the reason as plain text.
    pub fn response(&self) -> Response {
        let seconds = self.retry_after.as_secs()
            + u64::from(self.retry_after.subsec_nanos() > 0 || self.retry_after.is_zero());
        (
            self.status(),
            [(header::RETRY_AFTER, seconds.to_string())],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// Who a publication's rate is counted against: the token's subject, or,
/// for a token without one, the token itself (by a keyed hash of its text,
/// so the table does not keep tokens).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Publisher {
    Subject(Arc<str>),
    Token(u64),
}

/// The limits and their live counts.
#[derive(Debug)]
pub(crate) struct Admission {
    config: LimitsConfig,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    per_subject: Mutex<HashMap<Arc<str>, u32>>,
    open: AtomicUsize,
    subscribe_rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    publish_rate: Option<DefaultKeyedRateLimiter<Publisher>>,
    token_hasher: RandomState,
    limited: Family<LimitLabels, Counter>,
    /// Set once the per-address limit refused someone: its first refusal
    /// is logged as a warning, since behind an unlisted reverse proxy
    /// every client shares one address and the limit refuses them all.
    warned_per_ip: AtomicBool,
}

/// The slots one subscriber holds; dropping it gives them back.
#[derive(Debug)]
pub(crate) struct Slots {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
    subject: Option<Arc<str>>,
    counted: bool,
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    // Validated at start; a zero burst cannot reach here with a rate.
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Admission {
    /// The limits of `config`, counting refusals in `limited`. Starts a
    /// task that trims the rate limiters' tables while the admission lives.
    pub fn new(config: LimitsConfig, limited: Family<LimitLabels, Counter>) -> Arc<Self> {
        let admission = Arc::new(Self {
            config,
            per_ip: Mutex::default(),
            per_subject: Mutex::default(),
            open: AtomicUsize::new(0),
            subscribe_rate: quota(config.subscribe_rate, config.subscribe_burst)
                .map(RateLimiter::keyed),
            publish_rate: quota(config.publish_rate, config.publish_burst).map(RateLimiter::keyed),
            token_hasher: RandomState::new(),
            limited,
            warned_per_ip: AtomicBool::new(false),
        });
        if admission.subscribe_rate.is_some() || admission.publish_rate.is_some() {
            tokio::spawn(forget(Arc::downgrade(&admission)));
        }
        admission
    }

    /// Open subscriber streams.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn refuse(&self, limit: Limit, retry_after: Duration) -> Refusal {
        self.limited
            .get_or_create(&LimitLabels {
                limit: limit.label(),
            })
            .inc();
        Refusal { limit, retry_after }
    }

    /// Admits a subscribe request from `peer` (when known): its request
    /// rate (unless `rate_paid`: the same request already passed it), its
    /// address's concurrent streams, then the hub's ceiling.
    ///
    /// # Errors
    /// The [`Refusal`] of the first limit it exceeds.
    pub fn subscriber(
        self: &Arc<Self>,
        peer: Option<IpAddr>,
        rate_paid: bool,
    ) -> Result<Slots, Refusal> {
        if !rate_paid
            && let (Some(limiter), Some(ip)) = (&self.subscribe_rate, peer)
            && let Err(not_until) = limiter.check_key(&ip)
        {
            let wait = not_until.wait_time_from(limiter.clock().now());
            return Err(self.refuse(Limit::SubscribeRate, wait));
        }
        // From here on, the guard gives back whatever was taken.
        let mut slots = Slots {
            admission: self.clone(),
            ip: None,
            subject: None,
            counted: false,
        };
        if self.config.per_ip > 0
            && let Some(ip) = peer
        {
            if !take(&self.per_ip, ip, self.config.per_ip) {
                if !self.warned_per_ip.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %ip,
                        limit = self.config.per_ip,
                        "--max-connections-per-ip refused a subscriber (logged once); if this address is a reverse proxy, list it with --trusted-proxy so its clients count one by one"
                    );
                }
                return Err(self.refuse(Limit::ConnectionsPerIp, SLOT_RETRY_AFTER));
            }
            slots.ip = Some(ip);
        }
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        slots.counted = true;
        if self.config.ceiling > 0 && before >= self.config.ceiling {
            return Err(self.refuse(Limit::Connections, SLOT_RETRY_AFTER));
        }
        Ok(slots)
    }

    /// Counts a publication against `publisher`'s rate.
    ///
    /// # Errors
    /// [`Refusal`] when its bucket is empty, with the time until it holds
    /// a token again.
    pub fn publish(&self, publisher: &Publisher) -> Result<(), Refusal> {
        let Some(limiter) = &self.publish_rate else {
            return Ok(());
        };
        limiter.check_key(publisher).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            self.refuse(Limit::PublishRate, wait)
        })
    }

    /// The rate key of a publisher: its `subject`, else its `token`.
    pub fn publisher(&self, subject: Option<&Arc<str>>, token: Option<&str>) -> Publisher {
        match subject {
            Some(subject) => Publisher::Subject(subject.clone()),
            None => Publisher::Token(self.token_hasher.hash_one(token.unwrap_or_default())),
        }
    }
}

impl Slots {
    /// Also holds a slot of `subject`'s concurrent streams.
    ///
    /// # Errors
    /// [`Refusal`] when the subject already holds as many as allowed; the
    /// slots taken so far are given back when `self` is dropped.
    pub fn for_subject(&mut self, subject: &str) -> Result<(), Refusal> {
        let admission = &self.admission;
        let limit = admission.config.per_subject;
        if limit == 0 || self.subject.is_some() {
            return Ok(());
        }
        let subject: Arc<str> = subject.into();
        if !take(&admission.per_subject, subject.clone(), limit) {
            return Err(admission.refuse(Limit::ConnectionsPerSubject, SLOT_RETRY_AFTER));
        }
        self.subject = Some(subject);
        Ok(())
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let admission = &self.admission;
        if let Some(ip) = self.ip.take() {
            give_back(&admission.per_ip, &ip);
        }
        if let Some(subject) = self.subject.take() {
            give_back(&admission.per_subject, &subject);
        }
        if self.counted {
            admission.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Takes one of `key`'s `limit` slots, if one is free.
fn take<K: Hash + Eq>(table: &Mutex<HashMap<K, u32>>, key: K, limit: u32) -> bool {
    let mut table = lock(table);
    let held = table.entry(key).or_insert(0);
    if *held >= limit {
        return false;
    }
    *held += 1;
    true
}

/// Gives one of `key`'s slots back; a key holding none leaves the table.
fn give_back<K: Hash + Eq + Clone>(table: &Mutex<HashMap<K, u32>>, key: &K) {
    let mut table = lock(table);
    if let Entry::Occupied(mut held) = table.entry(key.clone()) {
        *held.get_mut() -= 1;
        if *held.get() == 0 {
            held.remove();
        }
    }
}

/// Forgets, now and then, the keys whose buckets are full again: their
/// state says nothing a fresh bucket would not.
async fn forget(admission: Weak<Admission>) {
    let mut every = tokio::time::interval(FORGET_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(admission) = admission.upgrade() else {
            return;
        };
        if let Some(limiter) = &admission.subscribe_rate {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &admission.publish_rate {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(config: LimitsConfig) -> (Arc<Admission>, Family<LimitLabels, Counter>) {
        let limited = Family::<LimitLabels, Counter>::default();
        (Admission::new(config, limited.clone()), limited)
    }

    fn count(limited: &Family<LimitLabels, Counter>, limit: Limit) -> u64 {
        limited
            .get_or_create(&LimitLabels {
                limit: limit.label(),
            })
            .get()
    }

    #[tokio::test]
    async fn slots_are_given_back_when_the_guard_drops() {
        let (admission, limited) = admission(LimitsConfig {
            per_ip: 2,
            per_subject: 1,
            ceiling: 3,
            ..LimitsConfig::default()
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.subscriber(Some(a), false).unwrap();
        let mut second = admission.subscriber(Some(a), false).unwrap();
        let refused = admission.subscriber(Some(a), false).unwrap_err();
        assert_eq!(refused.limit, Limit::ConnectionsPerIp);
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        second.for_subject("alice").unwrap();
        let mut third = admission.subscriber(Some(b), false).unwrap();
        assert_eq!(
            third.for_subject("alice").unwrap_err().limit,
            Limit::ConnectionsPerSubject
        );
        assert_eq!(admission.open(), 3);
        let over = admission.subscriber(Some(b), false).unwrap_err();
        assert_eq!(over.limit, Limit::Connections);
        assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(admission.open(), 3, "a refused subscriber holds nothing");
        drop(second);
        third.for_subject("alice").unwrap();
        drop((first, third));
        assert_eq!(admission.open(), 0);
        assert!(lock(&admission.per_ip).is_empty());
        assert!(lock(&admission.per_subject).is_empty());
        assert_eq!(count(&limited, Limit::ConnectionsPerIp), 1);
        assert_eq!(count(&limited, Limit::ConnectionsPerSubject), 1);
        assert_eq!(count(&limited, Limit::Connections), 1);
    }

    #[tokio::test]
    async fn rates_allow_their_burst_then_say_when_to_come_back() {
        let (admission, limited) = admission(LimitsConfig {
            publish_rate: 1,
            publish_burst: 3,
            subscribe_rate: 2,
            subscribe_burst: 2,
            ..LimitsConfig::default()
        });
        let alice = admission.publisher(Some(&"alice".into()), Some("t1"));
        let anonymous = admission.publisher(None, Some("t2"));
        assert_ne!(admission.publisher(None, Some("t3")), anonymous);
        for _ in 0..3 {
            admission.publish(&alice).unwrap();
        }
        let refused = admission.publish(&alice).unwrap_err();
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert_eq!(refused.response().headers()["retry-after"], "1");
        admission.publish(&anonymous).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let held = [
            admission.subscriber(Some(ip), false).unwrap(),
            admission.subscriber(Some(ip), false).unwrap(),
        ];
        let refused = admission.subscriber(Some(ip), false).unwrap_err();
        assert_eq!(refused.limit, Limit::SubscribeRate);
        // The same request seen again (prepaid) is not charged twice.
        let again = admission.subscriber(Some(ip), true).unwrap();
        assert_eq!(admission.open(), 3);
        drop((held, again));
        assert_eq!(count(&limited, Limit::PublishRate), 1);
        assert_eq!(count(&limited, Limit::SubscribeRate), 1);
    }
}
