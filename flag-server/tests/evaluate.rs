//! The evaluate endpoint: value, variation and reason per flag, from the live snapshot.

use serde_json::json;

use crate::common::{rich_config, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluates_with_reasons() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    s.create_flag("off-flag").await;
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        None,
    )
    .await
    .ok(200);
    let path = "/api/v1/environments/production/evaluate";
    let r = s
        .post(path, json!({"context": {"key": "user-9", "country": "NL"}}))
        .await;
    let body = r.ok(200);
    assert_eq!(body["environment"], "production");
    assert_eq!(body["revision"], 3);
    assert_eq!(
        body["results"]["f"],
        json!({"value": true, "variation": "on", "variation_index": 0,
               "reason": {"kind": "RULE_MATCH", "rule_index": 0, "rule_id": "benelux", "in_rollout": false}})
    );
    assert_eq!(
        body["results"]["off-flag"]["reason"],
        json!({"kind": "OFF"})
    );

    let r = s
        .post(
            path,
            json!({"context": {"key": "user-1"}, "flags": ["f", "ghost"]}),
        )
        .await;
    assert_eq!(
        r.ok(200)["results"]["f"]["reason"],
        json!({"kind": "TARGET_MATCH"})
    );
    assert_eq!(
        r.body["results"]["ghost"],
        json!({"value": null, "variation": null, "variation_index": null,
               "reason": {"kind": "ERROR", "error": "FLAG_NOT_FOUND"}})
    );

    let r = s.post(path, json!({"context": {"country": "NL"}})).await;
    r.problem(422);
    assert_eq!(r.fields(), ["context"]);
    s.post(
        "/api/v1/environments/nope/evaluate",
        json!({"context": {"key": "a"}}),
    )
    .await
    .problem(404);
}
