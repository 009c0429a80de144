//! Property tests: evaluation is total, deterministic, fair and sticky.

use flag_sdk::{CompiledSnapshot, Context, Snapshot};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::common::{bool_flag, compiled};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z0-9.:@ -]{0,12}".prop_map(Value::from),
        Just(json!("2026-01-01T00:00:00Z")),
        Just(json!("1.2.3-rc.1")),
        Just(Value::Null),
    ]
}

fn attribute_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::from),
        1 => Just(json!({"nested": true})),
    ]
}

const OPS: &[&str] = &[
    "in",
    "starts_with",
    "ends_with",
    "contains",
    "matches",
    "lt",
    "lte",
    "gt",
    "gte",
    "before",
    "after",
    "semver_eq",
    "semver_lt",
    "semver_gt",
    "in_segment",
];
const ATTRS: &[&str] = &["key", "a", "b", "c"];
const VARIATIONS: &[&str] = &["on", "off", "nope"];

fn clause() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(ATTRS),
        prop::sample::select(OPS),
        prop::collection::vec(
            prop_oneof![scalar(), Just(json!("s1")), Just(json!("(")), Just(json!("^a"))],
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(attribute, op, values, negate)| {
            json!({"attribute": attribute, "op": op, "values": values, "negate": negate})
        })
}

fn serve() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(VARIATIONS).prop_map(|v| json!({"variation": v})),
        (0u32..=100_000, prop::sample::select(ATTRS)).prop_map(|(w, by)| json!({"rollout": {
            "bucket_by": by,
            "weights": [{"variation": "on", "weight": w}, {"variation": "off", "weight": 100_000 - w}]
        }})),
        (0u32..200_000).prop_map(|w| json!({"rollout": {"weights": [{"variation": "on", "weight": w}]}})),
    ]
}

fn flag(key: String, others: Vec<String>) -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::collection::vec((prop::collection::vec(clause(), 0..3), serve()), 0..3),
        serve(),
        prop::sample::subsequence(others, 0..=2),
        prop::sample::select(VARIATIONS),
    )
        .prop_map(move |(enabled, rules, fallthrough, prereqs, off)| {
            let rules: Vec<Value> = rules
                .into_iter()
                .map(|(clauses, serve)| json!({"clauses": clauses, "serve": serve}))
                .collect();
            let prerequisites: Vec<Value> = prereqs
                .into_iter()
                .map(|f| json!({"flag": f, "variation": "on"}))
                .collect();
            bool_flag(
                &key,
                json!({
                    "enabled": enabled, "rules": rules, "fallthrough": fallthrough,
                    "prerequisites": prerequisites, "off_variation": off,
                    "targets": [{"variation": "on", "keys": ["t1"]}]
                }),
            )
        })
}

fn arbitrary_snapshot() -> impl Strategy<Value = CompiledSnapshot> {
    let keys: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    let flags: Vec<_> = keys.iter().map(|k| flag(k.clone(), keys.clone())).collect();
    let segment = prop::collection::vec(clause(), 0..3).prop_map(|clauses| {
        json!({"key": "s1", "included": ["t1"], "excluded": ["x"], "rules": [{"clauses": clauses}]})
    });
    (flags, segment).prop_map(|(flags, segment)| compiled(flags, vec![segment]))
}

fn context() -> impl Strategy<Value = Context> {
    (
        prop_oneof![
            "[a-z0-9-]{0,10}",
            Just("t1".to_owned()),
            Just("x".to_owned())
        ],
        prop::collection::vec((prop::sample::select(&ATTRS[1..]), attribute_value()), 0..4),
    )
        .prop_map(|(key, attrs)| {
            attrs
                .into_iter()
                .fold(Context::new(key), |c, (name, value)| c.with(name, value))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn evaluation_is_total_and_deterministic(snapshot in arbitrary_snapshot(), ctx in context()) {
        for key in ["f0", "f1", "f2", "f3", "missing"] {
            let first = snapshot.evaluate(key, &ctx);
            let again = snapshot.evaluate(key, &ctx);
            prop_assert_eq!(&first, &again);
            // Either a variation of the flag is served, or the reason says why not.
            let is_error = matches!(first.reason, flag_sdk::Reason::Error { .. });
            prop_assert_eq!(first.value.is_none(), is_error);
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_compiler(value in prop::collection::vec(attribute_value(), 0..6)) {
        // Whatever parses as a snapshot compiles; whatever does not is refused by serde.
        let raw = json!({"environment": "e", "revision": 1, "flags": {"f": {
            "key": "f", "kind": "json", "variations": value.iter().enumerate()
                .map(|(i, v)| json!({"key": format!("v{i}"), "value": v})).collect::<Vec<_>>(),
            "off_variation": "v0", "enabled": true, "fallthrough": {"variation": "v1"}}}});
        if let Ok(snapshot) = serde_json::from_value::<Snapshot>(raw) {
            let compiled = CompiledSnapshot::new(snapshot);
            let _ = compiled.evaluate("f", &Context::new("u"));
        }
    }

    #[test]
    fn raising_the_first_weight_never_moves_a_context_out(low in 0u32..=100_000, extra in 0u32..=100_000, key in "[a-z0-9-]{1,24}") {
        let high = (low + extra).min(100_000);
        let at = |w: u32| compiled(vec![bool_flag("f", json!({"fallthrough": {"rollout": {
            "weights": [{"variation": "on", "weight": w}, {"variation": "off", "weight": 100_000 - w}]}}}))], vec![]);
        let ctx = Context::new(key);
        if at(low).bool_variation("f", &ctx, false) {
            prop_assert!(at(high).bool_variation("f", &ctx, false));
        }
    }
}

#[test]
fn rollout_share_is_within_half_a_point_of_its_weight() {
    for (flag_key, percent) in [
        ("new-checkout", 1u32),
        ("search-v3", 10),
        ("dark-mode", 25),
        ("x", 50),
    ] {
        let weight = percent * 1000;
        let s = compiled(
            vec![bool_flag(
                flag_key,
                json!({"fallthrough": {"rollout": {
            "weights": [{"variation": "on", "weight": weight}, {"variation": "off", "weight": 100_000 - weight}]}}}),
            )],
            vec![],
        );
        // 100,000 random-looking keys (uuid-like, from a fixed-seed generator).
        let mut state = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(percent);
        let mut on = 0u32;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let ctx = Context::new(format!("{state:016x}-{:08x}", state >> 32));
            on += u32::from(s.bool_variation(flag_key, &ctx, false));
        }
        let share = f64::from(on) / 1000.0; // percent
        assert!(
            (share - f64::from(percent)).abs() <= 0.5,
            "{flag_key}: {share}% for a {percent}% rollout"
        );
    }
}
