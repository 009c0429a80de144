//! What a client tells its application as things happen: [`Changes`] (flags changed by each
//! update) and [`StatusWatch`] (the client's [`Status`]). They wrap the runtime's channels so
//! the public surface names only this crate's types.

use tokio::sync::{broadcast, watch};

use super::state::{FlagChange, Status};

/// Why [`Changes::recv`] returned no change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangesError {
    /// The receiver fell this many updates behind and they were dropped: re-read what you
    /// care about, then go on receiving.
    #[error("{0} flag changes were missed")]
    Lagged(u64),
    /// The client is gone; no change will come.
    #[error("the client is closed")]
    Closed,
    /// [`Changes::try_recv`] only: nothing new yet.
    #[error("no change yet")]
    Empty,
}

/// Flags changed by each update; see [`Client::subscribe`](super::Client::subscribe).
#[derive(Debug)]
pub struct Changes {
    rx: broadcast::Receiver<FlagChange>,
}

impl Changes {
    pub(super) fn new(rx: broadcast::Receiver<FlagChange>) -> Self {
        Changes { rx }
    }

    /// Waits for the next change.
    pub async fn recv(&mut self) -> Result<FlagChange, ChangesError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => ChangesError::Lagged(n),
            broadcast::error::RecvError::Closed => ChangesError::Closed,
        })
    }

    /// The next change if one is waiting.
    pub fn try_recv(&mut self) -> Result<FlagChange, ChangesError> {
        self.rx.try_recv().map_err(|e| match e {
            broadcast::error::TryRecvError::Lagged(n) => ChangesError::Lagged(n),
            broadcast::error::TryRecvError::Closed => ChangesError::Closed,
            broadcast::error::TryRecvError::Empty => ChangesError::Empty,
        })
    }
}

/// The client is gone: its status will not change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client is closed")]
pub struct Closed;

/// Watches a client's [`Status`]; see [`Client::watch_status`](super::Client::watch_status).
/// Starts with the current status marked as seen.
#[derive(Debug, Clone)]
pub struct StatusWatch {
    rx: watch::Receiver<Status>,
}

impl StatusWatch {
    pub(super) fn new(mut rx: watch::Receiver<Status>) -> Self {
        rx.mark_unchanged();
        StatusWatch { rx }
    }

    /// The status now (and marks it seen).
    pub fn current(&mut self) -> Status {
        *self.rx.borrow_and_update()
    }

    /// Marks the status now as seen, without reading it.
    pub fn mark_unchanged(&mut self) {
        self.rx.mark_unchanged();
    }

    /// Whether the status was set since it was last seen (every ended connection attempt
    /// sets it, even to the same value).
    pub fn has_changed(&self) -> Result<bool, Closed> {
        self.rx.has_changed().map_err(|_| Closed)
    }

    /// Waits until the status is set again, and returns it.
    pub async fn changed(&mut self) -> Result<Status, Closed> {
        self.rx.changed().await.map_err(|_| Closed)?;
        Ok(*self.rx.borrow_and_update())
    }

    /// Waits until the status satisfies `until` (now, or after a change), and returns it.
    pub async fn wait_for(&mut self, until: impl FnMut(&Status) -> bool) -> Result<Status, Closed> {
        self.rx
            .wait_for(until)
            .await
            .map(|s| *s)
            .map_err(|_| Closed)
    }
}
