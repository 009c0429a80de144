//! End to end: the real server in-process on 127.0.0.1, SDK clients (`flag-sdk` with the
//! `client` feature) streaming from it. No fixed sleeps: every wait is on the SDK's change
//! subscription or a bounded poll.

use std::time::{Duration, Instant};

use flag_sdk::{Client, Context, ErrorKind, Reason, Status};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How soon an SDK that closed its connection leaves the subscriber count that `flag kill`
/// and `flag status` show.
const CLOSED_GONE_WITHIN: Duration = Duration::from_secs(2);

use crate::common::live::{eventually, raw_stream, within, LiveServer as Server, WAIT};
use crate::common::{database, execute, ADMIN};

fn ctx() -> Context {
    Context::new("user-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_snapshot_then_a_kill_reaches_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let server = Server::start(db.clone(), None, |_| {}).await;
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;

    let client = server.client(&token).build().await.unwrap();
    assert_eq!(client.status(), Status::Valid);
    assert!(client.bool_variation("checkout", &ctx(), false));

    let mut changes = client.subscribe();
    let outcome = server.kill("checkout").await;
    assert_eq!(outcome["subscribers"], 1, "{outcome}");
    let change = tokio::time::timeout(WAIT, changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.flags, vec!["checkout".to_owned()]);
    assert!(!client.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        client
            .json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
        Reason::Off
    );

    let counts = server
        .call(
            reqwest::Method::GET,
            "/api/v1/environments/production/subscribers",
            None,
        )
        .await;
    assert_eq!(counts["subscribers"], 1);
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flag_server_sse_subscribers{environment=\"production\"} 1"),
        "{metrics}"
    );
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_endpoint_etag_and_token_scoping() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let server = Server::start(db.clone(), None, |_| {}).await;
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;
    let http = &server.http;
    let url = format!("{}/sdk/v1/snapshot", server.url);

    let first = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", body["revision"]));
    assert!(body["flags"]["checkout"]["enabled"].as_bool().unwrap());

    let again = http
        .get(&url)
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    server.kill("checkout").await;
    let changed = http
        .get(&url)
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);

    let stream = format!("{}/sdk/v1/stream", server.url);
    assert_eq!(http.get(&stream).send().await.unwrap().status(), 401);
    let admin = http.get(&stream).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(admin.status(), 403);
    let sdk_on_admin = http
        .get(format!("{}/api/v1/flags", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(sdk_on_admin.status(), 403);
    let events = http
        .post(format!("{}/sdk/v1/events", server.url))
        .bearer_auth(&token)
        .json(&json!({"counters": [{"flag": "checkout", "variation": "on", "evaluations": 3, "errors": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 202);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_then_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let server = Server::start(db.clone(), None, |_| {}).await;
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;
    let client = server.client(&token).build().await.unwrap();
    assert!(client.bool_variation("checkout", &ctx(), false));

    let addr = server.stop().await;
    eventually("the client to notice", || client.status() == Status::Stale).await;
    assert!(
        client.bool_variation("checkout", &ctx(), false),
        "keeps the last data"
    );

    let server = Server::start(db.clone(), Some(addr), |_| {}).await;
    eventually("the reconnect", || client.status() == Status::Valid).await;
    let mut changes = client.subscribe();
    server.kill("checkout").await;
    let change = tokio::time::timeout(WAIT, changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.flags, vec!["checkout".to_owned()]);
    assert!(!client.bool_variation("checkout", &ctx(), true));
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_at_start_with_and_without_cache_then_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let cache = dir.path().join("cache.json");
    let server = Server::start(db.clone(), None, |_| {}).await;
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;
    let client = server
        .client(&token)
        .cache_file(&cache)
        .build()
        .await
        .unwrap();
    eventually("the cache file", || cache.exists()).await;
    client.close().await;
    let addr = server.stop().await;

    // Down, with a cache: the cached flags at once.
    let started = Instant::now();
    let cached = Client::builder(format!("http://{addr}"), &token)
        .cache_file(&cache)
        .reconnect_delay(Duration::from_millis(50))
        .init_timeout(WAIT)
        .build()
        .await
        .unwrap();
    assert!(started.elapsed() < WAIT);
    assert_eq!(cached.status(), Status::Stale);
    assert!(cached.bool_variation("checkout", &ctx(), false));

    // Down, no cache: the caller's defaults, CLIENT_NOT_READY.
    let bare = Client::builder(format!("http://{addr}"), &token)
        .reconnect_delay(Duration::from_millis(50))
        .init_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    assert_eq!(bare.status(), Status::Initializing);
    assert!(bare.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        bare.json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
        Reason::Error {
            error: ErrorKind::ClientNotReady
        }
    );

    // Up again: both connect by themselves.
    let server = Server::start(db.clone(), Some(addr), |_| {}).await;
    eventually("both valid", || {
        cached.status() == Status::Valid && bare.status() == Status::Valid
    })
    .await;
    assert!(bare.bool_variation("checkout", &ctx(), false));
    cached.close().await;
    bare.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_cache_is_ignored_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let cache = dir.path().join("cache.json");
    std::fs::write(&cache, b"{\"environment\": \"production\", \"rev").unwrap();
    let server = Server::start(db.clone(), None, |_| {}).await;
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;
    let client = server
        .client(&token)
        .cache_file(&cache)
        .build()
        .await
        .unwrap();
    assert_eq!(client.status(), Status::Valid);
    assert!(client.bool_variation("checkout", &ctx(), false));
    eventually("a valid cache file", || {
        std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<flag_sdk::Snapshot>(&b).ok())
            .is_some()
    })
    .await;
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_is_cut_off_and_shows_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    // Heartbeats far apart: the revocation itself must end the stream, not the next beat.
    let server = Server::start(db.clone(), None, |c| c.sse_heartbeat_ms = 600_000).await;
    server.enabled_flag("checkout").await;
    let (id, token) = server.sdk_token().await;
    let client = server.client(&token).build().await.unwrap();
    assert_eq!(client.status(), Status::Valid);

    server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
        )
        .await;
    eventually("the client refused", || {
        matches!(client.status(), Status::Refused { .. })
    })
    .await;
    assert!(
        client.bool_variation("checkout", &ctx(), false),
        "keeps its data"
    );
    // A new client with the revoked token, or with an admin token, fails to build.
    for (token, code) in [(token.as_str(), 401), (ADMIN, 403)] {
        let error = server.client(token).build().await.unwrap_err();
        let refused =
            matches!(error, flag_sdk::ClientError::Refused { http_status } if http_status == code);
        assert!(refused, "{error}");
    }
    eventually("no subscriber left", || {
        server.running.state.broadcaster.subscribers("production") == 0
    })
    .await;
    client.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_cut_off_while_others_keep_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let server = Server::start(db.clone(), None, |c| c.sse_buffer = 4).await;
    server.enabled_flag("big").await;
    // ~150 KB per event, so a reader that stops reading blocks its connection quickly.
    let keys: Vec<String> = (0..8000).map(|i| format!("user-{i:06}")).collect();
    server
        .put_config("big", json!([{"variation": "on", "keys": keys}]))
        .await;
    let (_, token) = server.sdk_token().await;
    let fast = server.client(&token).build().await.unwrap();

    // A subscriber that reads its first bytes, then stops reading (small receive buffer).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(server.running.addr).await.unwrap();
    slow.write_all(
        format!(
            "GET /sdk/v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut first = [0u8; 64];
    let _ = slow.read(&mut first).await.unwrap();
    eventually("two subscribers", || {
        server.running.state.broadcaster.subscribers("production") == 2
    })
    .await;

    let mut changes = fast.subscribe();
    for round in 0..30 {
        let killing = round % 2 == 0;
        if killing {
            server.kill("big").await;
        } else {
            server.restore("big").await;
        }
        // The fast client sees every change promptly, whatever the slow one does.
        tokio::time::timeout(WAIT, changes.recv())
            .await
            .expect("the fast client keeps up")
            .unwrap();
        assert_eq!(
            fast.bool_variation("big", &Context::new("nobody"), killing),
            !killing
        );
    }

    // The slow one, once it reads, finds its stream ended: it was cut off.
    let mut sink = vec![0u8; 1 << 20];
    let drained = tokio::time::timeout(WAIT, async {
        loop {
            match slow.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the slow subscriber's stream was ended");
    eventually("only the fast subscriber left", || {
        server.running.state.broadcaster.subscribers("production") == 1
    })
    .await;
    fast.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_leaves_the_subscriber_count_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    // The default heartbeat (10 s): a write failing at the next beat cannot be what notices.
    let server = Server::start(db.clone(), None, |_| {}).await;
    let heartbeat = server.running.state.broadcaster.settings().heartbeat;
    assert!(heartbeat >= CLOSED_GONE_WITHIN * 4, "{heartbeat:?}");
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;
    let count = || async {
        let path = "/api/v1/environments/production/subscribers";
        server.call(reqwest::Method::GET, path, None).await["subscribers"].clone()
    };

    // A bare reader that closes its socket (FIN).
    let socket = raw_stream(server.running.addr, &token).await;
    assert_eq!(count().await, 1);
    drop(socket);
    within(
        CLOSED_GONE_WITHIN,
        "the closed reader to leave the count",
        || server.subscribers() == 0,
    )
    .await;
    assert_eq!(count().await, 0);

    // An SDK client closed by its application.
    let client = server.client(&token).build().await.unwrap();
    assert_eq!(client.status(), Status::Valid);
    assert_eq!(count().await, 1);
    client.close().await;
    within(
        CLOSED_GONE_WITHIN,
        "the closed SDK to leave the count",
        || server.subscribers() == 0,
    )
    .await;
    let outcome = server.kill("checkout").await;
    assert_eq!(outcome["subscribers"], 0, "{outcome}");
    server.stop().await;
}

/// After a restart the server holds no changes in memory: an SDK reconnecting with
/// `Last-Event-ID` still gets just what it missed, from the change log; when the log no
/// longer holds them all (pruned), a `put`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_after_a_restart_replays_from_the_log_or_puts_when_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir);
    let server = Server::start(db.clone(), None, |_| {}).await;
    server.enabled_flag("checkout").await;
    let (_, token) = server.sdk_token().await;
    let seen = server.revision();
    server.kill("checkout").await;
    server.restore("checkout").await;
    let addr = server.stop().await;
    let server = Server::start(db.clone(), Some(addr), |_| {}).await;
    let patches = vec![
        ("patch".to_owned(), seen + 1),
        ("patch".to_owned(), seen + 2),
    ];
    assert_eq!(server.events_after(&token, seen, seen + 2).await, patches);
    // Prune what the SDK missed first: the log can no longer say all it missed.
    execute(
        &db,
        format!("DELETE FROM changes WHERE revision = {}", seen + 1),
    )
    .await;
    let events = server.events_after(&token, seen, seen + 2).await;
    assert_eq!(events, vec![("put".to_owned(), seen + 2)]);
}
