//! The process's open-file limit: every subscriber holds a socket, so the
//! hub raises its soft limit to the hard one at start, and the default
//! connection ceiling is what that limit leaves after a reserve for
//! everything else (listeners, the log's connections, publishers' and
//! probes' requests, files).

/// The open-file limit after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenFiles {
    /// The soft limit before (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit in effect now (`None`: unlimited).
    pub now: Option<u64>,
}

/// What a hub without an open-file limit assumes it has (Linux's default
/// `fs.nr_open`).
const UNLIMITED: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard limit. A refusal (some
/// sandboxes forbid it) leaves the limit as it was.
pub(crate) fn raise() -> OpenFiles {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        let mut raised = limit;
        // Linux refuses an unlimited soft limit for open files.
        raised.current = limit.maximum.or(Some(UNLIMITED));
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%err, "the open-file limit could not be raised");
        }
    }
    OpenFiles {
        before,
        now: getrlimit(Resource::Nofile).current,
    }
}

impl OpenFiles {
    /// The subscriber connections the limit leaves room for: the limit
    /// less a tenth of it, kept for everything else (at least 64 and at
    /// most 1024 descriptors, half of a tiny limit).
    pub fn connections(&self) -> usize {
        let limit = self.now.unwrap_or(UNLIMITED);
        let reserve = if limit < 128 {
            limit / 2
        } else {
            (limit / 10).clamp(64, 1024)
        };
        usize::try_from(limit - reserve).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_keeps_a_reserve() {
        let at = |now| OpenFiles { before: None, now }.connections();
        assert_eq!(at(Some(1024)), 1024 - 102);
        assert_eq!(at(Some(256)), 256 - 64);
        assert_eq!(at(Some(100)), 50);
        assert_eq!(at(Some(1 << 20)), (1 << 20) - 1024);
        assert_eq!(at(None), (1 << 20) - 1024);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let raised = raise();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(raised.now, limit.current);
        if limit.maximum.is_some() {
            assert_eq!(limit.current, limit.maximum);
        }
    }
}
