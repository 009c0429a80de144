//! The streaming client against a scripted SSE server on loopback: start-up, updates,
//! malformed data, auth failures, staleness, the cache file and offline clients. The real
//! server's end-to-end tests live in `flag-server/tests/`.

use std::time::{Duration, Instant};

use flag_sdk::client::STREAM_PATH;
use flag_sdk::{Client, ClientError, Context, ErrorKind, FlagChange, Reason, Snapshot, Status};
use serde_json::json;

use crate::common::sse_server::{closed_port, patch, put, snapshot, Fake, Reply};

const WAIT: Duration = Duration::from_secs(10);

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

/// The next change notification, within [`WAIT`].
async fn next_change(changes: &mut flag_sdk::client::Changes) -> FlagChange {
    let next = tokio::time::timeout(WAIT, changes.recv()).await;
    next.expect("a change in time").expect("a change")
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
    let change = next_change(&mut changes).await;
    assert_eq!(change.revision, 2);
    assert_eq!(change.flags, vec!["checkout".to_owned()]);
    assert!(!client.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        client
            .json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
        Reason::Off
    );

    // Not newer than held: ignored.
    fake.push(patch(2, true));
    fake.push(patch(1, true));
    fake.push(format!(
        "event: delete\nid: 3\ndata: {}\n\n",
        json!({"revision": 3, "kind": "flag", "key": "checkout"})
    ));
    let change = next_change(&mut changes).await;
    assert_eq!(change.revision, 3, "revisions 2 and 1 were ignored");
    assert_eq!(
        client
            .json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
        Reason::Error {
            error: ErrorKind::FlagNotFound
        }
    );
    client.close().await;
    assert_eq!(client.status(), Status::Offline);
}

#[tokio::test]
async fn unknown_events_and_unusable_patches_are_skipped_and_later_patches_apply() {
    // A put (checkout on), an unknown event type, a patch and a delete of an unknown kind, a
    // patch whose data is not a flag, a patch cut short, then the kill (revision 6). Every
    // connection gets the same stream, as a server replaying from `Last-Event-ID` would.
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/unknown_events.sse"
    ))
    .unwrap();
    let fake = Fake::start(vec![Reply::Stream(fixture)]).await;
    let client = builder(&fake.url).build().await.unwrap();
    eventually("the kill", || client.revision() == Some(6)).await;
    assert!(!client.bool_variation("checkout", &ctx(), true), "killed");
    assert_eq!(client.status(), Status::Valid);

    // Live, one event per chunk: the stream still carries on.
    let mut changes = client.subscribe();
    fake.push("event: future-kind\ndata: {}\n\n".to_owned());
    fake.push("event: patch\nid: 7\ndata: {\"revision\": 7, \"kind\": \n\n".to_owned());
    fake.push(patch(8, true));
    let change = next_change(&mut changes).await;
    assert_eq!(change.revision, 8);
    assert!(client.bool_variation("checkout", &ctx(), false));
    assert_eq!(fake.requests().len(), 1, "never reconnected");
    client.close().await;
}

#[tokio::test]
async fn unusable_put_keeps_data_and_reconnects_with_last_event_id() {
    // A put at revision 1, then a put whose JSON is cut short.
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
async fn refused_token_fails_build_naming_the_refusal() {
    for code in [401, 403] {
        let fake = Fake::start(vec![Reply::Status(code)]).await;
        let error = builder(&fake.url).build().await.unwrap_err();
        assert!(
            matches!(error, ClientError::Refused { http_status } if http_status == code),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("({code} ")), "{message}");
        assert!(
            message.contains("SDK token for this environment"),
            "{message}"
        );
    }
    // A cache file does not hide it.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("flags.json");
    std::fs::write(&cache, snapshot(7, true).to_string()).unwrap();
    let fake = Fake::start(vec![Reply::Status(401)]).await;
    let error = builder(&fake.url).cache_file(&cache).build().await;
    assert!(
        error.unwrap_err().to_string().contains("401 Unauthorized"),
        "refused"
    );
}

#[tokio::test]
async fn refused_token_without_waiting_shows_in_the_status() {
    let fake = Fake::start(vec![Reply::Status(403)]).await;
    let client = builder(&fake.url)
        .init_timeout(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let refused = Status::Refused { http_status: 403 };
    eventually("the refusal", || client.status() == refused).await;
    assert!(client.bool_variation("checkout", &ctx(), true));
    assert_eq!(
        client
            .json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
        not_ready()
    );
    // Retried in minutes (backoff::AUTH_INITIAL), not at the 20 ms reconnection delay.
    assert_eq!(fake.requests().len(), 1);
    client.close().await;
}

#[tokio::test]
async fn token_revoked_while_running_shows_in_the_status_and_keeps_the_data() {
    let fake = Fake::start(vec![
        Reply::StreamThenClose(put(1, true)),
        Reply::Status(401),
    ])
    .await;
    let client = builder(&fake.url).build().await.unwrap();
    let refused = Status::Refused { http_status: 401 };
    eventually("the refusal", || client.status() == refused).await;
    assert!(
        client.bool_variation("checkout", &ctx(), false),
        "keeps its data"
    );
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
    let change = next_change(&mut changes).await;
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
        client
            .json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
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
        client
            .json_variation_detail("checkout", &ctx(), serde_json::Value::Null)
            .reason,
        not_ready()
    );
    client.close().await;
}

#[tokio::test]
async fn updates_are_written_to_the_cache_file_creating_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("not/yet/flags.json");
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
async fn unwritable_cache_folder_fails_build_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the folder should be: no user, root included, can create it.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let cache = dir.path().join("file/flags.json");
    let fake = Fake::start(vec![Reply::Stream(put(3, true))]).await;
    let error = builder(&fake.url)
        .cache_file(&cache)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::CacheFile { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&cache.display().to_string()), "{message}");
    assert!(fake.requests().is_empty(), "refused before connecting");
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
