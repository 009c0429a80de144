//! The evaluation order and reasons of contract section 3.

use flag_sdk::{bucket, CompiledSnapshot, Context, FlagKind};
use serde_json::json;

use crate::common::{bool_flag, compiled, ctx, reason};

fn rule(clauses: serde_json::Value, serve: &str) -> serde_json::Value {
    json!({"id": "r", "clauses": clauses, "serve": {"variation": serve}})
}

fn one_rule(clause: serde_json::Value) -> CompiledSnapshot {
    compiled(
        vec![bool_flag(
            "f",
            json!({"rules": [rule(json!([clause]), "on")]}),
        )],
        vec![],
    )
}

#[test]
fn unknown_flag_serves_the_default_with_flag_not_found() {
    let s = compiled(vec![], vec![]);
    let c = Context::new("u");
    assert!(s.bool_variation("nope", &c, true));
    assert_eq!(
        reason(&s, "nope", &c),
        json!({"kind": "ERROR", "error": "FLAG_NOT_FOUND"})
    );
}

#[test]
fn disabled_flag_serves_off_variation_before_anything_else() {
    let s = compiled(
        vec![bool_flag(
            "f",
            json!({
                "enabled": false,
                "targets": [{"variation": "on", "keys": ["u"]}],
                "fallthrough": {"variation": "on"}
            }),
        )],
        vec![],
    );
    let c = Context::new("u");
    assert!(!s.bool_variation("f", &c, true));
    assert_eq!(reason(&s, "f", &c), json!({"kind": "OFF"}));
    assert_eq!(s.evaluate("f", &c).variation, Some("off"));
}

#[test]
fn prerequisite_failure_names_the_prerequisite() {
    let parent = |enabled: bool, serve: &str| {
        bool_flag(
            "payments-v2",
            json!({"enabled": enabled, "fallthrough": {"variation": serve}}),
        )
    };
    let child = bool_flag(
        "f",
        json!({
            "prerequisites": [{"flag": "payments-v2", "variation": "on"}],
            "fallthrough": {"variation": "on"}
        }),
    );
    let c = Context::new("u");
    let failed = json!({"kind": "PREREQUISITE_FAILED", "prerequisite": "payments-v2"});

    let s = compiled(vec![parent(true, "on"), child.clone()], vec![]);
    assert_eq!(
        reason(&s, "f", &c),
        json!({"kind": "FALLTHROUGH", "in_rollout": false})
    );
    assert!(s.bool_variation("f", &c, false));

    // Serving another variation fails it.
    let s = compiled(vec![parent(true, "off"), child.clone()], vec![]);
    assert_eq!(reason(&s, "f", &c), failed);
    assert_eq!(s.evaluate("f", &c).variation, Some("off"));

    // Off fails it even when the off variation is the required one.
    let off_on = bool_flag(
        "payments-v2",
        json!({"enabled": false, "off_variation": "on"}),
    );
    let s = compiled(vec![off_on, child.clone()], vec![]);
    assert_eq!(reason(&s, "f", &c), failed);

    // A missing prerequisite fails it.
    let s = compiled(vec![child], vec![]);
    assert_eq!(reason(&s, "f", &c), failed);
}

#[test]
fn prerequisite_cycles_evaluate_to_malformed_flag_without_recursing_forever() {
    let a = bool_flag(
        "a",
        json!({"prerequisites": [{"flag": "b", "variation": "on"}]}),
    );
    let b = bool_flag(
        "b",
        json!({"prerequisites": [{"flag": "a", "variation": "on"}]}),
    );
    let c = bool_flag(
        "c",
        json!({"prerequisites": [{"flag": "a", "variation": "on"}]}),
    );
    let s = compiled(vec![a, b, c], vec![]);
    let u = Context::new("u");
    let malformed = json!({"kind": "ERROR", "error": "MALFORMED_FLAG"});
    assert_eq!(reason(&s, "a", &u), malformed);
    assert_eq!(reason(&s, "b", &u), malformed);
    // A flag that depends on a cycle fails its prerequisite rather than erroring itself.
    assert_eq!(
        reason(&s, "c", &u),
        json!({"kind": "PREREQUISITE_FAILED", "prerequisite": "a"})
    );
}

