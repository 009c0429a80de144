//! What a client holds: the compiled snapshot behind `arc-swap`, its status and data age as
//! atomics, and the change and status channels. Readers only ever `load()`; the one writer
//! (the stream task, or a [`TestData`](super::TestData)) builds a whole new snapshot and
//! `store()`s it. No I/O here.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tokio::sync::{broadcast, watch};

use crate::change::Change;
use crate::compile::CompiledSnapshot;
use crate::model::{Op, Snapshot};

use super::update::{Update, UpdateError};

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
    /// Not connected on purpose: an offline or closed client. Any data held is still served.
    Offline,
    /// The server refused the SDK token (HTTP 401: unknown or revoked token; 403: a token
    /// that is not an SDK token, e.g. an admin token). This does not heal by itself: check
    /// the token is an SDK token for this environment. Any data held (an earlier snapshot or
    /// the cache file) is still served; the stream retries every few minutes (doubling up to
    /// ten minutes) and goes back to `Valid` once the server accepts the token.
    Refused {
        /// The HTTP status the server answered (401 or 403).
        http_status: u16,
    },
}

impl Status {
    /// Packs the status into one word, for the lock-free atomic: the variant in the low byte,
    /// `Refused`'s HTTP status above it.
    fn from_bits(v: u32) -> Status {
        match v & 0xff {
            1 => Status::Valid,
            2 => Status::Stale,
            3 => Status::Offline,
            4 => Status::Refused {
                http_status: (v >> 8) as u16,
            },
            _ => Status::Initializing,
        }
    }

    fn to_bits(self) -> u32 {
        match self {
            Status::Initializing => 0,
            Status::Valid => 1,
            Status::Stale => 2,
            Status::Offline => 3,
            Status::Refused { http_status } => 4 | u32::from(http_status) << 8,
        }
    }
}

/// Flags whose configuration changed in one update: one stream event, or a burst of events
/// that arrived together and were applied as one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlagChange {
    /// The environment revision after the update.
    pub revision: u64,
    /// Keys of flags added, changed, removed, or using a changed segment.
    pub flags: Vec<String>,
}

