//! Chains of prerequisites and of nested segments, and segments that cannot be decided: what
//! evaluation goes no deeper than ([`flag_sdk::MAX_DEPTH`]) validation refuses at write
//! time, and a snapshot that skipped validation evaluates such flags to `MALFORMED_FLAG`,
//! never to an answer that a cut-short walk would give.

use flag_sdk::validate::{validate_flag_in, validate_segment_in, validate_snapshot};
use flag_sdk::{CompiledSnapshot, Context, Flag, Segment, MAX_DEPTH};
use serde_json::{json, Value};

use crate::common::{bool_flag, compiled, reason, snapshot};

fn malformed() -> Value {
    json!({"kind": "ERROR", "error": "MALFORMED_FLAG"})
}

fn in_segment(key: &str, negate: bool) -> Value {
    json!({"attribute": "", "op": "in_segment", "values": [key], "negate": negate})
}

/// Segments `s1` → `s2` → ... → `s{n}`, each naming the next; `s{n}` includes `u`.
fn segment_chain(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| match i == n {
            true => json!({"key": format!("s{i}"), "included": ["u"]}),
            false => json!({"key": format!("s{i}"),
                            "rules": [{"clauses": [in_segment(&format!("s{}", i + 1), false)]}]}),
        })
        .collect()
}

/// Everyone outside segment `segment` gets `on`.
fn outside(segment: &str) -> Value {
    bool_flag(
        "f",
        json!({"rules": [{"clauses": [in_segment(segment, true)], "serve": {"variation": "on"}}]}),
    )
}

/// Flags `f0` → `f1` → ... → `f{n-1}`, each the next one's dependent, all serving `on`.
fn prerequisite_chain(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let prerequisites = match i + 1 < n {
                true => json!([{"flag": format!("f{}", i + 1), "variation": "on"}]),
                false => json!([]),
            };
            bool_flag(
                &format!("f{i}"),
                json!({"prerequisites": prerequisites, "fallthrough": {"variation": "on"}}),
            )
        })
        .collect()
}

#[test]
fn segment_chains_up_to_the_limit_evaluate_and_deeper_ones_are_malformed() {
    let s = compiled(vec![outside("s1")], segment_chain(MAX_DEPTH));
    assert!(
        !s.bool_variation("f", &Context::new("u"), true),
        "u is a member"
    );
    assert!(s.bool_variation("f", &Context::new("v"), false));

    let s = compiled(vec![outside("s1")], segment_chain(MAX_DEPTH + 1));
    for key in ["u", "v"] {
        assert_eq!(reason(&s, "f", &Context::new(key)), malformed(), "{key}");
        assert!(!s.bool_variation("f", &Context::new(key), false));
    }
}

#[test]
fn segment_chains_deeper_than_the_limit_are_refused_at_write_time() {
    let deep = snapshot(vec![outside("s1")], segment_chain(MAX_DEPTH + 1));
    let errors = validate_snapshot(&deep).unwrap_err();
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field == "flags.f.rules[0].clauses[0].values[0]"),
        "{errors}"
    );
    assert!(errors.to_string().contains("nested segments"), "{errors}");

    // Growing a valid chain at its bottom or at its top is refused, naming the clause value.
    let mut segments = segment_chain(MAX_DEPTH);
    segments.push(json!({"key": "extra"}));
    let valid = snapshot(vec![], segments);
    validate_snapshot(&valid).unwrap();
    let fields = |s: Value| {
        let segment: Segment = serde_json::from_value(s).unwrap();
        let errors = validate_segment_in(&segment, &valid).unwrap_err();
        errors.0.into_iter().map(|e| e.field).collect::<Vec<_>>()
    };
    let bottom = json!({"key": format!("s{MAX_DEPTH}"), "included": ["u"],
                        "rules": [{"clauses": [in_segment("extra", false)]}]});
    assert_eq!(fields(bottom), ["rules[0].clauses[0].values[0]"]);
    let top = json!({"key": "s0", "rules": [{"clauses": [in_segment("s1", false)]}]});
    assert_eq!(fields(top), ["rules[0].clauses[0].values[0]"]);

    // A flag naming a too-deep chain (in a snapshot that skipped validation) is refused too.
    let flag: Flag = serde_json::from_value(outside("s1")).unwrap();
    let errors = validate_flag_in(&flag, &deep).unwrap_err();
    assert_eq!(errors.0[0].field, "rules[0].clauses[0].values[0]");
}

#[test]
fn prerequisite_chains_deeper_than_the_limit_are_malformed() {
    // 33 flags are 32 prerequisites deep: the limit.
    let s = compiled(prerequisite_chain(MAX_DEPTH + 1), vec![]);
    let u = Context::new("u");
    assert!(s.bool_variation("f0", &u, false));
    let s = compiled(prerequisite_chain(MAX_DEPTH + 2), vec![]);
    assert_eq!(reason(&s, "f0", &u), malformed());
    assert!(
        s.bool_variation("f1", &u, false),
        "f1's chain is within the limit"
    );
}

#[test]
fn prerequisite_chains_grown_past_the_limit_at_the_bottom_are_refused() {
    let mut flags = prerequisite_chain(MAX_DEPTH + 1);
    flags.push(bool_flag("extra", json!({})));
    let valid = snapshot(flags, vec![]);
    validate_snapshot(&valid).unwrap();
    let bottom: Flag = serde_json::from_value(bool_flag(
        &format!("f{MAX_DEPTH}"),
        json!({"prerequisites": [{"flag": "extra", "variation": "off"}]}),
    ))
    .unwrap();
    let errors = validate_flag_in(&bottom, &valid).unwrap_err();
    assert_eq!(errors.0[0].field, "prerequisites[0].flag");
    assert!(errors.0[0].message.contains("33 deep"), "{errors}");
}

#[test]
fn a_segment_rule_that_cannot_compile_makes_flags_using_it_malformed() {
    for clause in [
        json!({"attribute": "email", "op": "matches", "values": ["("]}),
        json!({"attribute": "version", "op": "semver_gt", "values": ["1.x"]}),
    ] {
        let broken = json!({"key": "broken", "rules": [{"clauses": [clause]}]});
        let using = bool_flag(
            "using",
            json!({"rules": [{"clauses": [in_segment("broken", false)], "serve": {"variation": "on"}}]}),
        );
        let s = CompiledSnapshot::new(snapshot(vec![using, outside("broken")], vec![broken]));
        let c = Context::new("u");
        assert_eq!(reason(&s, "using", &c), malformed(), "{clause}");
        assert_eq!(reason(&s, "f", &c), malformed(), "{clause}");
    }
}

#[test]
fn segment_cycles_make_flags_using_them_malformed() {
    let a = json!({"key": "a", "rules": [{"clauses": [in_segment("b", false)]}]});
    let b = json!({"key": "b", "rules": [{"clauses": [in_segment("a", false)]}]});
    let s = compiled(vec![outside("a")], vec![a, b]);
    assert_eq!(reason(&s, "f", &Context::new("u")), malformed());
}
