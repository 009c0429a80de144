//! One environment's ring (the `broadcast` channel its subscribers read at their own pace),
//! the changes it holds for `Last-Event-ID` replay, and its encoded `put`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use flag_sdk::CompiledSnapshot;
use tokio::sync::broadcast;

use super::wire::Put;

/// One frame in the ring: a change (with its revision) or a heartbeat (`None`).
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub(super) revision: Option<u64>,
    pub(super) bytes: Bytes,
}

/// What a new subscriber starts from.
pub(super) struct Joined {
    pub(super) rx: broadcast::Receiver<Frame>,
    pub(super) snapshot: Arc<CompiledSnapshot>,
    /// The replayed changes and the revision they end at; `None`: a `put` is needed.
    pub(super) replayed: Option<(Vec<Bytes>, u64)>,
}

/// One environment's stream state.
pub(super) struct EnvStream {
    tx: broadcast::Sender<Frame>,
    held: Mutex<Held>,
    put: Mutex<Option<Put>>,
}

struct Held {
    /// Every published change with a revision above `floor` is in `frames`.
    floor: u64,
    frames: VecDeque<Frame>,
}

impl EnvStream {
    /// A ring of `buffer` frames; changes up to `floor` are in the snapshot already.
    pub(super) fn new(buffer: usize, floor: u64) -> EnvStream {
        EnvStream {
            tx: broadcast::channel(buffer).0,
            held: Mutex::new(Held {
                floor,
                frames: VecDeque::new(),
            }),
            put: Mutex::new(None),
        }
    }

    /// Open subscriptions.
    pub(super) fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Holds a change for replay (the last `replay` of them) and sends it into the ring.
    pub(super) fn publish(&self, frame: Frame, replay: usize) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.frames.push_back(frame.clone());
        while held.frames.len() > replay {
            if let Some(evicted) = held.frames.pop_front() {
                held.floor = evicted.revision.unwrap_or(held.floor);
            }
        }
        // Sent under the lock so a subscriber's replay and its ring never miss a frame
        // between them (the ring's send is a short, non-blocking operation).
        let _ = self.tx.send(frame); // no subscribers is fine
    }

    /// Sends a heartbeat when anyone listens.
    pub(super) fn beat(&self, heartbeat: &Bytes) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Frame {
                revision: None,
                bytes: heartbeat.clone(),
            });
        }
    }

    /// Subscribes, then reads the snapshot with `current` under the lock `publish` sends
    /// under, so no change falls between the two. With `last_event_id` still held (and not
    /// ahead of the snapshot), the changes after it are replayed.
    pub(super) fn join(
        &self,
        current: &dyn Fn() -> Option<Arc<CompiledSnapshot>>,
        last_event_id: Option<u64>,
    ) -> Option<Joined> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = self.tx.subscribe();
        let snapshot = current()?;
        if held.frames.is_empty() && held.floor == 0 {
            // First sight of this environment: everything up to now is in the snapshot.
            held.floor = snapshot.revision();
        }
        let replayable = last_event_id.filter(|&id| id >= held.floor && id <= snapshot.revision());
        let replayed = replayable.map(|id| {
            let mut last = id;
            let mut frames = Vec::new();
            for frame in held.frames.iter().filter(|f| f.revision > Some(id)) {
                frames.push(frame.bytes.clone());
                last = frame.revision.unwrap_or(last);
            }
            (frames, last)
        });
        Some(Joined {
            rx,
            snapshot,
            replayed,
        })
    }

    /// `snapshot`'s `put`, encoded once per revision. The newest revision is kept for the
    /// next subscriber; an older one (a subscriber that read its snapshot just before a
    /// change) is encoded for that subscriber alone.
    pub(super) fn put(&self, snapshot: &CompiledSnapshot) -> Put {
        let mut cached = self.put.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some(put) if put.revision() == snapshot.revision() => put.clone(),
            Some(put) if put.revision() > snapshot.revision() => Put::encode(snapshot),
            _ => cached.insert(Put::encode(snapshot)).clone(),
        }
    }
}
