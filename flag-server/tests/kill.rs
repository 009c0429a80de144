//! Kill and restore: the round trip, idempotence, audit rows.

use serde_json::json;

use crate::common::{rich_config, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_then_restore_puts_back_exactly_the_configuration() {
    let s = TestServer::start().await;
    s.create_flag("checkout").await;
    let live = s
        .put(
            "/api/v1/flags/checkout/environments/production",
            rich_config("checkout"),
            None,
        )
        .await
        .ok(200)
        .clone();

    let r = s
        .post(
            "/api/v1/flags/checkout/environments/production/kill",
            json!({"reason": "errors spiking"}),
        )
        .await;
    let out = r.ok(200);
    assert_eq!(out["changed"], true);
    assert_eq!(out["subscribers"], 0);
    assert_eq!(out["before"], live);
    let mut killed = live.clone();
    killed["enabled"] = json!(false);
    killed["version"] = json!(3);
    assert_eq!(out["flag"], killed);
    assert_eq!(r.headers["etag"], "\"3\"");
    let got = s
        .get("/api/v1/flags/checkout/environments/production")
        .await;
    assert_eq!(got.body, killed);

    // The evaluate endpoint serves the off variation with reason OFF.
    let e = s
        .post(
            "/api/v1/environments/production/evaluate",
            json!({"context": {"key": "user-1"}, "flags": ["checkout"]}),
        )
        .await;
    assert_eq!(
        e.ok(200)["results"]["checkout"]["reason"],
        json!({"kind": "OFF"})
    );

    // A second kill changes nothing (and keeps the restore point).
    let again = s
        .post(
            "/api/v1/flags/checkout/environments/production/kill",
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(again.ok(200)["changed"], false);
    assert_eq!(again.body["flag"]["version"], 3);

    let r = s
        .post(
            "/api/v1/flags/checkout/environments/production/restore",
            json!({"reason": "fixed"}),
        )
        .await;
    let out = r.ok(200);
    let mut restored = live.clone();
    restored["version"] = json!(4);
    assert_eq!(out["flag"], restored);
    assert_eq!(out["before"], killed);
    assert_eq!(
        s.get("/api/v1/flags/checkout/environments/production")
            .await
            .body,
        restored
    );

    // Not killed any more: restore is a conflict; restore works without a body too.
    s.post(
        "/api/v1/flags/checkout/environments/production/restore",
        json!({}),
    )
    .await
    .problem(409);

    let audit = s.audit("flag=checkout&environment=production").await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["flag.restore", "flag.kill", "flag.config.update"]);
    assert_eq!(audit[1]["reason"], "errors spiking");
    assert_eq!(audit[1]["actor"], "bootstrap");
    assert_eq!(audit[1]["before"], live);
    assert_eq!(audit[1]["after"], killed);
    assert_eq!(audit[0]["reason"], "fixed");
    assert_eq!(audit[0]["after"], restored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_needs_a_reason_and_a_known_flag() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let r = s
        .post("/api/v1/flags/f/environments/production/kill", json!({}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["reason"]);
    s.post(
        "/api/v1/flags/nope/environments/production/kill",
        json!({"reason": "x"}),
    )
    .await
    .problem(404);
    s.post(
        "/api/v1/flags/f/environments/nope/kill",
        json!({"reason": "x"}),
    )
    .await
    .problem(404);
    s.post(
        "/api/v1/flags/f/environments/production/restore",
        json!({"reason": "x"}),
    )
    .await
    .problem(409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_a_kill_ends_the_kill() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    s.post(
        "/api/v1/flags/f/environments/production/kill",
        json!({"reason": "x"}),
    )
    .await
    .ok(200);
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        Some("\"2\""),
    )
    .await
    .ok(200);
    s.post("/api/v1/flags/f/environments/production/restore", json!({}))
        .await
        .problem(409);
}
