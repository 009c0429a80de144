//! `GET /api/v1/flags` with filters and pages, reasons on writes whose body is the object
//! itself (`?reason=`), unarchiving, and the 409s that name what is in the way.

use serde_json::{json, Value};

use crate::common::TestServer;
use crate::releases::serving;

fn keys(body: &Value) -> Vec<&str> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect()
}

async fn tagged(s: &TestServer, key: &str, name: &str, tags: &[&str]) {
    s.post(
        "/api/v1/flags",
        json!({"key": key, "kind": "boolean", "name": name, "tags": tags}),
    )
    .await
    .ok(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_tags_and_pages_in_key_order() {
    let s = TestServer::start().await;
    tagged(&s, "checkout-v2", "New Checkout", &["payments", "q3"]).await;
    tagged(&s, "banner", "Holiday banner", &["ui"]).await;
    tagged(&s, "pay-later", "Pay later", &["payments"]).await;
    tagged(&s, "search", "Search CHECKOUT box", &["ui", "q3"]).await;

    // `q` is a substring of the key or (any case) the name.
    let r = s.get("/api/v1/flags?q=checkout").await;
    assert_eq!(keys(r.ok(200)), ["checkout-v2", "search"]);
    assert_eq!(r.headers["x-total-count"], "2");
    assert!(r.headers.get("x-next-cursor").is_none());
    // Every tag given must be there.
    let r = s.get("/api/v1/flags?tag=payments").await;
    assert_eq!(keys(r.ok(200)), ["checkout-v2", "pay-later"]);
    let r = s.get("/api/v1/flags?tag=payments&tag=q3").await;
    assert_eq!(keys(r.ok(200)), ["checkout-v2"]);
    let r = s.get("/api/v1/flags?tag=payments&q=later").await;
    assert_eq!(keys(r.ok(200)), ["pay-later"]);

    // Pages of 3, then the rest, following X-Next-Cursor; the total is on every page.
    let first = s.get("/api/v1/flags?limit=3").await;
    assert_eq!(keys(first.ok(200)), ["banner", "checkout-v2", "pay-later"]);
    assert_eq!(first.headers["x-total-count"], "4");
    let cursor = first.headers["x-next-cursor"].to_str().unwrap().to_owned();
    let second = s
        .get(&format!("/api/v1/flags?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(keys(second.ok(200)), ["search"]);
    assert_eq!(second.headers["x-total-count"], "4");
    assert!(second.headers.get("x-next-cursor").is_none());
    // Without parameters: every flag, as before.
    assert_eq!(keys(s.get("/api/v1/flags").await.ok(200)).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_filters_read_each_environment() {
    let s = TestServer::start().await;
    s.post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .ok(201);
    serving(&s, "on-flag", json!({"variation": "on"})).await;
    serving(
        &s,
        "rolling",
        json!({"rollout": {"bucket_by": "key", "weights": [
            {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}),
    )
    .await;
    serving(&s, "killed", json!({"variation": "on"})).await;
    s.post(
        "/api/v1/flags/killed/environments/production/kill",
        json!({"reason": "INC-1"}),
    )
    .await
    .ok(200);
    s.create_flag("plain-off").await;
    serving(&s, "releasing", json!({"variation": "off"})).await;
    s.post(
        "/api/v1/flags/releasing/environments/production/release",
        json!({"variation": "on", "stages": [1, 100], "hold_seconds": 600,
               "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 100},
               "on_regression": "rollback"}),
    )
    .await
    .ok(201);

    let state = |q: &'static str| {
        let s = &s;
        async move { keys(s.get(&format!("/api/v1/flags?{q}")).await.ok(200)).join(" ") }
    };
    assert_eq!(
        state("state=on&environment=production").await,
        "on-flag releasing rolling"
    );
    assert_eq!(
        state("state=off&environment=production").await,
        "killed plain-off"
    );
    assert_eq!(state("state=killed&environment=production").await, "killed");
    assert_eq!(
        state("state=rollout&environment=production").await,
        "releasing rolling"
    );
    assert_eq!(
        state("state=release&environment=production").await,
        "releasing"
    );
    // In staging everything is off; without `environment`, any environment counts.
    assert_eq!(state("state=on&environment=staging").await, "");
    assert_eq!(
        state("state=off").await,
        "killed on-flag plain-off releasing rolling"
    );
    // Each listed flag says how it stands in every environment.
    let list = s.get("/api/v1/flags?q=killed").await;
    let killed = &list.ok(200)[0]["environments"];
    assert_eq!(
        killed["production"],
        json!({"enabled": false, "version": 3, "killed": true, "rollout": false, "release": false})
    );
    assert_eq!(killed["staging"]["killed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_and_bad_values_are_400s_naming_them() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    for (query, field) in [
        ("serach=f", "serach"),
        ("state=dead", "state"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=NOT%20A%20KEY", "cursor"),
        ("state=on&environment=nowhere", "environment"),
        ("archived=maybe", "archived"),
    ] {
        let r = s.get(&format!("/api/v1/flags?{query}")).await;
        r.problem(400);
        assert_eq!(r.fields(), [field], "{query}: {}", r.body);
    }
    // A write with the reason parameter takes no other.
    let path = "/api/v1/flags/f/environments/production";
    let config = s.get(path).await.ok(200).clone();
    let r = s.put(&format!("{path}?raeson=x"), config, None).await;
    r.problem(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_on_put_and_segment_writes_reaches_the_audit_log() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let path = "/api/v1/flags/f/environments/production";
    let mut config = s.get(path).await.ok(200).clone();
    config["enabled"] = json!(true);
    s.put(
        &format!("{path}?reason=JIRA-7%20launch%20%E2%9C%93"),
        config,
        Some("\"1\""),
    )
    .await
    .ok(200);
    let segments = "/api/v1/environments/production/segments";
    s.post(
        &format!("{segments}?reason=beta%20cohort"),
        json!({"key": "beta", "included": ["u1"]}),
    )
    .await
    .ok(201);
    s.delete(&format!("{segments}/beta?reason=cohort%20over"))
        .await
        .ok(204);
    s.patch("/api/v1/flags/f?reason=renamed", json!({"name": "F"}))
        .await
        .ok(200);
    let log = s.get("/api/v1/audit").await;
    let reasons: Vec<(&str, &str)> = log.ok(200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .take(4)
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("flag.update", "renamed"),
            ("segment.delete", "cohort over"),
            ("segment.create", "beta cohort"),
            ("flag.config.update", "JIRA-7 launch ✓"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unarchive_brings_the_flag_back_as_it_was() {
    let s = TestServer::start().await;
    serving(&s, "old", json!({"variation": "on"})).await;
    s.delete("/api/v1/flags/old?reason=done").await.ok(200);
    s.get("/api/v1/flags/old/environments/production")
        .await
        .problem(404);
    s.post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .ok(201);
    let meta = s
        .send(
            reqwest::Method::POST,
            "/api/v1/flags/old/unarchive?reason=needed%20again",
            Some(crate::common::ADMIN),
            None,
            &[],
        )
        .await;
    assert_eq!(meta.ok(200)["archived"], false);
    let config = s.get("/api/v1/flags/old/environments/production").await;
    assert_eq!(config.ok(200)["enabled"], true);
    assert_eq!(config.body["fallthrough"], json!({"variation": "on"}));
    // An environment created while it was archived has it, disabled.
    let staging = s.get("/api/v1/flags/old/environments/staging").await;
    assert_eq!(staging.ok(200)["enabled"], false);
    // Unarchiving a live flag is a conflict that says so.
    let again = s
        .send(
            reqwest::Method::POST,
            "/api/v1/flags/old/unarchive",
            Some(crate::common::ADMIN),
            None,
            &[],
        )
        .await;
    assert!(again.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("not archived"));
    let log = s.get("/api/v1/audit?flag=old&limit=1").await;
    let entry = &log.ok(200)["entries"][0];
    assert_eq!(
        (entry["action"].as_str(), entry["reason"].as_str()),
        (Some("flag.unarchive"), Some("needed again"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_in_use_names_the_flags_that_use_it() {
    let s = TestServer::start().await;
    let segments = "/api/v1/environments/production/segments";
    s.post(segments, json!({"key": "beta", "included": ["u1"]}))
        .await
        .ok(201);
    for key in ["a-flag", "b-flag"] {
        s.create_flag(key).await;
        let path = format!("/api/v1/flags/{key}/environments/production");
        let mut config = s.get(&path).await.ok(200).clone();
        config["rules"] = json!([{"clauses": [{"attribute": "key", "op": "in_segment", "values": ["beta"]}],
            "serve": {"variation": "on"}}]);
        s.put(&path, config, None).await.ok(200);
    }
    let r = s.delete(&format!("{segments}/beta")).await;
    let detail = r.problem(409)["detail"].as_str().unwrap();
    assert!(
        detail.contains("`a-flag`") && detail.contains("`b-flag`"),
        "{detail}"
    );
}
