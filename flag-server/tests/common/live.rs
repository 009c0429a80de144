//! A server for the streaming tests: started on a given database (and address, to restart on
//! the same one), stopped abruptly so SDKs see their streams drop, with helpers for the
//! changes those tests push to SDK clients.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flag_sdk::Client;
use flag_server::store::Location;
use flag_server::{Config, Running};
use reqwest::Method;
use serde_json::{json, Value};

use super::ADMIN;

/// Bound for anything that should take a second or two.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct LiveServer {
    pub running: Running,
    pub url: String,
    pub http: reqwest::Client,
}

impl LiveServer {
    /// Starts on `db`, on `listen` (else an ephemeral port), with `tune` applied to the
    /// defaults.
    pub async fn start(
        db: impl Into<Location>,
        listen: Option<SocketAddr>,
        tune: impl FnOnce(&mut Config),
    ) -> LiveServer {
        let mut config = Config::ephemeral(db, ADMIN);
        if let Some(addr) = listen {
            config.listen = addr;
        }
        tune(&mut config);
        let running = flag_server::start(&config).await.expect("server starts");
        LiveServer {
            url: format!("http://{}", running.addr),
            running,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server, ending its streams at once (SDKs see a dropped connection);
    /// returns the address to restart on.
    pub async fn stop(self) -> SocketAddr {
        self.running.state.broadcaster.shutdown();
        self.running.handle.stop(false).await;
        let _ = self.running.task.await;
        self.running.addr
    }

    /// Calls the admin API; asserts success and returns the JSON body (`Null` when empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates an SDK token for `production`: its id and secret.
    pub async fn sdk_token(&self) -> (i64, String) {
        let body = json!({"kind": "sdk", "environment": "production", "name": "app"});
        let created = self.call(Method::POST, "/api/v1/tokens", Some(body)).await;
        (
            created["id"].as_i64().unwrap(),
            created["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates boolean flag `key`, enabled and serving `on` (true) to everyone.
    pub async fn enabled_flag(&self, key: &str) {
        let create = json!({"key": key, "kind": "boolean"});
        self.call(Method::POST, "/api/v1/flags", Some(create)).await;
        self.put_config(key, json!([])).await;
    }

    /// Replaces `key`'s configuration: enabled, `on` for everyone but these `targets`.
    pub async fn put_config(&self, key: &str, targets: Value) -> Value {
        let config = json!({"key": key, "kind": "boolean", "enabled": true,
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "off_variation": "off", "targets": targets, "fallthrough": {"variation": "on"}});
        let path = format!("/api/v1/flags/{key}/environments/production");
        self.call(Method::PUT, &path, Some(config)).await
    }

    pub async fn kill(&self, key: &str) -> Value {
        let path = format!("/api/v1/flags/{key}/environments/production/kill");
        let reason = json!({"reason": "test"});
        self.call(Method::POST, &path, Some(reason)).await
    }

    pub async fn restore(&self, key: &str) -> Value {
        let path = format!("/api/v1/flags/{key}/environments/production/restore");
        let reason = json!({"reason": "test"});
        self.call(Method::POST, &path, Some(reason)).await
    }

    /// The revision of `production` the server holds now.
    pub fn revision(&self) -> u64 {
        let snapshot = self.running.state.snapshots.get("production");
        snapshot.expect("production is loaded").revision()
    }

    /// SDK connections to `production`.
    pub fn subscribers(&self) -> usize {
        self.running.state.broadcaster.subscribers("production")
    }

    /// An SDK client builder for this server, quick to reconnect.
    pub fn client(&self, token: &str) -> flag_sdk::ClientBuilder {
        Client::builder(&self.url, token)
            .init_timeout(WAIT)
            .reconnect_delay(Duration::from_millis(50))
    }
}

/// Polls `check` until it holds, for at most [`WAIT`].
pub async fn eventually(what: &str, check: impl FnMut() -> bool) {
    within(WAIT, what, check).await;
}

/// Polls `check` until it holds, for at most `limit` (a promise the product makes).
pub async fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A bare SSE reader on `addr`: the request sent, and everything up to the first `put` read.
pub async fn raw_stream(addr: SocketAddr, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /sdk/v1/stream HTTP/1.1\r\nHost: flags\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: put") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, socket.read(&mut chunk))
            .await
            .expect("the stream starts")
            .unwrap();
        assert!(
            n > 0,
            "the stream ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
    socket
}

impl LiveServer {
    /// Opens `/sdk/v1/stream` with `Last-Event-ID: last_event_id` and reads events until one
    /// brings the environment to `until`: each event's name and id, in order.
    pub async fn events_after(
        &self,
        token: &str,
        last_event_id: u64,
        until: u64,
    ) -> Vec<(String, u64)> {
        let mut response = self
            .http
            .get(format!("{}/sdk/v1/stream", self.url))
            .bearer_auth(token)
            .header("Last-Event-ID", last_event_id.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (mut text, mut events) = (String::new(), Vec::new());
        while events.last().is_none_or(|(_, id)| *id < until) {
            let chunk = tokio::time::timeout(WAIT, response.chunk())
                .await
                .expect("events within the wait")
                .unwrap()
                .expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(str::to_owned))
                };
                if let (Some(event), Some(id)) = (field("event: "), field("id: ")) {
                    events.push((event, id.parse().unwrap()));
                }
            }
        }
        events
    }
}
