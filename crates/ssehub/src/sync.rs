//! The sync types of the concurrent core, and the one way ssehub takes a
//! lock.
//!
//! The concurrent core — the channel log and its watermark (`broker/log.rs`),
//! the outlet's state machine (`broker/outlet.rs`) and the fan-out writers
//! (`broker/writer.rs`) — takes its atomics and mutexes from here, never
//! from `std` directly, so that the loom models can replace them: under
//! `cfg(ssehub_loom)` they are [loom](https://docs.rs/loom)'s, which explore every
//! interleaving of the threads of a model. Run the models with
//!
//! ```text
//! RUSTFLAGS="--cfg ssehub_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p ssehub --lib --release loom
//! ```
//!
//! (a target directory of their own, so the cfg does not rebuild the usual
//! one). Only the crate's own tests switch (`cfg(all(test, ssehub_loom))`:
//! loom is a dev-dependency). The cfg is ssehub's own, not the customary `loom`: tokio compiled
//! under `cfg(loom)` leaves out `tokio::net`, which the library and its
//! test dependencies need. Only the models run under that cfg: everything
//! else in the crate still takes `std`'s types, and loom's refuse to work
//! outside a model.
//!
//! `Arc` and `Weak` stay `std`'s in both: wakers are made from `std`'s `Arc`
//! (`std::task::Wake`) and the log holds its subscribers' clients by
//! `Weak`, which loom's `Arc` does not have; reference counts are not what
//! the models check.

#[cfg(all(test, ssehub_loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard, atomic};
#[cfg(not(all(test, ssehub_loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard, atomic};

pub(crate) use std::sync::{Arc, PoisonError};

/// A mutex [`lock`] can take: `std`'s, and under `cfg(ssehub_loom)` loom's.
pub(crate) trait Lock {
    /// What locking it gives.
    type Guard<'a>
    where
        Self: 'a;

    /// Locks, ignoring poisoning (see [`lock`]).
    fn lock_ignoring_poison(&self) -> Self::Guard<'_>;
}

impl<T: ?Sized> Lock for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;

    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// So that a shared mutex locks as it did with `std`'s inherent method.
impl<L: Lock + ?Sized> Lock for Arc<L> {
    type Guard<'a>
        = L::Guard<'a>
    where
        Self: 'a;

    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        L::lock_ignoring_poison(self)
    }
}

#[cfg(all(test, ssehub_loom))]
impl<T: ?Sized> Lock for loom::sync::Mutex<T> {
    type Guard<'a>
        = loom::sync::MutexGuard<'a, T>
    where
        T: 'a;

    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Locks `m`, ignoring poisoning.
///
/// Every value ssehub guards (queues, logs, maps) is left consistent before
/// anything that can panic, so a lock poisoned by a panicking thread is
/// still safe to use; refusing it would turn one panic into many.
pub(crate) fn lock<L: Lock + ?Sized>(m: &L) -> L::Guard<'_> {
    m.lock_ignoring_poison()
}
