//! Admin token scopes across every operation: each `/api/v1` operation of the OpenAPI
//! document (the app's routes) is tried with a `read` token, a `write` token for another
//! environment, a `write` token for production and an `admin` token. A refused one is a 403
//! naming the scope it needs and changes nothing; an allowed one is never refused for scope.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestServer;
use crate::releases::{CONFIG, FLAG};

/// What an operation needs, as the contract says (written here independently of the server).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Read,
    /// Flags and segments of production (every path here names production).
    WriteProduction,
    /// A flag's definition: write on every environment.
    WriteEverywhere,
    Admin,
    /// Alertmanager's webhook: an integration token only, whatever an admin token's scope.
    Integration,
}

fn need(method: &str, path: &str) -> Need {
    let admin_only = [
        "/api/v1/tokens",
        "/api/v1/webhooks",
        "/api/v1/environments",
        "/api/v1/integrations/alertmanager/bindings",
    ];
    if path == "/api/v1/integrations/alertmanager" {
        Need::Integration
    } else if method == "get" || path.ends_with("/evaluate") {
        Need::Read
    } else if path == "/api/v1/environments/{env}"
        || admin_only
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/{{id}}")))
    {
        Need::Admin
    } else if [
        "/api/v1/flags",
        "/api/v1/flags/{key}",
        "/api/v1/flags/{key}/unarchive",
    ]
    .contains(&path)
    {
        Need::WriteEverywhere
    } else {
        Need::WriteProduction
    }
}

/// Which scope `token` lacks for `need`, if any.
fn lacks(token: &str, need: Need) -> Option<&'static str> {
    match (token, need) {
        ("admin", _) | (_, Need::Read | Need::Integration) => None,
        (_, Need::Admin) => Some("admin"),
        ("write-production", Need::WriteProduction) => None,
        _ => Some("write"),
    }
}

async fn newest_audit_id(server: &TestServer) -> Value {
    server.audit("").await[0]["id"].clone()
}

#[tokio::test]
async fn every_operation_with_every_scope() {
    let server = TestServer::start().await;
    server
        .post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .ok(201);
    server.create_flag(FLAG).await;
    server
        .patch("/api/v1/environments/production", json!({"approvals": 1}))
        .await
        .ok(200);
    let config = server.get(CONFIG).await.ok(200).clone();
    let request = server.put(CONFIG, config, None).await.ok(202)["id"].clone();
    let tokens = [
        ("read", server.scoped_token("reader", "read", &[]).await),
        (
            "write-staging",
            server.scoped_token("writer-s", "write", &["staging"]).await,
        ),
        (
            "write-production",
            server
                .scoped_token("writer-p", "write", &["production"])
                .await,
        ),
        ("admin", server.scoped_token("ops", "admin", &[]).await),
    ];

    let doc: Value = serde_json::from_str(&flag_server::api::openapi_json()).unwrap();
    let mut tried = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            // A stream answers forever (`/api/v1/events`, a read: `console` tests its token).
            if operation["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some()
            {
                continue;
            }
            let need = need(method, path);
            let id = if path.starts_with("/api/v1/change-requests") {
                request.to_string()
            } else {
                "999999".to_owned()
            };
            let key = if path.contains("/segments/") {
                "beta"
            } else {
                FLAG
            };
            let concrete = path
                .replace("{env}", "production")
                .replace("{key}", key)
                .replace("{id}", &id)
                .replace("{action}", "pause");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            for (name, secret) in &tokens {
                let before = newest_audit_id(&server).await;
                let r = server
                    .as_token(secret, method.clone(), &concrete, body.clone())
                    .await;
                let what = format!("{method} {concrete} as {name}: {}", r.body);
                if need == Need::Integration {
                    assert_eq!(r.status.as_u16(), 403, "{what}");
                    assert_eq!(newest_audit_id(&server).await, before, "{what}");
                    continue;
                }
                match lacks(name, need) {
                    Some(scope) => {
                        assert_eq!(r.status.as_u16(), 403, "{what}");
                        assert_eq!(r.body["required_scope"], scope, "{what}");
                        assert!(r.body["detail"].as_str().unwrap().contains(scope), "{what}");
                        assert_eq!(newest_audit_id(&server).await, before, "{what}");
                    }
                    None => assert!(
                        r.body.get("required_scope").is_none(),
                        "refused for scope: {what}"
                    ),
                }
            }
            tried.push(format!("{method} {path}"));
        }
    }
    for expected in [
        "POST /api/v1/flags/{key}/environments/{env}/schedules",
        "POST /api/v1/change-requests/{id}/approve",
        "PATCH /api/v1/environments/{env}",
        "PUT /api/v1/environments/{env}/segments/{key}",
        "DELETE /api/v1/tokens/{id}",
    ] {
        assert!(tried.iter().any(|t| t == expected), "{expected} not tried");
    }
    assert!(tried.len() >= 35, "{tried:?}");
}

#[tokio::test]
async fn tokens_carry_their_scope_and_existing_ones_are_admin() {
    let server = TestServer::start().await;
    server
        .post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .ok(201);
    let created = server
        .post(
            "/api/v1/tokens",
            json!({"kind": "admin", "name": "alice", "scope": "write", "environments": ["staging"]}),
        )
        .await;
    let created = created.ok(201).clone();
    assert_eq!(
        (&created["scope"], &created["environments"]),
        (&json!("write"), &json!(["staging"]))
    );
    let list = server.get("/api/v1/tokens").await.ok(200).clone();
    let bootstrap = &list[0];
    assert_eq!(
        (&bootstrap["name"], &bootstrap["scope"]),
        (&json!("bootstrap"), &json!("admin"))
    );
    assert_eq!(list[1]["environments"], json!(["staging"]));
    let sdk = server.sdk_token("production").await;
    assert!(!sdk.is_empty());
    let list = server.get("/api/v1/tokens").await.ok(200).clone();
    assert!(list[2].get("scope").is_none(), "SDK tokens have no scope");

    for (body, field) in [
        (
            json!({"kind": "admin", "name": "x", "scope": "root"}),
            "scope",
        ),
        (
            json!({"kind": "admin", "name": "x", "scope": "write"}),
            "environments",
        ),
        (
            json!({"kind": "admin", "name": "x", "scope": "read", "environments": ["staging"]}),
            "environments",
        ),
        (
            json!({"kind": "admin", "name": "x", "scope": "write", "environments": ["nope"]}),
            "environments[0]",
        ),
        (
            json!({"kind": "sdk", "name": "x", "environment": "staging", "scope": "read"}),
            "scope",
        ),
    ] {
        let r = server.post("/api/v1/tokens", body.clone()).await;
        r.problem(422);
        assert_eq!(r.fields(), [field], "{body}");
    }

    // The audit log names the token that made a change.
    let alice = created["token"].as_str().unwrap();
    let flag = server
        .as_token(
            alice,
            Method::POST,
            "/api/v1/flags",
            Some(json!({"key": "f", "kind": "boolean"})),
        )
        .await;
    assert_eq!(flag.problem(403)["required_scope"], "write");
    let staging = "/api/v1/flags/f/environments/staging";
    server.create_flag("f").await;
    let mut config = server.get(staging).await.ok(200).clone();
    config["enabled"] = json!(true);
    server
        .as_token(alice, Method::PUT, staging, Some(config))
        .await
        .ok(200);
    assert_eq!(server.audit("flag=f").await[0]["actor"], "alice");
}
