//! What a broker does with a client that falls behind ([`OverflowPolicy`])
//! or cannot be resumed exactly ([`GapPolicy`]), and the bounds of a
//! journal broker's window.
//!
//! Apart from `config.rs` because the log, the clients and the journal
//! replica read these while `BrokerConfig` names the [`Client`](super::Client)
//! in its hooks: here they import nothing of the broker.

/// What happens to a client whose buffer overflows: it has more unsent
/// events (or bytes) than [`BrokerConfig::client_buffer_events`](super::BrokerConfig::client_buffer_events) (or
/// [`client_buffer_bytes`](super::BrokerConfig::client_buffer_bytes)) allow.
///
/// A publisher never waits for a slow client whatever the policy; every
/// dropped event and every disconnect is counted in [`BrokerStats`](super::BrokerStats).
///
/// ```
/// use ssehub::broker::{BrokerConfig, OverflowPolicy};
///
/// let config = BrokerConfig::default().overflow(OverflowPolicy::DropOldest);
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// End the client's response (the default). A browser reconnects with
    /// `Last-Event-ID` and can resume from the channel's history, so nothing
    /// is silently lost.
    #[default]
    Disconnect,
    /// Skip the oldest unsent events so the newest `client_buffer_events` remain.
    DropOldest,
    /// Keep the oldest unsent events and skip those that arrived while the
    /// buffer was full.
    DropNewest,
}

/// What a client that cannot be resumed exactly receives from history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GapReplay {
    /// Nothing from history: only live events (the default). The gap
    /// signal tells the application to reload its state.
    #[default]
    Nothing,
    /// Every retained event of the channels it subscribes to, oldest first.
    AllRetained,
}

/// How a broker handles a `Last-Event-ID` it cannot resume after exactly:
/// an id it does not know (another broker's, one from before a restart, or
/// one evicted from history), or a known id some of whose successors were
/// evicted on a channel the client subscribes to.
///
/// The client is told in two ways, both on by default: a response header
/// [`RESUME_HEADER`](super::RESUME_HEADER) `: gap` (where the broker builds the
/// response, as in [`Broker::handle_request`](super::Broker::handle_request)),
/// and an event of type [`GAP_EVENT`](super::GAP_EVENT) whose data is
/// JSON: `{"last_event_id": "<the id>", "reason": "unknown-id" | "history-lost"}`,
/// sent before anything else. A resume that is exact gets
/// `SSEHub-Resume: complete`.
///
/// ```
/// use ssehub::broker::{GapPolicy, GapReplay};
/// let policy = GapPolicy::default().replay(GapReplay::AllRetained).event(false);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct GapPolicy {
    pub(crate) replay: GapReplay,
    pub(crate) event: bool,
}

impl Default for GapPolicy {
    fn default() -> Self {
        Self {
            replay: GapReplay::Nothing,
            event: true,
        }
    }
}

impl GapPolicy {
    /// What the client gets from history after a gap.
    ///
    /// ```
    /// use ssehub::broker::{GapPolicy, GapReplay};
    /// let policy = GapPolicy::default().replay(GapReplay::Nothing);
    /// # let _ = policy;
    /// ```
    pub fn replay(mut self, replay: GapReplay) -> Self {
        self.replay = replay;
        self
    }

    /// Whether the gap event is sent (the header always is).
    ///
    /// ```
    /// let policy = ssehub::broker::GapPolicy::default().event(false);
    /// # let _ = policy;
    /// ```
    pub fn event(mut self, on: bool) -> Self {
        self.event = on;
        self
    }
}

/// Bounds of a journal broker's window of recently followed records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JournalWindow {
    pub(crate) records: usize,
    pub(crate) bytes: usize,
}
