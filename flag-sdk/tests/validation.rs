//! Validation reports every problem at once, each at its JSON path.

use flag_sdk::validate::{
    check_key, validate_flag, validate_flag_in, validate_segment_in, validate_snapshot,
};
use flag_sdk::{Flag, Segment};
use serde_json::{json, Value};

use crate::common::{bool_flag, snapshot};

fn fields(result: Result<(), flag_sdk::validate::ValidationErrors>) -> Vec<String> {
    result
        .err()
        .map(|e| e.0.into_iter().map(|e| e.field).collect())
        .unwrap_or_default()
}

fn flag(value: Value) -> Flag {
    serde_json::from_value(value).unwrap()
}

#[test]
fn keys_follow_the_contract() {
    for good in ["a", "new-checkout", "0", "a.b_c-d", &"x".repeat(100)] {
        assert!(check_key(good).is_ok(), "{good}");
    }
    for bad in ["", "-a", "A", "new checkout", "ü", &"x".repeat(101), ".a"] {
        assert!(check_key(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_sound_flag_passes() {
    let f = flag(bool_flag(
        "new-checkout",
        json!({
            "targets": [{"variation": "on", "keys": ["u1"]}],
            "rules": [{"id": "benelux", "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}], "serve": {"variation": "on"}}],
            "fallthrough": {"rollout": {"bucket_by": "key", "weights": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}
        }),
    ));
    assert_eq!(validate_flag(&f), Ok(()));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let f = flag(json!({
        "key": "Bad Key", "kind": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "on", "value": "no"}],
        "off_variation": "missing",
        "targets": [{"variation": "nope", "keys": [""]}],
        "rules": [
            {"id": "r", "clauses": [
                {"attribute": "age", "op": "gt", "values": [1]},
                {"attribute": "email", "op": "matches", "values": ["ok", "("]}
            ], "serve": {"variation": "on"}},
            {"id": "r", "clauses": [], "serve": {"rollout": {"weights": [{"variation": "on", "weight": 60000}, {"variation": "x", "weight": 60000}]}}}
        ],
        "fallthrough": {"variation": "gone"}
    }));
    assert_eq!(
        fields(validate_flag(&f)),
        vec![
            "key",
            "variations[1].key",
            "variations[1].value",
            "off_variation",
            "targets[0].variation",
            "targets[0].keys[0]",
            "rules[0].clauses[1].values[1]",
            "rules[1].id",
            "rules[1].clauses",
            "rules[1].serve.rollout.weights[1].variation",
            "rules[1].serve.rollout.weights",
            "fallthrough.variation",
        ]
    );
}

#[test]
fn clause_values_must_suit_the_operator() {
    let clause = |op: &str, values: Value| {
        flag(bool_flag(
            "f",
            json!({"rules": [{"clauses": [{"attribute": "a", "op": op, "values": values}], "serve": {"variation": "on"}}]}),
        ))
    };
    let at = |i: usize| vec![format!("rules[0].clauses[0].values[{i}]")];
    assert_eq!(fields(validate_flag(&clause("lt", json!([1, "2"])))), at(1));
    assert_eq!(
        fields(validate_flag(&clause("starts_with", json!([1])))),
        at(0)
    );
    assert_eq!(
        fields(validate_flag(&clause(
            "before",
            json!(["2026-01-01T00:00:00Z", "soon"])
        ))),
        at(1)
    );
    assert_eq!(
        fields(validate_flag(&clause("semver_gt", json!(["1.2", "one"])))),
        at(1)
    );
    assert_eq!(
        fields(validate_flag(&clause("in", json!([{"a": 1}])))),
        at(0)
    );
    assert_eq!(
        fields(validate_flag(&clause("in_segment", json!(["Not A Key"])))),
        at(0)
    );
    assert_eq!(
        fields(validate_flag(&clause("in", json!([])))),
        vec!["rules[0].clauses[0].values"]
    );
}

#[test]
fn references_are_checked_against_the_environment() {
    let env = snapshot(
        vec![bool_flag("payments-v2", json!({}))],
        vec![json!({"key": "beta"})],
    );
    let good = flag(bool_flag(
        "f",
        json!({
            "prerequisites": [{"flag": "payments-v2", "variation": "on"}],
            "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["beta"]}], "serve": {"variation": "on"}}]
        }),
    ));
    assert_eq!(validate_flag_in(&good, &env), Ok(()));
    let bad = flag(bool_flag(
        "f",
        json!({
            "prerequisites": [{"flag": "payments-v2", "variation": "maybe"}, {"flag": "ghost", "variation": "on"}],
            "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["beta", "gamma"]}], "serve": {"variation": "on"}}]
        }),
    ));
    assert_eq!(
        fields(validate_flag_in(&bad, &env)),
        vec![
            "prerequisites[0].variation",
            "prerequisites[1].flag",
            "rules[0].clauses[0].values[1]"
        ]
    );
}

#[test]
fn prerequisite_cycles_are_rejected_at_write_time() {
    let env = snapshot(
        vec![
            bool_flag(
                "a",
                json!({"prerequisites": [{"flag": "b", "variation": "on"}]}),
            ),
            bool_flag("b", json!({})),
        ],
        vec![],
    );
    let closing = flag(bool_flag(
        "b",
        json!({"prerequisites": [{"flag": "a", "variation": "on"}]}),
    ));
    let errors = validate_flag_in(&closing, &env).unwrap_err();
    assert_eq!(errors.0[0].field, "prerequisites[0].flag");
    assert!(
        errors.0[0].message.contains("cycle"),
        "{}",
        errors.0[0].message
    );
    let own = flag(bool_flag(
        "a",
        json!({"prerequisites": [{"flag": "a", "variation": "on"}]}),
    ));
    assert_eq!(fields(validate_flag(&own)), vec!["prerequisites[0].flag"]);
}

#[test]
fn segment_cycles_are_rejected() {
    let env = snapshot(
        vec![],
        vec![
            json!({"key": "a", "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["b"]}]}]}),
            json!({"key": "b"}),
        ],
    );
    let closing: Segment = serde_json::from_value(
        json!({"key": "b", "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["a"]}]}]}),
    )
    .unwrap();
    assert_eq!(
        fields(validate_segment_in(&closing, &env)),
        vec!["rules[0].clauses[0].values[0]"]
    );
}

#[test]
fn snapshot_paths_start_at_the_snapshot() {
    let s = snapshot(vec![bool_flag("f", json!({"off_variation": "x"}))], vec![]);
    assert_eq!(fields(validate_snapshot(&s)), vec!["flags.f.off_variation"]);
}

#[test]
fn unknown_fields_are_ignored_when_parsing() {
    // An SDK reads what a newer server writes; the server refuses unknown fields on writes.
    let flag = serde_json::from_value::<Flag>(bool_flag("f", json!({"owner": "payments"})));
    assert!(validate_flag(&flag.unwrap()).is_ok());
}

#[test]
fn dates_must_be_rfc3339_with_t_between_date_and_time() {
    let with = |value: &str| {
        bool_flag(
            "f",
            json!({"rules": [{"clauses": [{"attribute": "signup", "op": "before", "values": [value]}],
                              "serve": {"variation": "on"}}]}),
        )
    };
    for good in ["2025-12-31T00:00:00Z", "2025-12-31t00:00:00+01:00"] {
        let flag: Flag = serde_json::from_value(with(good)).unwrap();
        assert!(validate_flag(&flag).is_ok(), "{good}");
    }
    for bad in ["2025-12-31_00:00:00Z", "2025-12-31 00:00:00Z", "2025-12-31"] {
        let flag: Flag = serde_json::from_value(with(bad)).unwrap();
        assert_eq!(
            fields(validate_flag(&flag)),
            vec!["rules[0].clauses[0].values[0]"],
            "{bad}"
        );
    }
    // A context date in another form does not match (and is no error).
    let s = crate::common::compiled(vec![with("2026-01-01T00:00:00Z")], vec![]);
    let at = |signup: &str| {
        s.bool_variation(
            "f",
            &crate::common::ctx(json!({"key": "u", "signup": signup})),
            false,
        )
    };
    assert!(at("2025-12-31T00:00:00Z"));
    assert!(!at("2025-12-31_00:00:00Z"));
}
