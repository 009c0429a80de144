//! `flag eval`: offline over fixtures, and the same answers from the server.

use serde_json::{json, Value};

use super::common::*;

fn lines(out: &Out) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn offline_one_context_per_reason() {
    let s = Server::start();
    let snap = data("snapshot.json");
    let one = |ctx: &str| {
        lines(&s.bare(&[
            "eval",
            "new-checkout",
            "--snapshot",
            &snap,
            "--context",
            ctx,
        ]))[0]
            .clone()
    };
    assert_eq!(
        one(r#"{"key": "user-1"}"#),
        json!({"flag": "new-checkout", "context_key": "user-1", "value": true, "variation": "on",
               "reason": {"kind": "TARGET_MATCH"}})
    );
    assert_eq!(
        one(r#"{"key": "u", "country": "NL"}"#)["reason"],
        json!({"kind": "RULE_MATCH", "rule_index": 0, "rule_id": "benelux", "in_rollout": false})
    );
    assert_eq!(
        one(r#"{"key": "u", "legacy": true}"#),
        json!({"flag": "new-checkout", "context_key": "u", "value": false, "variation": "off",
               "reason": {"kind": "PREREQUISITE_FAILED", "prerequisite": "payments-v2"}})
    );
    assert_eq!(
        one(r#"{"key": "u", "email": "x@example.com"}"#)["reason"]["in_rollout"],
        true
    );
    assert_eq!(
        one(r#"{"key": "u"}"#)["reason"],
        json!({"kind": "FALLTHROUGH", "in_rollout": true})
    );
    let killed = lines(&s.bare(&[
        "eval",
        "killed",
        "--snapshot",
        &snap,
        "--context",
        r#"{"key": "u"}"#,
    ]));
    assert_eq!(
        killed[0],
        json!({"flag": "killed", "context_key": "u", "value": "old", "variation": "old", "reason": {"kind": "OFF"}})
    );
}

#[test]
fn offline_contexts_file_and_stdin() {
    let s = Server::start();
    let snap = data("snapshot.json");
    let out = s.bare(&[
        "eval",
        "new-checkout",
        "--snapshot",
        &snap,
        "--contexts",
        &data("contexts.jsonl"),
    ]);
    out.ok();
    assert!(
        out.stdout.starts_with(
            r#"{"flag":"new-checkout","context_key":"user-1","value":true,"variation":"on","reason":{"kind":"TARGET_MATCH"}}"#
        ),
        "fields in the documented order: {}",
        out.stdout
    );
    let got = lines(&out);
    assert_eq!(got.len(), 8, "blank lines are skipped");
    let keys: Vec<&str> = got
        .iter()
        .map(|v| v["context_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys[..3], ["user-1", "user-9", "user-10"]);
    let stdin = std::fs::read_to_string(data("contexts.jsonl")).unwrap();
    let from_stdin = run(
        &[
            "eval",
            "new-checkout",
            "--snapshot",
            &snap,
            "--contexts",
            "-",
        ],
        s.home.path(),
        Some(&stdin),
    );
    assert_eq!(from_stdin.ok(), out.stdout);
}

#[test]
fn offline_failures() {
    let s = Server::start();
    let snap = data("snapshot.json");
    let out = s.bare(&[
        "eval",
        "nope",
        "--snapshot",
        &snap,
        "--context",
        r#"{"key": "u"}"#,
    ]);
    let err = out.fails(3).to_owned();
    assert!(err.contains("`nope`"), "{err}");
    assert_eq!(
        lines(&out)[0]["reason"],
        json!({"kind": "ERROR", "error": "FLAG_NOT_FOUND"})
    );
    assert_eq!(lines(&out)[0]["value"], Value::Null);

    let err = s
        .bare(&[
            "eval",
            "f",
            "--snapshot",
            &data("invalid-snapshot.json"),
            "--context",
            r#"{"key": "u"}"#,
        ])
        .fails(1)
        .to_owned();
    assert!(
        err.contains("invalid") && err.contains("off_variation") && err.contains("weights"),
        "{err}"
    );
    let err = s
        .bare(&[
            "eval",
            "new-checkout",
            "--snapshot",
            &snap,
            "--contexts",
            &data("bad-contexts.jsonl"),
        ])
        .fails(1)
        .to_owned();
    assert!(err.contains("line 2") && err.contains("key"), "{err}");
    s.bare(&[
        "eval",
        "new-checkout",
        "--snapshot",
        &snap,
        "--context",
        "{",
    ])
    .fails(1);
    s.bare(&[
        "eval",
        "new-checkout",
        "--snapshot",
        "/nonexistent.json",
        "--context",
        r#"{"key":"u"}"#,
    ])
    .fails(1);
    assert_eq!(
        s.bare(&["eval", "new-checkout", "--snapshot", &snap]).code,
        2,
        "a context is required"
    );
}

#[test]
fn the_server_answers_what_the_snapshot_file_answers() {
    let s = Server::start();
    let snap: Value =
        serde_json::from_str(&std::fs::read_to_string(data("snapshot.json")).unwrap()).unwrap();
    for key in ["payments-v2", "new-checkout", "killed"] {
        let flag = &snap["flags"][key];
        let kind = flag["kind"].as_str().unwrap();
        let vars = serde_json::to_string(&flag["variations"]).unwrap();
        let body = format!(r#"{{"key": "{key}", "kind": "{kind}", "variations": {vars}}}"#);
        let res = s
            .http(reqwest::Method::POST, "/api/v1/flags")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().unwrap());
        s.put_config(flag);
    }
    for key in ["new-checkout", "killed"] {
        let offline = s.bare(&[
            "eval",
            key,
            "--snapshot",
            &data("snapshot.json"),
            "--contexts",
            &data("contexts.jsonl"),
        ]);
        let online = s.flag(&["eval", key, "--contexts", &data("contexts.jsonl")]);
        assert_eq!(online.ok(), offline.ok(), "{key}");
    }
    let out = s.flag(&["eval", "nope", "--context", r#"{"key": "u"}"#]);
    out.fails(3);
}
