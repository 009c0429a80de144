//! One subscriber: its read position in the ring, and how its bytes reach the connection.
//!
//! actix-http copies each chunk of a streaming body into the connection's write buffer, and
//! keeps that buffer's grown capacity once flushed (up to 128 KiB). Handed a whole `put` in
//! one chunk, every idle connection would keep a buffer the size of the snapshot. So a
//! subscription hands over at most [`PIECE`] bytes between two flushes ([`Paced`]): the
//! connection's buffer stays at its initial 8 KiB with only its first KiB ever written, and
//! the `put` itself, shared by every subscriber of the revision, is sent as slices of one
//! allocation, never copied per subscriber.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::ring::Frame;

/// The most bytes handed to the connection between two flushes. The buffer is refilled from
/// its start after each flush, so this is also how much of it ever holds data: memory the
/// idle connection keeps resident. 1 KiB: 10,000 idle subscribers of a 300-flag environment
/// cost 12.8 KiB each (15.8 KiB with 4 KiB pieces, 12.2 KiB with an empty environment), and
/// sending a 1.4 MiB `put` to all of them took no longer than with 4 KiB pieces.
pub(super) const PIECE: usize = 1024;

/// One subscriber's read position.
pub(super) struct Subscription {
    pub(super) rx: broadcast::Receiver<Frame>,
    /// What is sent before anything from the ring: `retry:`, then the `put` or the replay.
    pub(super) start: VecDeque<Bytes>,
    /// A frame taken from the ring that did not fit in the last write.
    pub(super) held_back: Option<Bytes>,
    pub(super) last_sent: u64,
    pub(super) alive: Box<dyn Fn() -> bool + Send + Sync>,
    /// An OFREP change notification stream: each change becomes a `refetchEvaluation`
    /// event instead of its `patch`/`delete`.
    pub(super) notify: bool,
}

impl Subscription {
    /// The body of the response: these bytes, paced (see [`Paced`]).
    pub(super) fn into_body(self) -> Paced<impl Stream<Item = Bytes>> {
        Paced::new(futures_util::stream::unfold(self, |mut s| async move {
            let bytes = s.next().await?;
            Some((bytes, s))
        }))
    }

    /// The next bytes to write; `None` ends the response (lagged or shut down). Frames that
    /// are already waiting in the ring are joined into one write of up to [`PIECE`] bytes,
    /// so during a burst of changes a subscriber costs one write per wake-up, and its SDK
    /// compiles once per write.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(bytes) = self.start.pop_front() {
            if self.start.is_empty() {
                self.start = VecDeque::new(); // an idle subscriber keeps no buffer
            }
            return Some(bytes);
        }
        let first = match self.held_back.take() {
            Some(bytes) => bytes,
            None => loop {
                let frame = match self.rx.recv().await {
                    Ok(frame) => frame,
                    Err(broadcast::error::RecvError::Lagged(missed)) => return lagged(missed),
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if let Some(bytes) = self.accept(frame)? {
                    break bytes;
                }
            },
        };
        let mut joined: Option<BytesMut> = None;
        let mut len = first.len();
        while len < PIECE {
            let frame = match self.rx.try_recv() {
                Ok(frame) => frame,
                Err(broadcast::error::TryRecvError::Lagged(missed)) => return lagged(missed),
                Err(_) => break, // empty, or closed after what is already here
            };
            let Some(bytes) = self.accept(frame)? else {
                continue;
            };
            if len + bytes.len() > PIECE {
                self.held_back = Some(bytes);
                break;
            }
            len += bytes.len();
            joined
                .get_or_insert_with(|| {
                    let mut out = BytesMut::with_capacity(PIECE);
                    out.extend_from_slice(&first);
                    out
                })
                .extend_from_slice(&bytes);
        }
        Some(joined.map_or(first, BytesMut::freeze))
    }

    /// What a frame adds to the stream: `Some(None)` for a change already sent, `None` when
    /// the stream must end because it is no longer authorized.
    fn accept(&mut self, frame: Frame) -> Option<Option<Bytes>> {
        match frame.revision {
            Some(revision) if revision <= self.last_sent => Some(None),
            Some(revision) if self.notify => {
                self.last_sent = revision;
                Some(Some(super::wire::refetch(revision)))
            }
            Some(revision) => {
                self.last_sent = revision;
                Some(Some(frame.bytes))
            }
            // A heartbeat: the token is checked once per beat, off the path of a fan-out.
            None if !(self.alive)() => {
                tracing::info!("SDK stream closed: its token is no longer valid");
                None
            }
            None => Some(Some(frame.bytes)),
        }
    }
}

fn lagged(missed: u64) -> Option<Bytes> {
    tracing::info!(missed, "slow SDK subscriber cut off; it will resync");
    None
}

/// A body that yields at most [`PIECE`] bytes between two `Pending`s (waking itself at once
/// when it has more), so the connection flushes what it has before it takes more. A chunk
/// that does not fit in what is left of a write starts the next one; chunks larger than a
/// piece are cut into slices of the same allocation.
pub struct Paced<S> {
    inner: Pin<Box<S>>,
    out: Bytes,
    budget: usize,
}

impl<S: Stream<Item = Bytes>> Paced<S> {
    fn new(inner: S) -> Paced<S> {
        Paced {
            inner: Box::pin(inner),
            out: Bytes::new(),
            budget: PIECE,
        }
    }
}

impl<S: Stream<Item = Bytes>> Stream for Paced<S> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while this.out.is_empty() {
            match this.inner.poll_next_unpin(cx) {
                Poll::Pending => {
                    this.budget = PIECE; // the connection flushes while we wait
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(bytes)) => this.out = bytes,
            }
        }
        let n = this.out.len().min(PIECE);
        if n > this.budget {
            // It does not fit in this write: let the connection flush first.
            this.budget = PIECE;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.budget -= n;
        Poll::Ready(Some(Ok(this.out.split_to(n))))
    }
}
