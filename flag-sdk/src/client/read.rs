//! The read path's per-thread cache: the common read is one atomic load and two compares,
//! with no atomic read-modify-write and no shared cache line written.
//!
//! Each thread keeps the snapshot it last read and the stamp it was read at. A writer gives
//! the client a new stamp after every swap, and no two clients or swaps share a stamp; a
//! reader whose cached stamp still matches the client's uses its own `Arc` without touching
//! the `arc-swap`, and otherwise loads the current snapshot once and keeps it. The cost: each thread holds on to
//! the last snapshot it read until it reads again (of any client) or exits, so a swapped-out
//! snapshot lives until every thread that read it has read since. A re-entrant read (a
//! getter called while another runs on the same thread, e.g. from a logging hook) and a
//! read during the thread's teardown take the `arc-swap` directly.

use std::cell::{Ref, RefCell};
use std::sync::Arc;

use crate::compile::CompiledSnapshot;

use super::state::Shared;

/// What one thread read last: the snapshot of the client whose stamp was `stamp` (0:
/// nothing yet).
struct Slot {
    stamp: u64,
    snapshot: Option<Arc<CompiledSnapshot>>,
}

thread_local! {
    static SLOT: RefCell<Slot> = const {
        RefCell::new(Slot { stamp: 0, snapshot: None })
    };
}

/// Calls `read` with the current snapshot of `shared` (`None` without data).
///
/// `read` has one call site on the common path (a current slot, or one just refreshed), so
/// the compiler inlines the caller's evaluation into it; the refresh and the fallback to the
/// `arc-swap` stay out of line.
#[inline(always)]
pub(super) fn with_snapshot<R>(
    shared: &Shared,
    read: impl FnOnce(Option<&Arc<CompiledSnapshot>>) -> R,
) -> R {
    // Read before the snapshot: a swap that lands in between stamps it again, so the slot's
    // snapshot can only be newer than its stamp says, never older.
    let stamp = shared.stamp();
    let mut read = Some(read);
    let cached = SLOT.try_with(|cell| {
        let slot = match cell.try_borrow() {
            Ok(slot) if slot.stamp == stamp => slot,
            Ok(stale) => {
                drop(stale);
                refresh(cell, shared, stamp)?
            }
            Err(_) => return None,
        };
        read.take().map(|read| read(slot.snapshot.as_ref()))
    });
    match (cached, read) {
        (Ok(Some(answer)), _) => answer,
        (_, Some(read)) => from_arc_swap(shared, read),
        (_, None) => unreachable!("`read` runs once and answers"),
    }
}

/// Makes this thread's slot hold the current snapshot of `shared`, read at `stamp`;
/// `None` when the slot is borrowed (a read inside a read).
#[cold]
#[inline(never)]
fn refresh<'a>(cell: &'a RefCell<Slot>, shared: &Shared, stamp: u64) -> Option<Ref<'a, Slot>> {
    {
        let mut slot = cell.try_borrow_mut().ok()?;
        slot.snapshot = shared.load_full();
        slot.stamp = stamp;
    }
    cell.try_borrow().ok()
}

/// A read that cannot use the slot (re-entrant, or during the thread's teardown).
#[cold]
#[inline(never)]
fn from_arc_swap<R>(shared: &Shared, read: impl FnOnce(Option<&Arc<CompiledSnapshot>>) -> R) -> R {
    read(shared.load().as_ref())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Snapshot;

    fn snapshot(revision: u64) -> Snapshot {
        serde_json::from_value(json!({"environment": "e", "revision": revision})).unwrap()
    }

    fn revision(shared: &Shared) -> Option<u64> {
        with_snapshot(shared, |s| s.map(|s| s.revision()))
    }

    #[test]
    fn a_swap_is_seen_by_the_next_read_on_every_thread() {
        let shared = Arc::new(Shared::new());
        assert_eq!(revision(&shared), None);
        shared.replace(snapshot(1));
        assert_eq!(revision(&shared), Some(1));
        let other = shared.clone();
        std::thread::spawn(move || assert_eq!(revision(&other), Some(1)))
            .join()
            .unwrap();
        shared.replace(snapshot(2));
        assert_eq!(revision(&shared), Some(2));
        let other = shared.clone();
        std::thread::spawn(move || assert_eq!(revision(&other), Some(2)))
            .join()
            .unwrap();
    }

    #[test]
    fn two_clients_on_one_thread_never_see_each_other() {
        let (a, b) = (Shared::new(), Shared::new());
        a.replace(snapshot(10));
        b.replace(snapshot(20));
        for _ in 0..3 {
            assert_eq!(revision(&a), Some(10));
            assert_eq!(revision(&b), Some(20));
        }
        // Swaps of one client never give it a stamp the other holds (or held).
        for r in 11..15 {
            a.replace(snapshot(r));
            assert_eq!(revision(&b), Some(20));
            assert_eq!(revision(&a), Some(r));
        }
        assert_ne!(a.stamp(), b.stamp());
    }

    #[test]
    fn a_read_inside_a_read_answers_from_the_arc_swap() {
        let (a, b) = (Shared::new(), Shared::new());
        a.replace(snapshot(1));
        b.replace(snapshot(2));
        let nested = with_snapshot(&a, |outer| {
            // The slot is borrowed for `a`; `b` cannot replace it.
            (outer.map(|s| s.revision()), revision(&b), revision(&a))
        });
        assert_eq!(nested, (Some(1), Some(2), Some(1)));
    }
}
