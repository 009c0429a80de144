//! `flag token create --scope`, `flag request ...` and `flag schedule ...` against a server
//! whose production needs one approval: two people, one proposes, the other approves.

use serde_json::json;

use super::common::*;

/// `flag --server BASE --token TOKEN ARGS...`.
fn as_token(s: &Server, token: &str, args: &[&str]) -> Out {
    let mut all = vec!["--server", s.base.as_str(), "--token", token];
    all.extend_from_slice(args);
    s.bare(&all)
}

fn token(s: &Server, args: &[&str]) -> String {
    let mut all = vec!["token", "create", "--json"];
    all.extend_from_slice(args);
    s.flag(&all).json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn two_people_a_change_request_and_a_scheduled_change() {
    let s = Server::start();
    s.create("f");
    s.flag(&["env", "create", "staging"]).ok();
    let text = s
        .flag(&[
            "token", "create", "--scope", "write", "--env", "staging", "--name", "carol",
        ])
        .ok()
        .to_owned();
    assert!(
        text.contains("`carol` (scope write, for staging)"),
        "{text}"
    );
    let listed = s.flag(&["token", "list"]).ok().to_owned();
    assert!(listed.contains("write (staging)"), "{listed}");
    let alice = token(&s, &["--scope", "write", "--name", "alice"]);
    let bob = token(&s, &["--scope", "write", "--name", "bob"]);
    let reader = token(&s, &["--scope", "read", "--name", "auditor"]);
    let res = s
        .http(reqwest::Method::PATCH, "/api/v1/environments/production")
        .json(&json!({"approvals": 1}))
        .send()
        .unwrap();
    assert!(res.status().is_success());

    let held = as_token(&s, &alice, &["on", "f"]).ok().to_owned();
    assert!(held.contains("PENDING change request 1"), "{held}");
    assert_eq!(s.config("f")["enabled"], false);
    let list = as_token(&s, &bob, &["request", "list"]).ok().to_owned();
    assert!(list.contains("alice") && list.contains("0/1"), "{list}");
    let shown = as_token(&s, &bob, &["request", "show", "1"])
        .ok()
        .to_owned();
    assert!(shown.contains("enabled: false -> true"), "{shown}");
    let own = as_token(&s, &alice, &["request", "approve", "1"])
        .fails(4)
        .to_owned();
    assert!(own.contains("someone else"), "{own}");
    let approved = as_token(&s, &bob, &["request", "approve", "1"])
        .ok()
        .to_owned();
    assert!(
        approved.starts_with("APPLIED change request 1"),
        "{approved}"
    );
    assert_eq!(s.config("f")["enabled"], true);

    let refused = as_token(&s, &reader, &["off", "f"]).fails(4).to_owned();
    assert!(refused.contains("`write`"), "{refused}");

    let planned = as_token(
        &s,
        &alice,
        &[
            "schedule",
            "f",
            "--at",
            "2099-12-24T08:00Z",
            "25",
            "--reason",
            "xmas",
        ],
    )
    .ok()
    .to_owned();
    assert!(planned.contains("PENDING change request 2"), "{planned}");
    let approved = as_token(&s, &bob, &["request", "approve", "2", "--json"]).json();
    assert_eq!(approved["state"], "applied");
    let schedules = s.flag(&["schedule", "f", "--list", "--json"]).json();
    assert_eq!(schedules[0]["state"], "pending");
    assert_eq!(schedules[0]["change"], json!({"percent": 25.0}));
    assert_eq!(schedules[0]["at"], "2099-12-24T08:00:00Z");
    let listed = s.flag(&["schedule", "f", "--list"]).ok().to_owned();
    assert!(
        listed.contains("pending") && listed.contains("alice"),
        "{listed}"
    );

    let withdrawn = as_token(&s, &alice, &["off", "f"]).ok().to_owned();
    assert!(withdrawn.contains("change request 3"), "{withdrawn}");
    as_token(&s, &alice, &["request", "withdraw", "3"]).ok();
    let none = s.flag(&["request", "list", "--json"]).json();
    assert_eq!(none, json!([]), "no pending request is left");
    s.flag(&["schedule", "f", "--at", "2099-01-01T00:00Z"])
        .fails(1);
}

#[test]
fn a_schedule_in_an_environment_without_approvals_is_planned_and_cancelled() {
    let s = Server::start();
    s.create("f");
    let out = s
        .flag(&["schedule", "f", "--at", "2099-12-24T08:00Z", "on", "--json"])
        .json();
    assert_eq!(
        (out["state"].as_str(), out["author"].as_str()),
        (Some("pending"), Some("bootstrap"))
    );
    let id = out["id"].to_string();
    let cancelled = s.flag(&["schedule", "f", "--cancel", &id]).ok().to_owned();
    assert!(
        cancelled.contains(&format!("CANCELLED schedule {id}")),
        "{cancelled}"
    );
    let list = s.flag(&["schedule", "f", "--list", "--json"]).json();
    assert_eq!(list[0]["state"], "cancelled");
    s.flag(&["schedule", "f", "--resume", &id]).fails(5);
}