/// A stamp never handed out before in this process (0 is never one).
fn next_stamp() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The state shared by a client's handles and its stream task.
#[derive(Debug)]
pub(crate) struct Shared {
    flags: ArcSwapOption<CompiledSnapshot>,
    /// A stamp unique in the process, never reused, replaced after every swap of `flags`: a
    /// reader's cached snapshot is current while the stamp it was read at is (see `read`).
    /// Unique across clients, so one compare tells both the client and its data apart.
    stamp: AtomicU64,
    status: AtomicU32,
    /// Milliseconds since the Unix epoch when the data was last known current; 0 = never.
    fresh_at_ms: AtomicU64,
    changes: broadcast::Sender<FlagChange>,
    status_tx: watch::Sender<Status>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            flags: ArcSwapOption::empty(),
            stamp: AtomicU64::new(next_stamp()),
            status: AtomicU32::new(Status::Initializing.to_bits()),
            fresh_at_ms: AtomicU64::new(0),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            status_tx: watch::channel(Status::Initializing).0,
        }
    }

    /// The current stamp (see the field).
    #[inline]
    pub fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::Acquire)
    }

    /// Swaps the snapshot in, then gives it a new stamp so readers' caches revalidate.
    fn install(&self, snapshot: CompiledSnapshot) {
        self.flags.store(Some(Arc::new(snapshot)));
        self.stamp.store(next_stamp(), Ordering::Release);
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
        Status::from_bits(self.status.load(Ordering::Acquire))
    }

    /// Sets the status and wakes status watchers (even when unchanged: an attempt ended).
    pub fn set_status(&self, status: Status) {
        self.status.store(status.to_bits(), Ordering::Release);
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
        self.install(CompiledSnapshot::new(snapshot));
        self.notify(revision, flags)
    }

    /// Applies stream updates in order and compiles the result once, so a burst of changes
    /// costs one compilation, not one per change. Updates not newer than what is held (or
    /// than an earlier update of the burst) are ignored (a change: by [`Snapshot::apply`]).
    /// `Ok(None)`: nothing changed. On an error nothing is applied: the caller reconnects and
    /// the server replays from the held revision.
    pub fn apply(
        &self,
        updates: impl IntoIterator<Item = Update>,
    ) -> Result<Option<FlagChange>, UpdateError> {
        let held = self.flags.load_full();
        let base = held.as_deref().map(|c| &**c.snapshot());
        let mut working: Option<Snapshot> = None;
        let mut flags = Vec::new();
        let mut replaced = false;
        for update in updates {
            let current = working.as_ref().or(base).map(|s| s.revision);
            let revision = update.revision();
            let stale = current.is_some_and(|r| revision <= r);
            match update {
                _ if stale => {}
                Update::Put(put) => {
                    replaced = true;
                    working = Some(put);
                    continue;
                }
                Update::Change(change) => {
                    let snapshot = match &mut working {
                        Some(snapshot) => snapshot,
                        None => working.insert(base.ok_or(UpdateError::PatchBeforePut)?.clone()),
                    };
                    if snapshot.apply(&change) {
                        flags.extend(affected(snapshot, &change));
                        continue;
                    }
                }
            }
            tracing::debug!(revision, held = current, "stale update ignored");
        }
        let Some(snapshot) = working else {
            return Ok(None);
        };
        if replaced {
            // Diffed against what was held before the burst, like any other put.
            return Ok(self.replace(snapshot));
        }
        flags.sort();
        flags.dedup();
        let revision = snapshot.revision;
        self.install(CompiledSnapshot::new(snapshot));
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

/// The flags whose evaluation `change` (applied to `snapshot`) may have changed.
fn affected(snapshot: &Snapshot, change: &Change) -> Vec<String> {
    match change {
        Change::Segment { .. } | Change::SegmentDeleted { .. } => {
            using_segment(snapshot, change.key())
        }
        Change::Flag { .. } | Change::FlagDeleted { .. } => vec![change.key().to_owned()],
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Flag;

    fn flag(key: &str, on: bool) -> Flag {
        serde_json::from_value(json!({
            "key": key, "kind": "boolean", "version": 1, "enabled": true,
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "off_variation": "off", "fallthrough": {"variation": if on { "on" } else { "off" }}
        }))
        .unwrap()
    }

    fn snapshot(revision: u64, flags: &[(&str, bool)]) -> Snapshot {
        let mut snapshot: Snapshot =
            serde_json::from_value(json!({"environment": "production", "revision": revision}))
                .unwrap();
        for (key, on) in flags {
            snapshot.flags.insert(key.to_string(), flag(key, *on));
        }
        snapshot
    }

    fn patch(revision: u64, key: &str, on: bool) -> Update {
        Update::Change(Change::Flag {
            revision,
            flag: flag(key, on),
        })
    }

    fn serves(shared: &Shared, key: &str) -> Option<bool> {
        let held = shared.load_full()?;
        let ctx = crate::Context::new("u");
        held.evaluate(key, &ctx).value.and_then(|v| v.as_bool())
    }

    #[test]
    fn a_burst_applies_in_order_skips_stale_updates_and_notifies_once() {
        let shared = Shared::new();
        shared.replace(snapshot(5, &[("a", true), ("b", true)]));
        let mut changes = shared.subscribe();
        let change = shared
            .apply([
                patch(6, "a", false),
                patch(4, "b", false), // older than what is held: ignored
                patch(7, "c", true),
                patch(7, "c", false), // not newer than the one before it: ignored
                Update::Change(Change::FlagDeleted {
                    revision: 8,
                    key: "b".into(),
                }),
            ])
            .unwrap()
            .expect("changed");
        assert_eq!(change.revision, 8);
        assert_eq!(change.flags, ["a", "b", "c"]);
        assert_eq!(changes.try_recv().unwrap(), change);
        assert!(changes.try_recv().is_err(), "one notification per burst");
        assert_eq!(shared.revision(), Some(8));
        assert_eq!(serves(&shared, "a"), Some(false));
        assert_eq!(serves(&shared, "b"), None);
        assert_eq!(serves(&shared, "c"), Some(true));
        // A burst of nothing new changes nothing.
        assert!(shared.apply([patch(8, "a", true)]).unwrap().is_none());
        assert_eq!(serves(&shared, "a"), Some(false));
    }

    #[test]
    fn a_put_inside_a_burst_replaces_and_later_patches_apply_on_top() {
        let shared = Shared::new();
        shared.replace(snapshot(1, &[("a", true), ("gone", true)]));
        let change = shared
            .apply([
                patch(2, "a", false),
                Update::Put(snapshot(10, &[("a", true), ("new", true)])),
                patch(11, "new", false),
            ])
            .unwrap()
            .unwrap();
        assert_eq!(change.revision, 11);
        // Diffed against what was held before the burst: `a` ends as it was.
        assert_eq!(change.flags, ["gone", "new"]);
        assert_eq!(serves(&shared, "a"), Some(true));
        assert_eq!(serves(&shared, "new"), Some(false));
        assert_eq!(serves(&shared, "gone"), None);
    }

    #[test]
    fn every_status_survives_the_atomic() {
        for status in [
            Status::Initializing,
            Status::Valid,
            Status::Stale,
            Status::Offline,
            Status::Refused { http_status: 401 },
            Status::Refused { http_status: 403 },
        ] {
            let shared = Shared::new();
            shared.set_status(status);
            assert_eq!(shared.status(), status);
        }
    }

    #[test]
    fn a_patch_before_any_put_is_an_error_and_applies_nothing() {
        let shared = Shared::new();
        assert!(matches!(
            shared.apply([patch(1, "a", true)]),
            Err(UpdateError::PatchBeforePut)
        ));
        assert!(shared.load_full().is_none());
    }
}
