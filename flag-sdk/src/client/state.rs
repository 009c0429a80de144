//! What a client holds: the compiled snapshot behind `arc-swap`, its status and data age as
//! atomics, and the change and status channels. Readers only ever `load()`; the one writer
//! (the stream task, or a [`TestData`](super::TestData)) builds a whole new snapshot and
//! `store()`s it. No I/O here.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tokio::sync::{broadcast, watch};

use crate::compile::CompiledSnapshot;
use crate::model::{Op, Snapshot};

use super::update::{Item, ItemKind, Update, UpdateError};

/// How many change notifications a slow subscriber may fall behind before it sees `Lagged`.
const CHANGE_BUFFER: usize = 256;

/// Where a client's data stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No data yet: getters serve the caller's defaults with `CLIENT_NOT_READY`.
    Initializing,
    /// Connected and current.
    Valid,
    /// Serving data that may be out of date (cache file, lost or silent stream); reconnecting.
    Stale,
    /// Not connected on purpose: an offline or closed client, or a token the server refused
    /// (retried every few minutes). Any data held is still served.
    Offline,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::Valid,
            2 => Status::Stale,
            3 => Status::Offline,
            _ => Status::Initializing,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Status::Initializing => 0,
            Status::Valid => 1,
            Status::Stale => 2,
            Status::Offline => 3,
        }
    }
}

/// Flags whose configuration changed in one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    /// The environment revision after the update.
    pub revision: u64,
    /// Keys of flags added, changed, removed, or using a changed segment.
    pub flags: Vec<String>,
}

/// The state shared by a client's handles and its stream task.
#[derive(Debug)]
pub(crate) struct Shared {
    flags: ArcSwapOption<CompiledSnapshot>,
    status: AtomicU8,
    /// Milliseconds since the Unix epoch when the data was last known current; 0 = never.
    fresh_at_ms: AtomicU64,
    changes: broadcast::Sender<FlagChange>,
    status_tx: watch::Sender<Status>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            flags: ArcSwapOption::empty(),
            status: AtomicU8::new(Status::Initializing.as_u8()),
            fresh_at_ms: AtomicU64::new(0),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            status_tx: watch::channel(Status::Initializing).0,
        }
    }

    /// The snapshot held, if any. Lock-free.
    pub fn load(&self) -> arc_swap::Guard<Option<Arc<CompiledSnapshot>>> {
        self.flags.load()
    }

    /// The snapshot held, if any, as an owned `Arc`.
    pub fn load_full(&self) -> Option<Arc<CompiledSnapshot>> {
        self.flags.load_full()
    }

    pub fn revision(&self) -> Option<u64> {
        self.flags.load().as_ref().map(|s| s.revision())
    }

    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Acquire))
    }

    /// Sets the status and wakes status watchers (even when unchanged: an attempt ended).
    pub fn set_status(&self, status: Status) {
        self.status.store(status.as_u8(), Ordering::Release);
        self.status_tx.send_replace(status);
    }

    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status_tx.subscribe()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FlagChange> {
        self.changes.subscribe()
    }

    /// Records that the data was current at `when`.
    pub fn touch(&self, when: SystemTime) {
        let ms = when
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64);
        self.fresh_at_ms.fetch_max(ms, Ordering::AcqRel);
    }

    /// How long ago the data was last known current; `None` without data.
    pub fn data_age(&self) -> Option<Duration> {
        self.flags.load().as_ref()?;
        let ms = self.fresh_at_ms.load(Ordering::Acquire);
        let at = UNIX_EPOCH + Duration::from_millis(ms);
        Some(SystemTime::now().duration_since(at).unwrap_or_default())
    }

    /// Replaces the whole snapshot, notifying subscribers of the flags that differ.
    pub fn replace(&self, snapshot: Snapshot) -> Option<FlagChange> {
        let old = self.flags.load_full();
        let flags = changed_flags(old.as_deref().map(|c| &**c.snapshot()), &snapshot);
        let revision = snapshot.revision;
        self.flags
            .store(Some(Arc::new(CompiledSnapshot::new(snapshot))));
        self.notify(revision, flags)
    }

    /// Applies a stream update. `Ok(None)`: ignored (not newer than what is held).
    pub fn apply(&self, update: Update) -> Result<Option<FlagChange>, UpdateError> {
        let held = self.flags.load_full();
        let held_revision = held.as_ref().map(|s| s.revision());
        if held_revision.is_some_and(|r| update.revision() <= r) {
            tracing::debug!(
                revision = update.revision(),
                held = held_revision,
                "stale update ignored"
            );
            return Ok(None);
        }
        let revision = update.revision();
        if let Update::Put(snapshot) = update {
            return Ok(self.replace(snapshot));
        }
        let held = held.ok_or(UpdateError::PatchBeforePut)?;
        let mut snapshot = Snapshot::clone(held.snapshot());
        let flags = match update {
            Update::Put(put) => return Ok(self.replace(put)),
            Update::Patch {
                item: Item::Flag(flag),
                ..
            } => {
                let key = flag.key.clone();
                snapshot.flags.insert(key.clone(), flag);
                vec![key]
            }
            Update::Patch {
                item: Item::Segment(segment),
                ..
            } => {
                let key = segment.key.clone();
                snapshot.segments.insert(key.clone(), segment);
                using_segment(&snapshot, &key)
            }
            Update::Delete {
                kind: ItemKind::Flag,
                key,
                ..
            } => {
                snapshot.flags.remove(&key);
                vec![key]
            }
            Update::Delete {
                kind: ItemKind::Segment,
                key,
                ..
            } => {
                let flags = using_segment(&snapshot, &key);
                snapshot.segments.remove(&key);
                flags
            }
        };
        snapshot.revision = revision;
        self.flags
            .store(Some(Arc::new(CompiledSnapshot::new(snapshot))));
        Ok(self.notify(revision, flags))
    }

    fn notify(&self, revision: u64, flags: Vec<String>) -> Option<FlagChange> {
        let change = FlagChange { revision, flags };
        // No receivers is fine: nobody subscribed.
        let _ = self.changes.send(change.clone());
        Some(change)
    }
}

/// Flags that differ between two snapshots, including those using a changed segment.
fn changed_flags(old: Option<&Snapshot>, new: &Snapshot) -> Vec<String> {
    let Some(old) = old else {
        return new.flags.keys().cloned().collect();
    };
    let mut keys: Vec<String> = new
        .flags
        .iter()
        .filter(|(k, f)| old.flags.get(*k) != Some(f))
        .map(|(k, _)| k.clone())
        .chain(
            old.flags
                .keys()
                .filter(|k| !new.flags.contains_key(*k))
                .cloned(),
        )
        .collect();
    let segments = new
        .segments
        .iter()
        .filter(|(k, s)| old.segments.get(*k) != Some(s))
        .map(|(k, _)| k)
        .chain(
            old.segments
                .keys()
                .filter(|k| !new.segments.contains_key(*k)),
        );
    for segment in segments {
        keys.extend(using_segment(new, segment));
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Flags with an `in_segment` clause naming `segment` (directly).
fn using_segment(snapshot: &Snapshot, segment: &str) -> Vec<String> {
    snapshot
        .flags
        .values()
        .filter(|flag| {
            flag.rules.iter().flat_map(|r| &r.clauses).any(|c| {
                c.op == Op::InSegment && c.values.iter().any(|v| v.as_str() == Some(segment))
            })
        })
        .map(|flag| flag.key.clone())
        .collect()
}
