//! Tokens: created once with their secret, listed without it, revoked at once; SDK tokens
//! are refused on the admin API.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, ADMIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifecycle() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/api/v1/tokens",
            json!({"kind": "admin", "name": "ops-bot"}),
        )
        .await;
    let created = r.ok(201).clone();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert_eq!(created["kind"], "admin");
    assert_eq!(created["environment"], json!(null));

    // The new token works and the audit log names it.
    let r = s
        .send(
            Method::POST,
            "/api/v1/flags",
            Some(&secret),
            Some(&json!({"key": "f", "kind": "boolean"})),
            &[],
        )
        .await;
    r.ok(201);
    let audit = s.audit("flag=f").await;
    assert_eq!(audit[0]["actor"], "ops-bot");

    let list = s.get("/api/v1/tokens").await;
    let list = list.ok(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|t| t.get("token").is_none() && t.get("hash").is_none()));
    assert!(!list.iter().any(|t| t.to_string().contains(&secret)));

    // Revoked: 401 at once.
    let id = created["id"].as_i64().unwrap();
    assert_eq!(s.delete(&format!("/api/v1/tokens/{id}")).await.status, 204);
    s.send(Method::GET, "/api/v1/flags", Some(&secret), None, &[])
        .await
        .problem(401);
    s.delete(&format!("/api/v1/tokens/{id}")).await.problem(404);
    s.delete("/api/v1/tokens/not-a-number").await.problem(404);

    // The last admin token cannot be revoked.
    let bootstrap = s.get("/api/v1/tokens").await.body[0]["id"]
        .as_i64()
        .unwrap();
    s.delete(&format!("/api/v1/tokens/{bootstrap}"))
        .await
        .problem(409);

    // Audit rows never carry a secret.
    let audit = s.get("/api/v1/audit").await;
    assert!(!audit.body.to_string().contains(&secret));
    assert!(!audit.body.to_string().contains(ADMIN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_tokens_are_bound_and_refused_on_the_admin_api() {
    let s = TestServer::start().await;
    let sdk = s.sdk_token("production").await;
    for (method, path) in [
        (Method::GET, "/api/v1/flags"),
        (Method::GET, "/api/v1/environments"),
        (Method::GET, "/api/v1/tokens"),
        (Method::GET, "/api/v1/audit"),
    ] {
        s.send(method, path, Some(&sdk), None, &[])
            .await
            .problem(403);
    }
    let r = s
        .post("/api/v1/tokens", json!({"kind": "sdk", "name": "x"}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["environment"]);
    let r = s
        .post(
            "/api/v1/tokens",
            json!({"kind": "sdk", "environment": "nope", "name": "x"}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["environment"]);
    let r = s
        .post("/api/v1/tokens", json!({"kind": "root", "name": "x"}))
        .await;
    assert_eq!(r.fields(), ["kind"]);
    let r = s
        .post("/api/v1/tokens", json!({"kind": "admin", "name": ""}))
        .await;
    assert_eq!(r.fields(), ["name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_or_bad_token_is_401() {
    let s = TestServer::start().await;
    for token in [None, Some("wrong"), Some("")] {
        let r = s.send(Method::GET, "/api/v1/flags", token, None, &[]).await;
        r.problem(401);
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    let r = s
        .client
        .get(s.url("/api/v1/flags"))
        .header("Authorization", format!("Basic {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
