//! The streaming client against a scripted SSE server on loopback: start-up, updates,
//! malformed data, auth failures, staleness, the cache file and offline clients. The real
//! server's end-to-end tests live in `flag-server/tests/`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flag_sdk::client::STREAM_PATH;
use flag_sdk::{Client, Context, ErrorKind, Reason, Snapshot, Status};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(10);

/// What the scripted server answers to its n-th connection.
#[derive(Clone)]
enum Reply {
    /// 200 with this body, then whatever is pushed, until the test ends.
    Stream(String),
    /// 200 with this body, then close.
    StreamThenClose(String),
    /// An empty response with this status.
    Status(u16),
}

struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    push: broadcast::Sender<String>,
}

impl Fake {
    async fn start(replies: Vec<Reply>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (push, _) = broadcast::channel(64);
        let (log, pusher) = (requests.clone(), push.clone());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let n = log.lock().unwrap().len();
                let reply = replies[n.min(replies.len() - 1)].clone();
                let (log, rx) = (log.clone(), pusher.subscribe());
                log.lock().unwrap().push(String::new());
                tokio::spawn(serve(socket, reply, log, n, rx));
            }
        });
        Fake {
            url,
            requests,
            push,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn push(&self, text: String) {
        let _ = self.push.send(text);
    }
}

async fn serve(
    mut socket: TcpStream,
    reply: Reply,
    log: Arc<Mutex<Vec<String>>>,
    n: usize,
    mut pushed: broadcast::Receiver<String>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
    }
    log.lock().unwrap()[n] = String::from_utf8_lossy(&head).into_owned();
    let (status, body, keep) = match reply {
        Reply::Stream(body) => (200, body, true),
        Reply::StreamThenClose(body) => (200, body, false),
        Reply::Status(status) => (status, String::new(), false),
    };
    let head = if status == 200 {
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_owned()
    } else {
        format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    };
    if socket.write_all(head.as_bytes()).await.is_err()
        || socket.write_all(body.as_bytes()).await.is_err()
    {
        return;
    }
    if keep {
        while let Ok(text) = pushed.recv().await {
            if socket.write_all(text.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

fn flag(key: &str, enabled: bool, version: u64) -> Value {
    json!({"key": key, "kind": "boolean", "version": version, "enabled": enabled,
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "off_variation": "off", "fallthrough": {"variation": "on"}})
}

fn snapshot(revision: u64, enabled: bool) -> Value {
    json!({"environment": "production", "revision": revision,
        "flags": {"checkout": flag("checkout", enabled, revision)}})
}

fn put(revision: u64, enabled: bool) -> String {
    format!(
        "event: put\nid: {revision}\ndata: {}\n\n",
        snapshot(revision, enabled)
    )
}

fn patch(revision: u64, enabled: bool) -> String {
    let data = json!({"revision": revision, "kind": "flag", "key": "checkout",
        "data": flag("checkout", enabled, revision)});
    format!("event: patch\nid: {revision}\ndata: {data}\n\n")
}

fn ctx() -> Context {
    Context::new("user-1")
}

fn not_ready() -> Reason<'static> {
    Reason::Error {
        error: ErrorKind::ClientNotReady,
    }
}

/// Polls `check` until it holds, for at most [`WAIT`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn builder(url: &str) -> flag_sdk::ClientBuilder {
    Client::builder(url, "sdk-token")
        .init_timeout(WAIT)
        .reconnect_delay(Duration::from_millis(20))
}

#[tokio::test]
async fn first_snapshot_then_live_patches() {
    let fake = Fake::start(vec![Reply::Stream(format!("retry: 20\n{}", put(1, true)))]).await;
    let client = builder(&fake.url).build().await.unwrap();
    assert_eq!(client.status(), Status::Valid);
    assert!(client.bool_variation("checkout", &ctx(), false));
    let request = &fake.requests()[0];
    assert!(
        request.starts_with(&format!("GET {STREAM_PATH} ")),
        "{request}"
    );
    assert!(request
        .to_ascii_lowercase()
        .contains("authorization: bearer sdk-token"));

    let mut changes = client.subscribe();
    fake.push(": heartbeat\n\n".to_owned());
    fake.push(patch(2, false));
    let change = tokio::time::timeout(WAIT, changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.revision, 2);
    assert_eq!(change.flags, vec!["checkout".to_owned()]);
    assert!(!client.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        client.variation_detail("checkout", &ctx()).reason,
        Reason::Off
    );

    // Not newer than held: ignored.
    fake.push(patch(2, true));
    fake.push(patch(1, true));
    fake.push(format!(
        "event: delete\nid: 3\ndata: {}\n\n",
        json!({"revision": 3, "kind": "flag", "key": "checkout"})
    ));
    let change = tokio::time::timeout(WAIT, changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.revision, 3, "revisions 2 and 1 were ignored");
    assert_eq!(
        client.variation_detail("checkout", &ctx()).reason,
        Reason::Error {
            error: ErrorKind::FlagNotFound
        }
    );
    client.close().await;
    assert_eq!(client.status(), Status::Offline);
}

#[tokio::test]
async fn malformed_event_keeps_data_and_reconnects_with_last_event_id() {
    // A put at revision 1, then a patch whose JSON is cut short.
    let malformed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/malformed.sse"
    ))
    .unwrap();
    let fake = Fake::start(vec![
        Reply::Stream(malformed),
        Reply::Stream(patch(2, false)),
    ])
    .await;
    let client = builder(&fake.url).build().await.unwrap();
    eventually("the catch-up", || client.revision() == Some(2)).await;
    assert!(!client.bool_variation("checkout", &ctx(), true));
    let second = fake.requests()[1].to_ascii_lowercase();
    assert!(second.contains("last-event-id: 1"), "{second}");
}

