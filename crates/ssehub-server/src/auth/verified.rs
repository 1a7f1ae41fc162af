//! Tokens already verified, so that a publisher presenting the same token
//! on every request pays for its signature check and JSON decoding once,
//! not once per update.
//!
//! Only successes are kept (a forged token costs its sender a full check
//! every time and cannot push good ones out faster than good ones come
//! back), each until its `exp`, for the configuration that verified it,
//! and none across a change of keys: an entry records the key epoch it was
//! verified under ([`KEY_EPOCH`], moved on by every installed key set), so
//! a key an identity provider withdrew stops verifying its tokens at the
//! next refresh, as without the cache. One cache serves the process (a
//! hub has one configuration); it holds at most [`CAPACITY`] tokens, and
//! beyond that its S3-FIFO eviction (`quick_cache`) keeps the tokens that
//! come back.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use super::config::{AuthConfig, Role, TokenSource};
use super::grants::Grants;
use super::jwks::KEY_EPOCH;

/// Tokens kept at most (a few hundred bytes each).
const CAPACITY: usize = 4096;

/// What a token was verified for, and what it granted (shared: a hit
/// copies only the grants).
struct Entry {
    instance: u64,
    role: Role,
    source: TokenSource,
    audience: Box<str>,
    epoch: u64,
    grants: Grants,
}

/// Keyed by the token's bytes: a hit can then skip even the token's
/// syntax checks ([`presentation::bearer_unchecked`](super::presentation::bearer_unchecked)).
static VERIFIED: LazyLock<quick_cache::sync::Cache<Box<[u8]>, Arc<Entry>>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CAPACITY));

/// The key epoch now, read before a check whose result [`put`] keeps.
pub(super) fn epoch() -> u64 {
    KEY_EPOCH.load(Ordering::Acquire)
}

/// The grants `token` was found to carry when `config` verified it,
/// presented the same way, for the same role and audience, under today's
/// keys, if it has not expired since.
pub(super) fn get(
    config: &AuthConfig,
    role: Role,
    token: &[u8],
    source: TokenSource,
    audience: &str,
) -> Option<Grants> {
    let entry = VERIFIED.get(token)?;
    let fresh = entry.epoch == epoch()
        && entry
            .grants
            .expires_at()
            .is_none_or(|exp| SystemTime::now() < exp);
    if !fresh {
        VERIFIED.remove(token);
        return None;
    }
    (entry.instance == config.instance.get()
        && entry.role == role
        && entry.source == source
        && &*entry.audience == audience)
        .then(|| entry.grants.clone())
}

/// Keeps `grants`, which `config` just verified `token` to carry. `epoch`
/// is [`epoch`] as read before the check began: a key set installed
/// meanwhile makes the entry stale at once.
pub(super) fn put(
    config: &AuthConfig,
    role: Role,
    (token, source): (&str, TokenSource),
    audience: &str,
    epoch: u64,
    grants: &Grants,
) {
    let entry = Entry {
        instance: config.instance.get(),
        role,
        source,
        audience: audience.into(),
        epoch,
        grants: grants.clone(),
    };
    VERIFIED.insert(token.as_bytes().into(), Arc::new(entry));
}

/// Whether `config` has `token` verified (for tests).
#[cfg(test)]
pub(super) fn holds(config: &AuthConfig, token: &str) -> bool {
    VERIFIED
        .get(token.as_bytes())
        .is_some_and(|entry| entry.instance == config.instance.get())
}
