//! Snapshot parsing, validation, compilation and evaluation must never panic, whatever the
//! bytes (a snapshot file, a cache file or a stream event can hold anything).
//!
//! Input: a snapshot as JSON, optionally followed by a NUL byte and a JSON array of contexts
//! (NUL cannot occur in JSON text, so the split is unambiguous). Every flag of the snapshot,
//! and one that is missing, is evaluated for those contexts and for contexts made from the
//! snapshot's own target keys, segment keys and clause values, through every entry point.
//!
//! Besides "no panic", it checks what must hold for any snapshot: evaluation is
//! deterministic, a served variation is the flag's own, and a snapshot that passes
//! validation never gives `MALFORMED_FLAG`.
#![no_main]

use flag_sdk::validate::{validate_flag, validate_flag_in, validate_segment_in, validate_snapshot};
use flag_sdk::{CompiledSnapshot, Context, ErrorKind, FlagKind, Reason, Snapshot};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Enough contexts to reach every clause of a small snapshot, few enough to stay fast.
const MAX_CONTEXTS: usize = 48;
const KINDS: [FlagKind; 4] = [
    FlagKind::Boolean,
    FlagKind::String,
    FlagKind::Number,
    FlagKind::Json,
];

fuzz_target!(|data: &[u8]| {
    let (snapshot_bytes, contexts_bytes) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(snapshot) = serde_json::from_slice::<Snapshot>(snapshot_bytes) else {
        return;
    };

    let valid = validate_snapshot(&snapshot).is_ok();
    for flag in snapshot.flags.values() {
        let _ = validate_flag(flag);
        let _ = validate_flag_in(flag, &snapshot);
    }
    for segment in snapshot.segments.values() {
        let _ = validate_segment_in(segment, &snapshot);
    }

    let mut contexts = given_contexts(contexts_bytes);
    derived_contexts(&snapshot, &mut contexts);
    contexts.truncate(MAX_CONTEXTS);

    let compiled = CompiledSnapshot::new(snapshot);
    let source = compiled.snapshot().clone();
    for ctx in &contexts {
        for (key, flag) in &source.flags {
            let first = compiled.evaluate(key, ctx);
            assert_eq!(first, compiled.evaluate(key, ctx), "not deterministic");
            match (first.value, first.variation, first.variation_index) {
                (Some(value), Some(variation), Some(i)) => {
                    let own = &flag.variations[i];
                    assert_eq!((value, variation), (&own.value, own.key.as_str()));
                }
                (None, None, None) => {
                    assert!(
                        matches!(first.reason, Reason::Error { .. }),
                        "no value without an error"
                    );
                }
                _ => panic!("value, variation and index disagree: {first:?}"),
            }
            if valid {
                assert_ne!(
                    first.reason,
                    Reason::Error {
                        error: ErrorKind::MalformedFlag
                    },
                    "a valid snapshot's flag `{key}` is malformed for {ctx:?}"
                );
            }
            let reason = serde_json::to_value(&first.reason).expect("a reason serializes");
            let back: Reason<'_> = serde_json::from_value(reason).expect("a reason reads back");
            assert_eq!(back, first.reason);
            for kind in KINDS {
                let _ = compiled.evaluate_kind(key, ctx, kind);
            }
            let _ = compiled.bool_variation(key, ctx, false);
            let _ = compiled.string_variation(key, ctx, "default");
            let _ = compiled.float_variation(key, ctx, 0.0);
        }
        let missing = compiled.evaluate("\u{0}missing", ctx);
        assert_eq!(
            missing.reason,
            Reason::Error {
                error: ErrorKind::FlagNotFound
            }
        );
    }
    let _ = compiled.rollout_flags().count();
});

/// The contexts after the NUL byte: a JSON array of objects, or one object.
fn given_contexts(bytes: Option<&[u8]>) -> Vec<Context> {
    let Some(Ok(value)) = bytes.map(serde_json::from_slice::<Value>) else {
        return Vec::new();
    };
    let items = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|v| Context::from_json(v).ok())
        .collect()
}

/// Contexts the snapshot itself suggests: its target and segment keys, and one context per
/// clause value (plus one holding all of a clause's values as an array).
fn derived_contexts(snapshot: &Snapshot, out: &mut Vec<Context>) {
    out.push(Context::new(""));
    out.push(Context::new("user-1"));
    let keys = snapshot
        .flags
        .values()
        .flat_map(|f| f.targets.iter().flat_map(|t| t.keys.iter()))
        .chain(
            snapshot
                .segments
                .values()
                .flat_map(|s| s.included.iter().chain(s.excluded.iter())),
        );
    out.extend(
        keys.take(MAX_CONTEXTS / 4)
            .map(|key| Context::new(key.as_str())),
    );
    let clauses = snapshot
        .flags
        .values()
        .flat_map(|f| f.rules.iter().flat_map(|r| r.clauses.iter()))
        .chain(
            snapshot
                .segments
                .values()
                .flat_map(|s| s.rules.iter().flat_map(|r| r.clauses.iter())),
        );
    for clause in clauses {
        if out.len() >= MAX_CONTEXTS {
            return;
        }
        for value in &clause.values {
            out.push(Context::new("user-1").with(clause.attribute.as_str(), value.clone()));
        }
        out.push(Context::new("user-2").with(clause.attribute.as_str(), clause.values.clone()));
    }
}
