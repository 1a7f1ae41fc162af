//! Locking without poison: nothing the hub does under a lock can leave its
//! state half-updated on a panic (each step is a push or a removal), so a
//! poisoned lock is still good.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking it over if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
