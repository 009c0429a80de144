//! Environments: the default one, creating one (with every flag), conflicts.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_has_production() {
    let s = TestServer::start().await;
    let envs = s.get("/api/v1/environments").await;
    let list = envs.ok(200).as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["key"], "production");
    assert_eq!(list[0]["revision"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_environment_gets_every_live_flag() {
    let s = TestServer::start().await;
    s.create_flag("one").await;
    s.create_flag("gone").await;
    s.delete("/api/v1/flags/gone").await.ok(200);
    let r = s
        .post("/api/v1/environments", json!({"key": "staging"}))
        .await;
    assert_eq!(r.ok(201)["key"], "staging");
    assert_eq!(r.body["revision"], 1);
    let config = s.get("/api/v1/flags/one/environments/staging").await;
    assert_eq!(config.ok(200)["enabled"], false);
    s.get("/api/v1/flags/gone/environments/staging")
        .await
        .problem(404);

    s.post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .problem(409);
    let r = s
        .post("/api/v1/environments", json!({"key": "Not OK"}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["key"]);
    let r = s.post("/api/v1/environments", json!({})).await;
    r.problem(422);
    assert_eq!(r.fields(), ["key"]);

    let audit = s.audit("environment=staging").await;
    assert_eq!(audit[0]["action"], "environment.create");
}
