//! Stream faults (issue 7): a network cut without FIN between a client and the server. The
//! server runs in-process on 127.0.0.1; every wait is a status watch or a bounded poll. The
//! figures are printed (`--nocapture` shows them).

mod black_hole;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use flag_sdk::{Client, Status};
use flag_server::{Config, Running};
use serde_json::{json, Value};

use black_hole::Proxy;

const ADMIN: &str = "stream-faults-admin";
/// Generous bound for anything that should take a second or two.
const WAIT: Duration = Duration::from_secs(20);
/// No events flushed during a test (they would be load, not subject).
const NO_EVENTS: Duration = Duration::from_secs(3600);

struct Server {
    running: Running,
    url: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(db: &Path, listen: Option<SocketAddr>, heartbeat: Option<Duration>) -> Server {
        let mut config = Config::ephemeral(db, ADMIN);
        if let Some(addr) = listen {
            config.listen = addr;
        }
        if let Some(heartbeat) = heartbeat {
            config.sse_heartbeat_ms = heartbeat.as_millis() as u64;
        }
        let running = flag_server::start(&config).await.expect("server starts");
        Server {
            url: format!("http://{}", running.addr),
            running,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server, ending its streams at once; returns the address to restart on.
    async fn stop(self) -> SocketAddr {
        self.running.state.broadcaster.shutdown();
        self.running.handle.stop(false).await;
        let _ = self.running.task.await;
        self.running.addr
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    async fn sdk_token(&self) -> String {
        let body = json!({"kind": "sdk", "environment": "production", "name": "app"});
        let created = self
            .call(reqwest::Method::POST, "/api/v1/tokens", Some(body))
            .await;
        created["token"].as_str().unwrap().to_owned()
    }

    /// Creates boolean flag `key`, enabled and serving `on` to everyone.
    async fn enabled_flag(&self, key: &str) {
        let create = json!({"key": key, "kind": "boolean"});
        self.call(reqwest::Method::POST, "/api/v1/flags", Some(create))
            .await;
        let config = json!({"key": key, "kind": "boolean", "enabled": true,
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "off_variation": "off", "fallthrough": {"variation": "on"}});
        let path = format!("/api/v1/flags/{key}/environments/production");
        self.call(reqwest::Method::PUT, &path, Some(config)).await;
    }

    /// Kills `key`; returns the environment's revision after the kill.
    async fn kill(&self, key: &str, token: &str) -> u64 {
        let path = format!("/api/v1/flags/{key}/environments/production/kill");
        let reason = json!({"reason": "stream fault test"});
        self.call(reqwest::Method::POST, &path, Some(reason)).await;
        let snapshot: Value = self
            .http
            .get(format!("{}/sdk/v1/snapshot", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        snapshot["revision"].as_u64().unwrap()
    }

    fn subscribers(&self) -> usize {
        self.running.state.broadcaster.subscribers("production")
    }
}

/// Whether `client` holds flag `key` enabled.
fn enabled(client: &Client, key: &str) -> bool {
    client
        .snapshot()
        .and_then(|s| s.snapshot().flags.get(key).map(|f| f.enabled))
        .unwrap_or(false)
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The server's heartbeat in the network-cut test, and the client's matching setting.
const HEARTBEAT: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_without_fin_is_detected_by_the_heartbeat_then_healed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("flags.db"), None, Some(HEARTBEAT)).await;
    server.enabled_flag("checkout").await;
    let token = server.sdk_token().await;
    let proxy = Proxy::start(server.running.addr);
    // The client is told the server's heartbeat: silence for twice as long means stale.
    let client = Client::builder(format!("http://{}", proxy.addr), &token)
        .heartbeat_interval(HEARTBEAT)
        .events_interval(NO_EVENTS)
        .init_timeout(WAIT)
        .build()
        .await
        .unwrap();
    assert_eq!(client.status(), Status::Valid);
    assert!(enabled(&client, "checkout"));

    // Heartbeats keep a quiet but healthy stream valid.
    let mut status = client.watch_status();
    status.mark_unchanged();
    let quiet = tokio::time::timeout(HEARTBEAT * 3, status.wait_for(|s| *s != Status::Valid));
    assert!(quiet.await.is_err(), "stayed valid over three heartbeats");

    let cut_at = Instant::now();
    proxy.set_cut(true);
    tokio::time::timeout(WAIT, status.wait_for(|s| *s == Status::Stale))
        .await
        .expect("the client notices the silence")
        .unwrap();
    let stale_after = cut_at.elapsed();
    let silence = client.data_age().unwrap();
    // Stale after twice the heartbeat of silence (ms clock: a few ms of rounding), and not
    // much later (a second of slack for a loaded machine).
    assert!(
        silence + Duration::from_millis(5) >= HEARTBEAT * 2
            && silence <= HEARTBEAT * 2 + Duration::from_secs(1),
        "stale after about twice the heartbeat of silence: {silence:?}"
    );

    // A change during the cut; the client keeps serving what it had.
    let latest = server.kill("checkout", &token).await;
    let dead_subscribers = server.subscribers();
    // It retries through the black hole (the proxy accepts, nothing comes back).
    eventually("a reconnection attempt during the cut", WAIT, || {
        proxy.accepted() >= 2
    })
    .await;
    assert_eq!(client.status(), Status::Stale);
    assert!(enabled(&client, "checkout"), "keeps the last good data");

    let healed_at = Instant::now();
    let attempts_in_cut = proxy.accepted() - 1;
    proxy.set_cut(false);
    eventually("the client at the latest revision", WAIT, || {
        client.revision() == Some(latest) && client.status() == Status::Valid
    })
    .await;
    let converged_after = healed_at.elapsed();
    assert!(!enabled(&client, "checkout"));
    // The dead connection's end reaches the server once the path heals: one live subscriber.
    eventually("the server to drop the dead subscriber", WAIT, || {
        server.subscribers() == 1
    })
    .await;
    println!(
        "cut: stale {stale_after:?} after the cut ({silence:?} of silence, heartbeat \
         {HEARTBEAT:?}); server still counted {dead_subscribers} subscriber(s) during the cut; \
         {attempts_in_cut} attempt(s) into the black hole; converged {converged_after:?} after \
         healing; then 1 subscriber"
    );
    client.close().await;
    server.stop().await;
}
