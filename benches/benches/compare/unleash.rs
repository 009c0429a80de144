//! The bench snapshot as Unleash client features, for yggdrasil.
//!
//! Each of our flags becomes one feature: a disabled flag a disabled feature, each rule a
//! strategy (its clauses constraints, an `in_segment` clause the strategy's segment), and a
//! fallthrough that serves `on` a last strategy (`default`, or `flexibleRollout` for a
//! rollout). A feature is on when any strategy matches, in order, as our rules are tried.
//!
//! Where the engines differ: an Unleash segment is one list of constraints, so a segment's
//! `included` keys have no equivalent and are left out (the bench context is not in them, so
//! the answer is the same and yggdrasil does slightly less work); Unleash rollouts hash
//! `groupId:userId` into 100 buckets, ours hash into 100,000, so a given context may land on
//! the other side of a 10% line (the bench asserts each engine's share over many contexts).

use std::collections::HashMap;

use flag_sdk::{Clause, Context, Op, Serve, Snapshot};
use serde_json::{json, Value};
use unleash_yggdrasil::{ClientFeatures, EngineState};

/// An engine loaded with `snapshot`'s flags.
pub fn engine(snapshot: &Snapshot) -> EngineState {
    let segment_ids: HashMap<&str, usize> = snapshot
        .segments
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i + 1))
        .collect();
    let segments: Vec<Value> = snapshot
        .segments
        .values()
        .map(|s| {
            assert_eq!(s.rules.len(), 1, "an Unleash segment is one rule");
            let constraints: Vec<Value> = s.rules[0].clauses.iter().map(constraint).collect();
            json!({"id": segment_ids[s.key.as_str()], "constraints": constraints})
        })
        .collect();
    let features: Vec<Value> = snapshot
        .flags
        .values()
        .map(|flag| {
            let mut strategies: Vec<Value> = flag
                .rules
                .iter()
                .map(|rule| {
                    assert!(matches!(&rule.serve, Serve::Variation(v) if v == "on"));
                    let (segments, clauses): (Vec<&Clause>, Vec<&Clause>) =
                        rule.clauses.iter().partition(|c| c.op == Op::InSegment);
                    let segments: Vec<usize> = segments
                        .iter()
                        .map(|c| segment_ids[c.values[0].as_str().expect("segment key")])
                        .collect();
                    let constraints: Vec<Value> = clauses.into_iter().map(constraint).collect();
                    json!({"name": "default", "constraints": constraints, "segments": segments})
                })
                .collect();
            match &flag.fallthrough {
                Serve::Variation(v) if v == "on" => strategies.push(json!({"name": "default"})),
                Serve::Variation(_) => {}
                Serve::Rollout(rollout) => {
                    let on = rollout.weights.iter().find(|w| w.variation == "on");
                    let percent = on.map_or(0, |w| w.weight / 1000);
                    strategies.push(json!({"name": "flexibleRollout", "parameters": {
                        "rollout": percent.to_string(), "stickiness": "userId",
                        "groupId": flag.key}}));
                }
                other => panic!("no Unleash equivalent for {other:?}"),
            }
            json!({"name": flag.key, "enabled": flag.enabled, "strategies": strategies})
        })
        .collect();
    let features: ClientFeatures = serde_json::from_value(json!({
        "version": 2, "features": features, "segments": segments
    }))
    .expect("Unleash features parse");
    let engine = EngineState::default();
    let warnings = engine.take_state(unleash_yggdrasil::UpdateMessage::FullResponse(features));
    assert!(
        warnings.as_ref().is_none_or(Vec::is_empty),
        "yggdrasil warns: {warnings:?}"
    );
    engine
}

fn constraint(clause: &Clause) -> Value {
    assert!(!clause.negate);
    let name = match clause.attribute.as_str() {
        "key" => "userId",
        other => other,
    };
    match &clause.op {
        Op::In => json!({"contextName": name, "operator": "IN", "values": clause.values}),
        Op::SemverGt => {
            json!({"contextName": name, "operator": "SEMVER_GT", "value": clause.values[0]})
        }
        Op::Matches => {
            json!({"contextName": name, "operator": "REGEX", "value": clause.values[0]})
        }
        other => panic!("no Unleash equivalent for {other:?}"),
    }
}

/// The context: our key as `userId`, every other attribute a property.
pub fn context(ctx: &Context) -> unleash_yggdrasil::Context {
    let json = ctx.to_json();
    let properties: HashMap<String, String> = json
        .as_object()
        .expect("a context is an object")
        .iter()
        .filter(|(name, _)| *name != "key")
        .map(|(name, value)| (name.clone(), value.as_str().expect("string").to_owned()))
        .collect();
    unleash_yggdrasil::Context {
        user_id: Some(ctx.key().to_owned()),
        session_id: None,
        environment: None,
        app_name: None,
        current_time: None,
        remote_address: None,
        properties: Some(properties),
    }
}
