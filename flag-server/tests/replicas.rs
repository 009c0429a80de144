//! Several replicas on one PostgreSQL database, in-process: a change committed through any
//! replica reaches SDK clients connected to every other one (through the change log and
//! LISTEN/NOTIFY, or the periodic read when a notification is lost), tokens work everywhere,
//! `If-Match` holds across replicas, and exactly one replica leads the background work.

use flag_sdk::{Context, Status};
use flag_server::store::Location;
use reqwest::Method;
use serde_json::json;

use crate::common::live::{eventually, LiveServer};
use crate::common::process::{server_command, ServerProcess};
use crate::common::{postgres, ADMIN};

/// `n` replicas on a fresh database, and the database's URL.
async fn replicas(n: usize) -> (Vec<LiveServer>, String) {
    let url = postgres::database();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(LiveServer::start(Location::Postgres(url.clone()), None, |_| {}).await);
    }
    (out, url)
}

/// An SDK client of `server`, once the token (created through another replica) is known there.
async fn client_of(server: &LiveServer, token: &str) -> flag_sdk::Client {
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    loop {
        match server.client(token).build().await {
            Ok(client) => return client,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "{}: {e}", server.url);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_replica_reaches_sdks_on_the_others() {
    let (servers, _) = replicas(3).await;
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    a.enabled_flag("new-checkout").await;
    let (_, token) = a.sdk_token().await;
    let on_b = client_of(b, &token).await;
    let on_c = client_of(c, &token).await;
    let ctx = Context::new("user-1");
    for client in [&on_b, &on_c] {
        assert_eq!(client.status(), Status::Valid);
        eventually("the flag on", || {
            client.bool_variation("new-checkout", &ctx, false)
        })
        .await;
    }
    a.kill("new-checkout").await;
    for client in [&on_b, &on_c] {
        eventually("the kill", || {
            !client.bool_variation("new-checkout", &ctx, true)
        })
        .await;
    }
    // Every replica holds the same revision, and serves it over REST too.
    let revision = a.revision();
    for server in [b, c] {
        eventually("the same revision", || server.revision() == revision).await;
    }
    let got = c
        .call(
            Method::GET,
            "/api/v1/flags/new-checkout/environments/production",
            None,
        )
        .await;
    assert_eq!(got["enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_is_refused_on_every_replica() {
    let (servers, _) = replicas(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    a.enabled_flag("f").await;
    let path = "/api/v1/flags/f/environments/production";
    let before = a.call(Method::GET, path, None).await;
    let version = before["version"].as_u64().unwrap();
    a.put_config("f", json!([{"variation": "off", "keys": ["u"]}]))
        .await;
    let stale = b
        .http
        .put(format!("{}{path}", b.url))
        .bearer_auth(ADMIN)
        .header("If-Match", format!("\"{version}\""))
        .json(&before)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
}

/// An SDK that moves to another replica with `Last-Event-ID` gets just the changes it
/// missed, read from the change log (this replica started after they were made, so it never
/// held them), and then the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_is_answered_from_the_log_on_any_replica() {
    let (servers, url) = replicas(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    a.enabled_flag("f").await;
    let (_, token) = a.sdk_token().await;
    let seen = a.revision();
    for i in 0..3 {
        a.put_config(
            "f",
            json!([{"variation": "off", "keys": [format!("user-{i}")]}]),
        )
        .await;
    }
    eventually("B has the changes", || b.revision() == seen + 3).await;
    let c = LiveServer::start(Location::Postgres(url), None, |_| {}).await;
    let events = c.events_after(&token, seen, seen + 3).await;
    let patches: Vec<_> = (seen + 1..=seen + 3)
        .map(|r| ("patch".to_owned(), r))
        .collect();
    assert_eq!(events, patches, "replayed from the log, not a put");
    // B too: it holds them in memory.
    assert_eq!(b.events_after(&token, seen, seen + 3).await, patches);
}

/// A token revoked through one replica ends its streams on the others at once (their
/// heartbeats are far apart, so it is the revocation that ends them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_replica_is_cut_off_on_the_others() {
    let url = postgres::database();
    let a = LiveServer::start(Location::Postgres(url.clone()), None, |_| {}).await;
    let b = LiveServer::start(Location::Postgres(url), None, |c| {
        c.sse_heartbeat_ms = 600_000;
    })
    .await;
    a.enabled_flag("f").await;
    let (id, token) = a.sdk_token().await;
    let on_b = client_of(&b, &token).await;
    eventually("a stream on B", || b.subscribers() == 1).await;
    a.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
        .await;
    eventually("the stream on B cut off", || {
        matches!(on_b.status(), Status::Refused { http_status: 401 })
    })
    .await;
    assert_eq!(b.subscribers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_is_recovered_by_the_periodic_read() {
    let (servers, url) = replicas(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    a.enabled_flag("f").await;
    let (_, token) = a.sdk_token().await;
    let on_b = client_of(b, &token).await;
    let ctx = Context::new("user-1");
    eventually("the flag on", || on_b.bool_variation("f", &ctx, false)).await;
    // End every listening session: the notifications of the next commit are lost.
    let ended = tokio::task::spawn_blocking(move || {
        let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        admin
            .query(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
                 WHERE query = 'LISTEN flag_changes'",
                &[],
            )
            .unwrap()
            .len()
    })
    .await
    .unwrap();
    assert!(ended > 0, "no listener session found");
    a.kill("f").await;
    eventually("the kill without a notification", || {
        !on_b.bool_variation("f", &ctx, true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_leads() {
    let (servers, _) = replicas(3).await;
    eventually("a leader", || {
        servers
            .iter()
            .filter(|s| s.running.state.leadership.leads())
            .count()
            == 1
    })
    .await;
}

/// A change scheduled through a follower a few seconds ahead is applied on time by the
/// leader, which nobody woke.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_planned_through_a_follower_is_applied_by_the_leader() {
    let (servers, _) = replicas(2).await;
    eventually("a leader", || {
        servers.iter().any(|s| s.running.state.leadership.leads())
    })
    .await;
    let follower = servers
        .iter()
        .find(|s| !s.running.state.leadership.leads())
        .unwrap();
    follower
        .call(
            Method::POST,
            "/api/v1/flags",
            Some(json!({"key": "new-checkout", "kind": "boolean"})),
        )
        .await;
    let at = flag_server::clock::now_millis() + 3000;
    let path = "/api/v1/flags/new-checkout/environments/production/schedules";
    let body = json!({"at": flag_server::clock::rfc3339(at), "change": {"enabled": true}});
    follower.call(Method::POST, path, Some(body)).await;
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    loop {
        let list = follower.call(Method::GET, path, None).await;
        if list[0]["state"] == "applied" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not applied: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let config = follower
        .call(
            Method::GET,
            "/api/v1/flags/new-checkout/environments/production",
            None,
        )
        .await;
    assert_eq!(config["enabled"], true);
}

/// `kill -9` of the replica taking a write storm: every write it acknowledged is on the
/// other replica, and an SDK client connected there holds the last of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_in_a_write_storm_loses_no_acknowledged_write() {
    let url = postgres::database();
    let mut a = ServerProcess::spawn(&mut server_command(&url));
    let b = LiveServer::start(Location::Postgres(url.clone()), None, |_| {}).await;
    let http = reqwest::Client::new();
    const WRITERS: usize = 4;
    for w in 0..WRITERS {
        b.enabled_flag(&format!("storm-{w}")).await;
    }
    let (_, token) = b.sdk_token().await;
    let sdk = client_of(&b, &token).await;
    // Each writer PUTs its own flag back to back through A, remembering the last target it
    // was told was saved.
    let acked: Vec<_> = (0..WRITERS)
        .map(|w| {
            let http = http.clone();
            let base = a.base.clone();
            tokio::spawn(async move {
                let path = format!("{base}/api/v1/flags/storm-{w}/environments/production");
                let mut last = None;
                for i in 0..u64::MAX {
                    let config = json!({"key": format!("storm-{w}"), "kind": "boolean",
                        "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"},
                        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                        "targets": [{"variation": "off", "keys": [format!("user-{i}")]}]});
                    match http.put(&path).bearer_auth(ADMIN).json(&config).send().await {
                        Ok(r) if r.status().is_success() => last = Some(i),
                        _ => return last,
                    }
                }
                last
            })
        })
        .collect();
    // Let the storm run until A has acknowledged some writes, then kill it mid-flight.
    eventually("writes through A", || b.revision() > 40).await;
    a.kill();
    for (w, writer) in acked.into_iter().enumerate() {
        let last = writer.await.unwrap().expect("A acknowledged writes");
        let key = format!("storm-{w}");
        let path = format!("/api/v1/flags/{key}/environments/production");
        let saved = b.call(Method::GET, &path, None).await;
        let marker: u64 = saved["targets"][0]["keys"][0]
            .as_str()
            .and_then(|k| k.strip_prefix("user-"))
            .and_then(|n| n.parse().ok())
            .expect("a target");
        // The last acknowledged write is there (a later one may be too: it committed, and
        // its answer was lost with A).
        assert!(
            marker >= last,
            "{key}: saved user-{marker}, acknowledged user-{last}"
        );
        let ctx = Context::new(format!("user-{marker}"));
        eventually("the SDK on B holds the last write", || {
            !sdk.bool_variation(&key, &ctx, true)
        })
        .await;
    }
}

/// PostgreSQL ends every session of a replica (a restart or failover looks the same): the
/// replica connects again by itself before it next needs each connection, so no request
/// fails, and its SDKs get the changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reconnects_after_its_sessions_end() {
    let (servers, url) = replicas(1).await;
    let a = &servers[0];
    a.enabled_flag("f").await;
    let (_, token) = a.sdk_token().await;
    let sdk = client_of(a, &token).await;
    let ctx = Context::new("user-1");
    let ended = tokio::task::spawn_blocking(move || {
        let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        admin
            .query(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .len()
    })
    .await
    .unwrap();
    assert!(ended >= 5, "the replica's sessions: {ended}");
    // Every connection finds its session gone before its next use and connects again:
    // neither the next write nor any read fails.
    a.kill("f").await;
    eventually("the kill after the reconnect", || {
        !sdk.bool_variation("f", &ctx, true)
    })
    .await;
    let readyz = format!("{}/readyz", a.url);
    let checks = (0..8).map(|_| a.http.get(&readyz).send());
    for r in futures_util::future::join_all(checks).await {
        assert_eq!(r.unwrap().status(), 200);
    }
}

/// `/readyz` takes a replica out of rotation while it cannot catch up with the database: its
/// writer waits behind a lock held elsewhere (another replica's stuck transaction), or the
/// database refuses its connections. Both heal by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_replica_that_cannot_catch_up_or_reach_its_database() {
    let (servers, url) = replicas(1).await;
    let a = &servers[0];
    let readyz = format!("{}/readyz", a.url);
    let ready = || async {
        let r = a.http.get(&readyz).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);

    let held = hold_write_lock(&url);
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("has not caught up"), "{body}");
    drop(held);
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    while ready().await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the lock"
        );
    }

    let name = url.rsplit('/').next().unwrap().to_owned();
    admin_sql(
        &url,
        format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = '{name}'"
        ),
    )
    .await;
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    admin_sql(
        &url,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .await;
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    while ready().await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the outage"
        );
    }
}

/// Holds the replicas' write lock from a session of its own until dropped.
fn hold_write_lock(url: &str) -> std::sync::mpsc::Sender<()> {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (taken, is_taken) = std::sync::mpsc::channel();
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut session = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        session
            .execute(
                "SELECT pg_advisory_lock($1)",
                &[&flag_server::store::WRITE_LOCK],
            )
            .unwrap();
        taken.send(()).unwrap();
        let _ = wait.recv(); // until the sender is dropped
    });
    is_taken.recv().expect("the write lock taken");
    release
}

/// Runs `sql` on the cluster's `postgres` database (statements about the test's database).
async fn admin_sql(url: &str, sql: String) {
    let (base, _) = url.rsplit_once('/').unwrap();
    let admin = format!("{base}/postgres");
    tokio::task::spawn_blocking(move || {
        let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap();
        client.batch_execute(&sql).unwrap();
    })
    .await
    .unwrap();
}

/// The leader is killed with `kill -9` while it sends a webhook and runs a release: another
/// replica takes over, the release reaches its end with every stage taken once, and the
/// delivery in flight is given up (saying why), never sent a second time; later deliveries
/// go out from the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_release_and_mid_webhook_hands_over_without_repeats() {
    let url = postgres::database();
    let mut a = ServerProcess::spawn(server_command(&url).env("FLAG_WEBHOOK_ALLOW_PRIVATE", "1"));
    // A leads before B exists.
    let probe = url.clone();
    eventually_blocking("A holds the lead", move || {
        let mut admin = ::postgres::Client::connect(&probe, ::postgres::NoTls).unwrap();
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
    .await;
    let b = LiveServer::start(Location::Postgres(url), None, |c| {
        c.webhook_allow_private = true;
    })
    .await;
    assert!(!b.running.state.leadership.leads());

    let (hook_url, mut received) = hanging_receiver().await;
    let hook =
        json!({"url": hook_url, "secret": "a-secret-of-16-chars", "events": ["flag.changed"]});
    let hook = b.call(Method::POST, "/api/v1/webhooks", Some(hook)).await;
    b.enabled_flag("f").await; // one delivery: A takes it and waits for an answer
    let first = tokio::time::timeout(crate::common::live::WAIT, received.recv())
        .await
        .expect("A sends the first delivery");
    let release = "/api/v1/flags/f/environments/production/release";
    let plan = json!({"variation": "on", "stages": [10, 50, 100], "hold_seconds": 2,
        "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 1},
        "on_regression": "rollback"});
    b.call(Method::POST, release, Some(plan)).await;
    a.kill();
    // Healthy SDK counters all along, posted to B: the guard lets every stage pass.
    let (_, sdk) = b.sdk_token().await;
    let (http, events) = (b.http.clone(), format!("{}/sdk/v1/events", b.url));
    let counters = tokio::spawn(async move {
        let batch = json!({"counters": [
            {"flag": "f", "variation": "off", "evaluations": 100, "errors": 0},
            {"flag": "f", "variation": "on", "evaluations": 100, "errors": 0}]});
        loop {
            let _ = http
                .post(&events)
                .bearer_auth(&sdk)
                .json(&batch)
                .send()
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });

    eventually("B leads", || b.running.state.leadership.leads()).await;
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    loop {
        let got = b.call(Method::GET, release, None).await;
        if got["state"] == "completed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    counters.abort();
    let audit = b
        .call(Method::GET, "/api/v1/audit?flag=f&limit=500", None)
        .await;
    let moves: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("release."))
        })
        .filter_map(|e| e["reason"].as_str())
        .collect();
    // Newest first: each stage taken once, whichever replica took it.
    assert_eq!(
        moves,
        [
            "completed at 100%",
            "advanced to 100%",
            "advanced to 50%",
            "release of `on` started at 10%"
        ],
        "{audit}"
    );

    // The delivery A had in flight is given up, not sent again; the next one goes out.
    let id = hook["id"].as_i64().unwrap();
    let deliveries = format!("/api/v1/webhooks/{id}/deliveries");
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    let interrupted = loop {
        let list = b.call(Method::GET, &deliveries, None).await;
        let oldest = list.as_array().and_then(|l| l.last()).cloned();
        if let Some(d) = oldest.filter(|d| d["status"] == "failed") {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        interrupted["last_error"]
            .as_str()
            .unwrap()
            .contains("not sent again"),
        "{interrupted}"
    );
    b.kill("f").await;
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    let list = loop {
        let list = b.call(Method::GET, &deliveries, None).await;
        let settled = list
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered" || d["status"] == "failed");
        if settled && list.as_array().unwrap().len() > 1 {
            break list;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let first = first.unwrap();
    let mut bodies = vec![first.clone()];
    while let Ok(body) = received.try_recv() {
        assert!(!bodies.contains(&body), "sent twice: {body}");
        bodies.push(body);
    }
    // Every later delivery went out from B, once.
    let delivered = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "delivered");
    assert_eq!(delivered.count(), bodies.len() - 1, "{list}");
}

/// Polls a blocking `check` (a PostgreSQL query) until it holds, for at most the wait.
async fn eventually_blocking(what: &str, check: impl Fn() -> bool + Send + Clone + 'static) {
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    while !tokio::task::spawn_blocking(check.clone()).await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A loopback webhook receiver that never answers its first request (the sender is killed
/// while it waits) and answers 200 to the others; every request's body, in order.
async fn hanging_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers and body: the body is the JSON after the blank line, read until it parses.
            let body = loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((_, body)) = text.split_once("\r\n\r\n") {
                    if serde_json::from_str::<serde_json::Value>(body).is_ok() {
                        break Some(body.to_owned());
                    }
                }
            };
            let Some(body) = body else { continue };
            let _ = tx.send(body);
            if first {
                first = false;
                // Never answered: held open until the sender goes away.
                tokio::spawn(async move {
                    let _ = socket.read(&mut chunk).await;
                });
                continue;
            }
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_and_the_admin_event_stream_hold_on_every_replica() {
    use futures_util::StreamExt;
    let (servers, _) = replicas(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let signed_in = a
        .http
        .post(format!("{}/console/session", a.url))
        .header("Origin", &a.url)
        .json(&json!({ "token": ADMIN }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The session made on A is good on B.
    let on_b = b
        .http
        .get(format!("{}/api/v1/flags", b.url))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200);
    // B's admin event stream shows what was done through A.
    let stream = b
        .http
        .get(format!("{}/api/v1/events", b.url))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    a.enabled_flag("made-on-a").await;
    let mut seen = String::new();
    tokio::time::timeout(crate::common::live::WAIT, async {
        while !seen.contains(r#""flag":"made-on-a""#) {
            let chunk = body.next().await.expect("the stream stays open").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the change made through A reaches B's event stream");
}

/// Alertmanager's repeat of an alert reaching another replica (behind a load balancer) finds
/// the occurrence in the database: it does not kill again the flag a person restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_occurrence_acts_once_across_replicas() {
    let (servers, _) = replicas(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    a.enabled_flag("new-checkout").await;
    a.call(
        Method::POST,
        "/api/v1/integrations/alertmanager/bindings",
        Some(
            json!({"matchers": {"alertname": "CheckoutErrors"}, "flag": "new-checkout",
                    "environment": "production", "action": "kill"}),
        ),
    )
    .await;
    let token = a
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"kind": "integration", "name": "am"})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload = json!({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "CheckoutErrors"},
        "startsAt": "2026-12-01T03:00:00Z", "fingerprint": "fp-1"}]});
    let notify = |server: &LiveServer| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/integrations/alertmanager", server.url))
            .bearer_auth(&token)
            .json(&payload)
            .send()
    };
    let first: serde_json::Value = notify(a).await.unwrap().json().await.unwrap();
    assert_eq!(first["actions"][0]["outcome"], "acted");
    a.restore("new-checkout").await;
    // B learns of the token through the change log; then the repeat changes nothing.
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    let repeat = loop {
        let r = notify(b).await.unwrap();
        if r.status().is_success() {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "B: {}", r.status());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(repeat["actions"][0]["outcome"], "repeat");
    let config = b
        .call(
            Method::GET,
            "/api/v1/flags/new-checkout/environments/production",
            None,
        )
        .await;
    assert_eq!(config["enabled"], true);
}

/// During a rolling upgrade an older replica still writes audit rows without the time in
/// milliseconds: the database fills it in, so the audit log's time queries, the dashboard
/// annotations and the last-change gauge still see those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_replicas_audit_rows_are_found_by_time() {
    let (servers, url) = replicas(1).await;
    let server = &servers[0];
    server.enabled_flag("upgraded").await;
    // The INSERT of a build from before `at_ms` (its columns, its time format).
    let at = "2026-11-30T03:00:00.000Z";
    tokio::task::spawn_blocking(move || {
        let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        db.execute(
            "INSERT INTO audit (at, actor, action, flag, environment, reason)
             VALUES ($1, 'old-replica', 'flag.kill', 'upgraded', 'production', 'from before')",
            &[&at],
        )
        .unwrap();
    })
    .await
    .unwrap();
    let found = server
        .call(
            Method::GET,
            "/api/v1/audit?since=2026-11-30T02:59:00Z&until=2026-11-30T03:01:00Z",
            None,
        )
        .await;
    let entries = found["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{found}");
    assert_eq!(entries[0]["actor"], "old-replica");
}
