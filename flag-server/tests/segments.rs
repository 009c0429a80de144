//! Segments: CRUD, references from flags, the evaluate endpoint seeing them.

use serde_json::json;

use crate::common::{rich_config, TestServer};

fn beta(included: &[&str]) -> serde_json::Value {
    json!({"key": "beta", "included": included, "excluded": [],
           "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_lifecycle() {
    let s = TestServer::start().await;
    let base = "/api/v1/environments/production/segments";
    let r = s.post(base, beta(&["u1"])).await;
    assert_eq!(r.ok(201)["version"], 1);
    s.post(base, beta(&[])).await.problem(409);
    let list = s.get(base).await;
    assert_eq!(list.ok(200).as_array().unwrap().len(), 1);
    let got = s.get(&format!("{base}/beta")).await;
    assert_eq!(got.ok(200)["included"], json!(["u1"]));
    assert_eq!(got.headers["etag"], "\"1\"");

    let r = s
        .put(&format!("{base}/beta"), beta(&["u1", "u2"]), Some("\"1\""))
        .await;
    assert_eq!(r.ok(200)["version"], 2);
    s.put(&format!("{base}/beta"), beta(&["u3"]), Some("\"1\""))
        .await
        .problem(412);
    s.put(&format!("{base}/nope"), beta(&[]), None)
        .await
        .problem(422);
    let mut other = beta(&[]);
    other["key"] = json!("nope");
    s.put(&format!("{base}/nope"), other, None)
        .await
        .problem(404);
    let mut bad = beta(&[]);
    bad["rules"][0]["clauses"][0]["op"] = json!("gt");
    let r = s
        .post(base, {
            bad["key"] = json!("bad");
            bad
        })
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["rules[0].clauses[0].values[0]"]);

    // A flag that uses it pins it.
    s.create_flag("f").await;
    let mut config = rich_config("f");
    config["rules"][0]["clauses"] =
        json!([{"attribute": "", "op": "in_segment", "values": ["beta"]}]);
    s.put("/api/v1/flags/f/environments/production", config, None)
        .await
        .ok(200);
    let e = s
        .post(
            "/api/v1/environments/production/evaluate",
            json!({"context": {"key": "u2"}, "flags": ["f"]}),
        )
        .await;
    assert_eq!(e.ok(200)["results"]["f"]["reason"]["kind"], "RULE_MATCH");
    s.delete(&format!("{base}/beta")).await.problem(409);
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        None,
    )
    .await
    .ok(200);
    assert_eq!(s.delete(&format!("{base}/beta")).await.status, 204);
    s.get(&format!("{base}/beta")).await.problem(404);
    s.delete(&format!("{base}/beta")).await.problem(404);
    s.get("/api/v1/environments/nope/segments")
        .await
        .problem(404);
    s.post("/api/v1/environments/nope/segments", beta(&[]))
        .await
        .problem(404);

    let audit = s.audit("environment=production").await;
    let actions: Vec<&str> = audit
        .iter()
        .filter(|e| e["segment"] == "beta")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["segment.delete", "segment.update", "segment.create"]
    );
}
