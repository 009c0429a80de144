//! Evaluating a boolean flag allocates nothing: proved with a counting global allocator that
//! counts only on the thread that asks, so other tests running in parallel do not disturb it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use flag_sdk::Context;
use serde_json::json;

use crate::common::{bool_flag, compiled};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    // `try_with`: thread-locals may already be gone while a thread shuts down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(|n| n.get())
}

#[test]
fn boolean_evaluation_allocates_nothing() {
    let rollout = json!({"rollout": {"bucket_by": "org", "weights": [
        {"variation": "on", "weight": 10000}, {"variation": "off", "weight": 90000}]}});
    let s = compiled(
        vec![
            bool_flag("killed", json!({"enabled": false})),
            bool_flag(
                "rule",
                json!({"rules": [{"id": "benelux", "clauses": [
                {"attribute": "country", "op": "in", "values": ["NL", "BE"]},
                {"attribute": "email", "op": "matches", "values": ["@example\\.com$"]},
                {"attribute": "version", "op": "semver_gt", "values": ["1.2.0"]}
            ], "serve": {"variation": "on"}}]}),
            ),
            bool_flag("rollout", json!({"fallthrough": rollout})),
        ],
        vec![],
    );
    let ctx = Context::new("user-1")
        .with("country", "NL")
        .with("email", "ann@example.com")
        .with("version", "1.10.0")
        .with("org", 4711);
    // Warm up: the regex engine keeps a per-thread cache it fills on first use.
    for key in ["killed", "rule", "rollout"] {
        s.bool_variation(key, &ctx, false);
    }
    let mut served = Vec::with_capacity(3000);
    let n = allocations_during(|| {
        for _ in 0..1000 {
            served.push(s.bool_variation("killed", &ctx, true));
            served.push(s.bool_variation("rule", &ctx, false));
            served.push(s.bool_variation("rollout", &ctx, false));
        }
    });
    assert_eq!(n, 0, "evaluation allocated {n} times");
    assert!(!served[0] && served[1], "the paths under test were taken");
    // The counter itself works: an allocation is seen.
    assert_eq!(allocations_during(|| drop(vec![1u8; 8])), 1);
}
