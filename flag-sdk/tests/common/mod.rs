//! Builders shared by the test modules.

#[cfg(feature = "client")]
pub mod sse_server;

use flag_sdk::{CompiledSnapshot, Context, Snapshot};
use serde_json::{json, Value};

/// A boolean flag with `on`/`off` variations, enabled, serving `fallthrough`, plus `extra`
/// fields merged over it.
pub fn bool_flag(key: &str, extra: Value) -> Value {
    let mut flag = json!({
        "key": key, "kind": "boolean", "version": 1, "enabled": true,
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "off_variation": "off",
        "fallthrough": {"variation": "off"}
    });
    merge(&mut flag, extra);
    flag
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, extra) {
        a.extend(b);
    }
}

/// A snapshot of `flags` and `segments` (JSON arrays of objects with a `key`).
pub fn snapshot(flags: Vec<Value>, segments: Vec<Value>) -> Snapshot {
    let by_key = |items: Vec<Value>| -> serde_json::Map<String, Value> {
        items
            .into_iter()
            .map(|v| (v["key"].as_str().unwrap().to_owned(), v))
            .collect()
    };
    serde_json::from_value(json!({
        "environment": "production", "revision": 1,
        "flags": by_key(flags), "segments": by_key(segments)
    }))
    .expect("test snapshot must parse")
}

pub fn compiled(flags: Vec<Value>, segments: Vec<Value>) -> CompiledSnapshot {
    CompiledSnapshot::new(snapshot(flags, segments))
}

pub fn ctx(value: Value) -> Context {
    Context::from_json(value).expect("test context must parse")
}

/// The reason of evaluating `key` as JSON.
pub fn reason(s: &CompiledSnapshot, key: &str, context: &Context) -> Value {
    serde_json::to_value(&s.evaluate(key, context).reason).unwrap()
}
