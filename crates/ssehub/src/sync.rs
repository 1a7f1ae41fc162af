//! The one way ssehub takes a lock.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, ignoring poisoning.
///
/// Every value ssehub guards (queues, logs, maps) is left consistent before
/// anything that can panic, so a lock poisoned by a panicking thread is
/// still safe to use; refusing it would turn one panic into many.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