#[tokio::test]
async fn revoked_token_goes_offline_without_a_hot_loop() {
    let fake = Fake::start(vec![Reply::Status(401)]).await;
    let started = Instant::now();
    let client = builder(&fake.url).build().await.unwrap();
    assert!(started.elapsed() < WAIT, "build returned on the refusal");
    assert_eq!(client.status(), Status::Offline);
    assert!(client.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        client.variation_detail("checkout", &ctx()).reason,
        not_ready()
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // would allow ~10 retries at 20 ms
    assert_eq!(fake.requests().len(), 1, "no retry within minutes");
    client.close().await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = Fake::start(vec![Reply::Status(503), Reply::Stream(put(4, true))]).await;
    let client = builder(&fake.url).build().await.unwrap();
    assert_eq!(client.status(), Status::Valid);
    assert_eq!(client.revision(), Some(4));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn silent_stream_goes_stale_and_reconnects() {
    let fake = Fake::start(vec![
        Reply::Stream(put(1, true)),
        Reply::Stream(put(2, false)),
    ])
    .await;
    let client = builder(&fake.url)
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let status = client.watch_status();
    let mut changes = client.subscribe();
    let change = tokio::time::timeout(WAIT, changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.revision, 2, "resynced after going stale");
    assert!(!client.bool_variation("checkout", &ctx(), true));
    // It went through Stale on the way (the watch saw at least one change).
    assert!(status.has_changed().unwrap());
}

#[tokio::test]
async fn server_down_at_start_without_cache_serves_defaults() {
    let url = closed_port().await;
    let started = Instant::now();
    let client = builder(&url)
        .init_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(client.status(), Status::Initializing);
    assert!(client.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        client.variation_detail("checkout", &ctx()).reason,
        not_ready()
    );
    assert_eq!(client.data_age(), None);
    client.close().await;
}

#[tokio::test]
async fn server_down_at_start_with_cache_serves_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("flags.json");
    std::fs::write(&cache, snapshot(7, true).to_string()).unwrap();
    let url = closed_port().await;
    let started = Instant::now();
    let client = builder(&url).cache_file(&cache).build().await.unwrap();
    assert!(
        started.elapsed() < WAIT,
        "no need to wait out the init timeout"
    );
    assert_eq!(client.status(), Status::Stale);
    assert_eq!(client.revision(), Some(7));
    assert!(client.bool_variation("checkout", &ctx(), false));
    assert!(client.data_age().is_some());
    client.close().await;
}

#[tokio::test]
async fn corrupt_cache_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("flags.json");
    std::fs::write(&cache, b"{\"environment\": \"produ").unwrap();
    let client = builder(&closed_port().await)
        .cache_file(&cache)
        .init_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert_eq!(client.status(), Status::Initializing);
    assert_eq!(
        client.variation_detail("checkout", &ctx()).reason,
        not_ready()
    );
    client.close().await;
}

#[tokio::test]
async fn updates_are_written_to_the_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("flags.json");
    let fake = Fake::start(vec![Reply::Stream(put(3, true))]).await;
    let client = builder(&fake.url).cache_file(&cache).build().await.unwrap();
    let revision_on_disk = || {
        std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<Snapshot>(&b).ok())
            .map(|s| s.revision)
    };
    eventually("the cache file", || revision_on_disk() == Some(3)).await;
    fake.push(patch(4, false));
    eventually("the patched cache file", || revision_on_disk() == Some(4)).await;
    client.close().await;

    let offline = Client::offline_from_file(&cache).unwrap();
    assert_eq!(offline.status(), Status::Offline);
    assert!(!offline.bool_variation("checkout", &ctx(), true));
}

#[tokio::test]
async fn stream_closed_by_server_reconnects_and_catches_up() {
    let fake = Fake::start(vec![
        Reply::StreamThenClose(put(1, true)),
        Reply::Stream(patch(2, false)),
    ])
    .await;
    let client = builder(&fake.url).build().await.unwrap();
    eventually("catch-up", || client.revision() == Some(2)).await;
    assert_eq!(client.status(), Status::Valid);
    assert!(fake.requests()[1]
        .to_ascii_lowercase()
        .contains("last-event-id: 1"));
}

#[test]
fn offline_from_a_missing_or_bad_file_is_an_error() {
    assert!(Client::offline_from_file("/nonexistent/flags.json").is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "[]").unwrap();
    let error = Client::offline_from_file(&path).unwrap_err();
    assert!(error.to_string().contains("not a valid snapshot"));
}

/// A URL on which nothing listens.
async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
