//! The bench snapshot as LaunchDarkly flags and segments, for its evaluation crate.
//!
//! The models match closely: variations `[true, false]`, the off variation, rules of clauses
//! (`in_segment` is `segmentMatch`, `semver_gt` is `semVerGreaterThan`, `matches` is
//! `matches`), and rollouts in the same 100,000 weight units. Where the engines differ: LD
//! buckets by SHA-1 of `key.salt.bucketBy`, ours by murmur3, so a given context may land on
//! the other side of a 10% line (the bench asserts each engine's share over many contexts);
//! LD compiles a `matches` clause's regex on every evaluation.
//!
//! [`Store`] reads as the LaunchDarkly server SDK's in-memory store does: a read lock on the
//! flag map and a clone of the flag, then `evaluate`.

use std::collections::HashMap;
use std::sync::RwLock;

use flag_sdk::{Clause, Op, Serve, Snapshot};
use launchdarkly_server_sdk_evaluation::{
    evaluate, AttributeValue, Context, ContextBuilder, Flag, Segment,
};
use serde_json::{json, Value};

/// Flags and segments behind a lock, as the SDK holds them.
pub struct Store {
    flags: RwLock<HashMap<String, Flag>>,
    segments: RwLock<HashMap<String, Segment>>,
}

impl launchdarkly_server_sdk_evaluation::Store for Store {
    fn flag(&self, flag_key: &str) -> Option<Flag> {
        self.flags.read().ok()?.get(flag_key).cloned()
    }

    fn segment(&self, segment_key: &str) -> Option<Segment> {
        self.segments.read().ok()?.get(segment_key).cloned()
    }
}

impl Store {
    /// What the SDK's `bool_variation` does: look the flag up, evaluate, or the default.
    pub fn bool_variation(&self, key: &str, ctx: &Context, default: bool) -> bool {
        use launchdarkly_server_sdk_evaluation::Store as _;
        let Some(flag) = self.flag(key) else {
            return default;
        };
        evaluate(self, &flag, ctx, None)
            .value
            .and_then(|v| v.as_bool())
            .unwrap_or(default)
    }
}

/// A store loaded with `snapshot`'s flags.
pub fn store(snapshot: &Snapshot) -> Store {
    let flags = snapshot
        .flags
        .values()
        .map(|flag| {
            let index = |v: &str| usize::from(v != "on");
            let serve = |serve: &Serve| match serve {
                Serve::Variation(v) => json!({"variation": index(v)}),
                Serve::Rollout(r) => json!({"rollout": {"bucketBy": r.bucket_by, "variations":
                    r.weights.iter().map(|w| json!({"variation": index(&w.variation), "weight": w.weight}))
                        .collect::<Vec<_>>()}}),
                other => panic!("no LaunchDarkly equivalent for {other:?}"),
            };
            let rules: Vec<Value> = flag
                .rules
                .iter()
                .map(|rule| {
                    let mut r = serve(&rule.serve);
                    r["id"] = json!(rule.id);
                    r["trackEvents"] = json!(false);
                    r["clauses"] = rule.clauses.iter().map(clause).collect();
                    r
                })
                .collect();
            let ld = json!({
                "key": flag.key, "version": flag.version, "on": flag.enabled,
                "targets": [], "rules": rules, "prerequisites": [],
                "fallthrough": serve(&flag.fallthrough), "offVariation": index(&flag.off_variation),
                "variations": [true, false], "salt": flag.key,
                "trackEvents": false, "trackEventsFallthrough": false,
            });
            let flag: Flag = serde_json::from_value(ld).expect("LaunchDarkly flag parses");
            (flag.key.clone(), flag)
        })
        .collect();
    let segments = snapshot
        .segments
        .values()
        .map(|s| {
            let rules: Vec<Value> = s
                .rules
                .iter()
                .map(|r| json!({"clauses": r.clauses.iter().map(clause).collect::<Vec<_>>()}))
                .collect();
            let ld = json!({"key": s.key, "version": s.version, "included": s.included,
                "excluded": s.excluded, "rules": rules, "salt": s.key});
            let segment: Segment = serde_json::from_value(ld).expect("LaunchDarkly segment parses");
            (s.key.clone(), segment)
        })
        .collect();
    Store {
        flags: RwLock::new(flags),
        segments: RwLock::new(segments),
    }
}

fn clause(clause: &Clause) -> Value {
    let op = match &clause.op {
        Op::In => "in",
        Op::InSegment => "segmentMatch",
        Op::SemverGt => "semVerGreaterThan",
        Op::Matches => "matches",
        other => panic!("no LaunchDarkly equivalent for {other:?}"),
    };
    json!({"attribute": clause.attribute, "op": op, "values": clause.values, "negate": clause.negate})
}

/// The context: the same key and string attributes.
pub fn context(ctx: &flag_sdk::Context) -> Context {
    let mut builder = ContextBuilder::new(ctx.key());
    for (name, value) in ctx.to_json().as_object().expect("an object") {
        if name != "key" {
            let value = value.as_str().expect("string").to_owned();
            builder.set_value(name, AttributeValue::String(value));
        }
    }
    builder.build().expect("LaunchDarkly context builds")
}