#[test]
fn targets_win_over_rules() {
    let s = compiled(
        vec![bool_flag(
            "f",
            json!({
                "targets": [{"variation": "off", "keys": ["vip"]}, {"variation": "on", "keys": ["vip", "u2"]}],
                "rules": [rule(json!([{"attribute": "key", "op": "in", "values": ["vip"]}]), "on")],
            }),
        )],
        vec![],
    );
    let vip = Context::new("vip");
    assert_eq!(reason(&s, "f", &vip), json!({"kind": "TARGET_MATCH"}));
    assert_eq!(
        s.evaluate("f", &vip).variation,
        Some("off"),
        "first target list wins"
    );
    assert_eq!(s.evaluate("f", &Context::new("u2")).variation, Some("on"));
}

#[test]
fn first_matching_rule_wins_and_is_reported_with_index_and_id() {
    let s = compiled(
        vec![bool_flag(
            "f",
            json!({"rules": [
                {"clauses": [{"attribute": "country", "op": "in", "values": ["DE"]}], "serve": {"variation": "off"}},
                {"id": "benelux", "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}], "serve": {"variation": "on"}},
                {"id": "all", "clauses": [{"attribute": "country", "op": "starts_with", "values": [""]}], "serve": {"variation": "off"}}
            ]}),
        )],
        vec![],
    );
    let nl = ctx(json!({"key": "u", "country": "NL"}));
    assert_eq!(
        reason(&s, "f", &nl),
        json!({"kind": "RULE_MATCH", "rule_index": 1, "rule_id": "benelux", "in_rollout": false})
    );
    assert!(s.bool_variation("f", &nl, false));
    let de = ctx(json!({"key": "u", "country": "DE"}));
    assert_eq!(
        reason(&s, "f", &de),
        json!({"kind": "RULE_MATCH", "rule_index": 0, "in_rollout": false})
    );
    let nowhere = Context::new("u");
    assert_eq!(
        reason(&s, "f", &nowhere),
        json!({"kind": "FALLTHROUGH", "in_rollout": false})
    );
}

#[test]
fn clauses_are_anded_and_values_ored() {
    let s = one_rule(json!({"attribute": "country", "op": "in", "values": ["NL", "BE"]}));
    assert!(s.bool_variation("f", &ctx(json!({"key": "u", "country": "BE"})), false));
    let two = compiled(
        vec![bool_flag(
            "f",
            json!({"rules": [rule(json!([
            {"attribute": "country", "op": "in", "values": ["NL"]},
            {"attribute": "plan", "op": "in", "values": ["pro"]}
        ]), "on")]}),
        )],
        vec![],
    );
    assert!(two.bool_variation(
        "f",
        &ctx(json!({"key": "u", "country": "NL", "plan": "pro"})),
        false
    ));
    assert!(!two.bool_variation(
        "f",
        &ctx(json!({"key": "u", "country": "NL", "plan": "free"})),
        false
    ));
}

#[test]
fn missing_attribute_never_matches_even_negated() {
    let s = one_rule(json!({"attribute": "country", "op": "in", "values": ["NL"], "negate": true}));
    assert!(!s.bool_variation("f", &Context::new("u"), false), "missing");
    assert!(
        !s.bool_variation("f", &ctx(json!({"key": "u", "country": null})), false),
        "null"
    );
    assert!(s.bool_variation("f", &ctx(json!({"key": "u", "country": "DE"})), false));
    assert!(!s.bool_variation("f", &ctx(json!({"key": "u", "country": "NL"})), false));
}

#[test]
fn wrong_type_does_not_match_and_negate_inverts_that() {
    let s = one_rule(json!({"attribute": "age", "op": "gt", "values": [18]}));
    assert!(!s.bool_variation("f", &ctx(json!({"key": "u", "age": "30"})), false));
    assert!(s.bool_variation("f", &ctx(json!({"key": "u", "age": 30})), false));
    let negated = one_rule(json!({"attribute": "age", "op": "gt", "values": [18], "negate": true}));
    assert!(negated.bool_variation("f", &ctx(json!({"key": "u", "age": "30"})), false));
    assert!(negated.bool_variation("f", &ctx(json!({"key": "u", "age": {"years": 30}})), false));
}

#[test]
fn array_attributes_match_when_any_element_matches() {
    let s = one_rule(json!({"attribute": "groups", "op": "in", "values": ["beta", "staff"]}));
    assert!(s.bool_variation(
        "f",
        &ctx(json!({"key": "u", "groups": ["x", "staff"]})),
        false
    ));
    assert!(!s.bool_variation("f", &ctx(json!({"key": "u", "groups": ["x", "y"]})), false));
    assert!(!s.bool_variation("f", &ctx(json!({"key": "u", "groups": []})), false));
    let negated =
        one_rule(json!({"attribute": "groups", "op": "in", "values": ["beta"], "negate": true}));
    assert!(!negated.bool_variation(
        "f",
        &ctx(json!({"key": "u", "groups": ["beta", "x"]})),
        false
    ));
    assert!(negated.bool_variation("f", &ctx(json!({"key": "u", "groups": ["x"]})), false));
}

#[test]
fn key_attribute_is_the_context_key() {
    let s = one_rule(json!({"attribute": "key", "op": "ends_with", "values": ["@example.com"]}));
    assert!(s.bool_variation("f", &Context::new("ann@example.com"), false));
    assert!(!s.bool_variation("f", &Context::new("ann@example.org"), false));
}

fn segment_flag() -> serde_json::Value {
    bool_flag(
        "f",
        json!({"rules": [rule(json!([{"attribute": "", "op": "in_segment", "values": ["beta"]}]), "on")]}),
    )
}

#[test]
fn segment_membership_is_included_then_excluded_then_rules() {
    let beta = json!({
        "key": "beta", "version": 1, "included": ["in", "both"], "excluded": ["out", "both"],
        "rules": [{"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}]
    });
    let s = compiled(vec![segment_flag()], vec![beta]);
    let on = |c: serde_json::Value| s.bool_variation("f", &ctx(c), false);
    assert!(on(json!({"key": "in"})));
    assert!(
        on(json!({"key": "both", "plan": "free"})),
        "included wins over excluded"
    );
    assert!(
        !on(json!({"key": "out", "plan": "pro"})),
        "excluded wins over rules"
    );
    assert!(on(json!({"key": "u", "plan": "pro"})));
    assert!(!on(json!({"key": "u", "plan": "free"})));
}

#[test]
fn unknown_segment_is_never_a_member_and_negated_segment_inverts() {
    let s = compiled(vec![segment_flag()], vec![]);
    assert!(!s.bool_variation("f", &Context::new("u"), false));
    let negated = compiled(
        vec![bool_flag(
            "f",
            json!({"rules": [rule(json!([{"attribute": "", "op": "in_segment", "values": ["beta"], "negate": true}]), "on")]}),
        )],
        vec![json!({"key": "beta", "included": ["in"]})],
    );
    assert!(!negated.bool_variation("f", &Context::new("in"), false));
    assert!(negated.bool_variation("f", &Context::new("other"), false));
}

#[test]
fn segment_cycles_terminate() {
    let a = json!({"key": "a", "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["b"]}]}]});
    let b = json!({"key": "b", "rules": [{"clauses": [{"attribute": "", "op": "in_segment", "values": ["a"]}]}]});
    let flag = bool_flag(
        "f",
        json!({"rules": [rule(json!([{"attribute": "", "op": "in_segment", "values": ["a"]}]), "on")]}),
    );
    let s = compiled(vec![flag], vec![a, b]);
    assert!(!s.bool_variation("f", &Context::new("u"), false));
}

#[test]
fn rollout_follows_the_bucketing_formula_and_says_in_rollout() {
    let weights =
        json!([{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]);
    let s = compiled(
        vec![bool_flag(
            "f",
            json!({"fallthrough": {"rollout": {"bucket_by": "key", "weights": weights}}}),
        )],
        vec![],
    );
    for i in 0..2000 {
        let key = format!("user-{i}");
        let expected = bucket::bucket("f", &key) < 25000;
        let c = Context::new(key);
        assert_eq!(s.bool_variation("f", &c, !expected), expected);
        assert_eq!(
            reason(&s, "f", &c),
            json!({"kind": "FALLTHROUGH", "in_rollout": true})
        );
    }
}

#[test]
fn rollout_uses_salt_bucket_by_and_falls_back_to_the_key() {
    let weights =
        json!([{"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]);
    let s = compiled(
        vec![bool_flag(
            "f",
            json!({"fallthrough": {"rollout": {"bucket_by": "org", "salt": "s1", "weights": weights}}}),
        )],
        vec![],
    );
    for i in 0..500 {
        let org = format!("org-{i}");
        let expected = bucket::bucket("s1", &org) < 50000;
        assert_eq!(
            s.bool_variation(
                "f",
                &ctx(json!({"key": format!("u{i}"), "org": org})),
                !expected
            ),
            expected
        );
        let by_number = bucket::bucket("s1", &i.to_string()) < 50000;
        assert_eq!(
            s.bool_variation("f", &ctx(json!({"key": "x", "org": i})), !by_number),
            by_number
        );
        let key = format!("k{i}");
        let by_key = bucket::bucket("s1", &key) < 50000;
        assert_eq!(
            s.bool_variation("f", &Context::new(key), !by_key),
            by_key,
            "missing -> key"
        );
    }
}

#[test]
fn rule_rollout_reports_in_rollout() {
    let weights = json!([{"variation": "on", "weight": 100000}, {"variation": "off", "weight": 0}]);
    let s = compiled(
        vec![bool_flag(
            "f",
            json!({"rules": [{"id": "all", "clauses": [{"attribute": "key", "op": "starts_with", "values": [""]}],
            "serve": {"rollout": {"bucket_by": "key", "weights": weights}}}]}),
        )],
        vec![],
    );
    let c = Context::new("u");
    assert!(s.bool_variation("f", &c, false));
    assert_eq!(
        reason(&s, "f", &c),
        json!({"kind": "RULE_MATCH", "rule_index": 0, "rule_id": "all", "in_rollout": true})
    );
}

#[test]
fn typed_access_checks_the_kind() {
    let string_flag = json!({
        "key": "color", "kind": "string", "enabled": true,
        "variations": [{"key": "red", "value": "red"}, {"key": "blue", "value": "blue"}],
        "off_variation": "red", "fallthrough": {"variation": "blue"}
    });
    let number_flag = json!({
        "key": "limit", "kind": "number", "enabled": true,
        "variations": [{"key": "low", "value": 10}, {"key": "high", "value": 99.5}],
        "off_variation": "low", "fallthrough": {"variation": "high"}
    });
    let s = compiled(
        vec![string_flag, number_flag, bool_flag("b", json!({}))],
        vec![],
    );
    let c = Context::new("u");
    assert_eq!(s.string_variation("color", &c, "none"), "blue");
    assert_eq!(s.float_variation("limit", &c, 0.0), 99.5);
    assert!(
        s.bool_variation("color", &c, true),
        "wrong kind gives the default"
    );
    assert_eq!(s.string_variation("b", &c, "none"), "none");
    let wrong = s.evaluate_kind("color", &c, FlagKind::Boolean);
    assert_eq!(
        serde_json::to_value(&wrong.reason).unwrap(),
        json!({"kind": "ERROR", "error": "WRONG_TYPE"})
    );
    assert_eq!(wrong.value, None);
    let as_json = s.evaluate_kind("color", &c, FlagKind::Json);
    assert_eq!(
        as_json.value,
        Some(&json!("blue")),
        "json access reads any kind"
    );
}

#[test]
fn unvalidated_bad_flags_evaluate_to_malformed_flag() {
    let bad_weights = bool_flag(
        "w",
        json!({"fallthrough": {"rollout": {"weights": [{"variation": "on", "weight": 5}]}}}),
    );
    let bad_variation = bool_flag("v", json!({"off_variation": "nope"}));
    let bad_regex = bool_flag(
        "r",
        json!({"rules": [rule(json!([{"attribute": "a", "op": "matches", "values": ["("]}]), "on")]}),
    );
    let bad_kind = bool_flag(
        "k",
        json!({"variations": [{"key": "on", "value": "yes"}, {"key": "off", "value": false}]}),
    );
    let s = compiled(
        vec![bad_weights, bad_variation, bad_regex, bad_kind],
        vec![],
    );
    for key in ["w", "v", "r", "k"] {
        assert_eq!(
            reason(&s, key, &Context::new("u")),
            json!({"kind": "ERROR", "error": "MALFORMED_FLAG"}),
            "{key}"
        );
    }
}
