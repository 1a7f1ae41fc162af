//! Tokens already verified, so that a publisher presenting the same token
//! on every request pays for its signature check and JSON decoding once,
//! not once per update.
//!
//! Only successes are kept (a forged token costs its sender a full check
//! every time and cannot push good ones out faster than good ones come
//! back), each until its `exp`, and none across a change of keys: an entry
//! records the key epoch it was verified under ([`KEYS`], moved on by
//! every installed key set), so a key an identity provider withdrew stops
//! verifying its tokens at the next refresh, as without the cache. The
//! cache holds at most [`CAPACITY`] tokens; beyond that its S3-FIFO
//! eviction (`quick_cache`) keeps the tokens that come back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::{Grants, Role, TokenSource};

/// Tokens kept at most (a few hundred bytes each).
const CAPACITY: usize = 4096;

/// The key epoch: every key set a JWKS fetch installs moves it on. Static
/// keys never change while the process runs.
pub(super) static KEYS: AtomicU64 = AtomicU64::new(0);

/// What a token was verified for, and what it granted.
#[derive(Clone)]
struct Entry {
    role: Role,
    source: TokenSource,
    audience: Box<str>,
    epoch: u64,
    grants: Grants,
}

/// The cache (one per [`AuthConfig`](super::AuthConfig)).
pub(super) struct Verified(quick_cache::sync::Cache<String, Entry>);

impl Default for Verified {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(CAPACITY))
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("tokens", &self.0.len())
            .finish()
    }
}

impl Clone for Verified {
    /// A configuration's copy starts empty: what one verified does not
    /// speak for another's issuers.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Verified {
    /// Tokens held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The grants `token` was found to carry when presented the same way,
    /// for the same role and audience, under today's keys, if it has not
    /// expired since.
    pub(super) fn get(
        &self,
        role: Role,
        token: &str,
        source: TokenSource,
        audience: &str,
    ) -> Option<Grants> {
        let entry = self.0.get(token)?;
        let fresh = entry.epoch == KEYS.load(Ordering::Acquire)
            && entry
                .grants
                .expires_at()
                .is_none_or(|exp| SystemTime::now() < exp);
        if !fresh {
            self.0.remove(token);
            return None;
        }
        (entry.role == role && entry.source == source && &*entry.audience == audience)
            .then_some(entry.grants)
    }

    /// Keeps `grants`, which `token` was just verified to carry. `epoch`
    /// is [`KEYS`] as read before the check began: a key set installed
    /// meanwhile makes the entry stale at once.
    pub(super) fn put(
        &self,
        role: Role,
        token: &str,
        source: TokenSource,
        audience: &str,
        epoch: u64,
        grants: &Grants,
    ) {
        let entry = Entry {
            role,
            source,
            audience: audience.into(),
            epoch,
            grants: grants.clone(),
        };
        self.0.insert(token.to_owned(), entry);
    }
}
