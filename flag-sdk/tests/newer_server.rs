//! An SDK older than its server: a snapshot carrying an operator, a flag kind, a serve form
//! and fields this version does not know still loads; each unknown part costs its clause or
//! its flag, and everything else evaluates as before (`data/newer_server_snapshot.json`).

use flag_sdk::validate::validate_snapshot;
use flag_sdk::{CompiledSnapshot, Context, FlagKind, Op, Serve, Snapshot};
use serde_json::{json, Value};

use crate::common::{ctx, reason};

const NEWER: &str = include_str!("data/newer_server_snapshot.json");

fn newer() -> Snapshot {
    serde_json::from_str(NEWER).expect("a newer server's snapshot must load")
}

fn malformed() -> Value {
    json!({"kind": "ERROR", "error": "MALFORMED_FLAG"})
}

#[test]
fn unknown_fields_at_every_level_are_ignored() {
    let s = CompiledSnapshot::new(newer());
    let nl = ctx(json!({"key": "u", "country": "NL"}));
    assert!(s.bool_variation("plain", &nl, false));
    assert_eq!(
        reason(&s, "plain", &nl),
        json!({"kind": "RULE_MATCH", "rule_index": 0, "rule_id": "nl", "in_rollout": true})
    );
    let vip = Context::new("vip");
    assert_eq!(reason(&s, "plain", &vip), json!({"kind": "TARGET_MATCH"}));
    let de = ctx(json!({"key": "u", "country": "DE"}));
    assert!(!s.bool_variation("plain", &de, true));
    assert_eq!(
        reason(&s, "plain", &de),
        json!({"kind": "FALLTHROUGH", "in_rollout": false})
    );
    // A segment with unknown fields decides membership as before.
    let staff = ctx(json!({"key": "bob", "email": "bob@example.com"}));
    assert!(s.bool_variation("plain-segment", &staff, false));
    assert!(s.bool_variation("plain-segment", &Context::new("alice"), false));
    assert!(!s.bool_variation("plain-segment", &Context::new("eve"), true));
}

#[test]
fn a_kill_next_to_unknown_parts_takes_effect() {
    let s = CompiledSnapshot::new(newer());
    let here = ctx(json!({"key": "u", "location": {"lat": 52.37, "lon": 4.9}}));
    assert!(!s.bool_variation("killed", &here, true));
    assert_eq!(reason(&s, "killed", &here), json!({"kind": "OFF"}));
}

#[test]
fn an_unknown_operator_costs_its_clause_which_never_matches_even_negated() {
    let s = CompiledSnapshot::new(newer());
    let here = ctx(json!({"key": "u", "location": {"lat": 52.37, "lon": 4.9}}));
    for c in [here, Context::new("u")] {
        let e = s.evaluate("new-operator", &c);
        assert_eq!(e.variation, Some("other"), "neither rule matches");
        assert_eq!(
            reason(&s, "new-operator", &c),
            json!({"kind": "FALLTHROUGH", "in_rollout": false})
        );
    }
}

#[test]
fn an_unknown_kind_or_serve_form_costs_that_flag() {
    let s = CompiledSnapshot::new(newer());
    let u = Context::new("u");
    for key in ["new-kind", "new-serve"] {
        assert_eq!(reason(&s, key, &u), malformed(), "{key}");
    }
    // Typed getters serve the caller's default and say why.
    assert!(s.bool_variation("new-serve", &u, true));
    assert_eq!(s.string_variation("new-kind", &u, "default"), "default");
    let typed = s.evaluate_kind("new-kind", &u, FlagKind::String);
    assert_eq!(
        serde_json::to_value(&typed.reason).unwrap(),
        malformed(),
        "a flag of an unknown kind is malformed, not of the wrong type"
    );
}

#[test]
fn a_segment_with_an_unknown_operator_makes_its_flags_malformed() {
    // Not "not a member": behind `negate` that would serve `on` to everyone.
    let s = CompiledSnapshot::new(newer());
    for c in [
        Context::new("u"),
        ctx(json!({"key": "u", "location": {"lat": 52.37, "lon": 4.9}})),
    ] {
        assert_eq!(reason(&s, "new-segment", &c), malformed());
        assert!(!s.bool_variation("new-segment", &c, false));
    }
}

#[test]
fn unknown_parts_are_written_back_as_read_and_validation_refuses_them() {
    let snapshot = newer();
    let flag = &snapshot.flags["new-operator"];
    assert_eq!(
        flag.rules[0].clauses[0].op,
        Op::Unknown("geo_within".into())
    );
    assert!(matches!(
        snapshot.flags["new-serve"].fallthrough,
        Serve::Unknown(_)
    ));
    let written = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(written["flags"]["new-kind"]["kind"], "duration");
    assert_eq!(
        written["flags"]["new-serve"]["fallthrough"],
        json!({"multi_armed_bandit": {"arms": ["on", "off"]}})
    );
    let reread: Snapshot = serde_json::from_value(written).unwrap();
    assert_eq!(reread, snapshot);

    let errors = validate_snapshot(&snapshot).unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "flags.killed.rules[0].clauses[0].op",
            "flags.new-kind.kind",
            "flags.new-operator.rules[0].clauses[0].op",
            "flags.new-operator.rules[1].clauses[0].op",
            "flags.new-serve.fallthrough",
            "segments.near-office.rules[0].clauses[0].op",
        ]
    );
    assert!(errors.0[0]
        .message
        .contains("unknown operator `geo_within`"));
}
