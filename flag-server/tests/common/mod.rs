//! Starts the real server in-process on 127.0.0.1:0 with a temporary database, and small
//! HTTP helpers that speak to it with the admin token.

pub mod alertmanager;
pub mod live;
pub mod page;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod webdriver;

use flag_server::store::sql::Conn;
use flag_server::store::Location;
use flag_server::{Config, Running};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The workspace's target directory (test artefacts and installed test clients live there).
pub fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The admin token every test server accepts.
pub const ADMIN: &str = "test-admin-token";

/// A server on an ephemeral port with its own database.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Running,
    /// Holds the temporary database until the server is dropped.
    pub _dir: tempfile::TempDir,
}

/// A response's status, headers and JSON body (`Null` when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json answer with this status; returns the body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        for field in ["type", "title", "status", "detail", "errors"] {
            assert!(
                self.body.get(field).is_some(),
                "no `{field}` in {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        &self.body
    }

    /// Asserts this status; returns the body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }

    /// The fields named in a problem's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A fresh database on this binary's backend (`crate::ON_POSTGRES`: SQLite in `tests`,
/// PostgreSQL in `on_postgres`): `dir/flags.db`, or a new PostgreSQL database.
pub fn database(dir: &tempfile::TempDir) -> Location {
    if crate::ON_POSTGRES {
        Location::Postgres(postgres::database())
    } else {
        dir.path().join("flags.db").into()
    }
}

/// Runs `sql` on `db` behind the server's back (what an operator or a fault would do).
pub async fn execute(db: &Location, sql: String) {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let conn = match &db {
            Location::Sqlite(path) => Conn::sqlite(rusqlite::Connection::open(path).unwrap()),
            Location::Postgres(url) => Conn::connect_postgres(url).unwrap(),
        };
        conn.batch(&sql).unwrap();
    })
    .await
    .unwrap();
}

impl TestServer {
    /// On a fresh database.
    pub async fn start() -> TestServer {
        Self::start_tuned(|_| {}).await
    }

    /// On a fresh database, with `tune` applied to the defaults.
    pub async fn start_tuned(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir);
        Self::on(db, dir, tune).await
    }

    /// On `db` (kept with `dir` until the server is dropped), with `tune` applied.
    pub async fn on(
        db: Location,
        dir: tempfile::TempDir,
        tune: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config::ephemeral(db, ADMIN);
        tune(&mut config);
        let running = flag_server::start(&config).await.expect("server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
            running,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with `token` (or none), an optional JSON body and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Some(ADMIN), None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(ADMIN), Some(&body), &[])
            .await
    }

    pub async fn put(&self, path: &str, body: Value, if_match: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = if_match.map(|v| ("If-Match", v)).into_iter().collect();
        self.send(Method::PUT, path, Some(ADMIN), Some(&body), &headers)
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(ADMIN), Some(&body), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(ADMIN), None, &[])
            .await
    }

    /// The first environment's (`production`'s) revision, from the API.
    pub async fn revision(&self) -> u64 {
        self.get("/api/v1/environments").await.body[0]["revision"]
            .as_u64()
            .unwrap()
    }

    /// What `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Creates a boolean flag; returns its definition.
    pub async fn create_flag(&self, key: &str) -> Value {
        self.post("/api/v1/flags", json!({"key": key, "kind": "boolean"}))
            .await
            .ok(201)
            .clone()
    }

    /// Creates an SDK token for `env`; returns its secret.
    pub async fn sdk_token(&self, env: &str) -> String {
        let r = self
            .post(
                "/api/v1/tokens",
                json!({"kind": "sdk", "environment": env, "name": "app"}),
            )
            .await;
        r.ok(201)["token"].as_str().unwrap().to_owned()
    }

    /// Creates a client token for `env` answering `origins`; returns its secret.
    pub async fn client_token(&self, env: &str, origins: &[&str]) -> String {
        let r = self
            .post(
                "/api/v1/tokens",
                json!({"kind": "client", "environment": env, "name": "web", "origins": origins}),
            )
            .await;
        r.ok(201)["token"].as_str().unwrap().to_owned()
    }

    /// Creates an admin token named `name` with `scope` (`read`, `write`, `admin`) and, for
    /// `write`, the environments it may change; returns its secret.
    pub async fn scoped_token(&self, name: &str, scope: &str, environments: &[&str]) -> String {
        let mut body = json!({"kind": "admin", "name": name, "scope": scope});
        if scope == "write" {
            body["environments"] = json!(environments);
        }
        let r = self.post("/api/v1/tokens", body).await;
        r.ok(201)["token"].as_str().unwrap().to_owned()
    }

    /// A request as `token` with an optional JSON body.
    pub async fn as_token(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.send(method, path, Some(token), body.as_ref(), &[])
            .await
    }

    /// The audit log, newest first (up to 500 entries).
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/audit?limit=500&{query}")).await;
        r.ok(200)["entries"].as_array().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Sends the stop command at once; the runtime ending drops the rest.
        drop(self.running.handle.stop(false));
    }
}

/// Reads a response into a [`Reply`].
pub async fn read(res: reqwest::Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// A boolean flag configuration with a rule and a rollout, valid for `key`.
pub fn rich_config(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "enabled": true,
        "off_variation": "off",
        "targets": [{"variation": "on", "keys": ["user-1"]}],
        "rules": [{"id": "benelux",
                   "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
                   "serve": {"variation": "on"}}],
        "fallthrough": {"rollout": {"bucket_by": "key",
            "weights": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}
    })
}
