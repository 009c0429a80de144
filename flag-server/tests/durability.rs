//! Acknowledged writes survive `kill -9` of the server process, and the database is intact.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::process::{printed_token, run_to_exit, server_command, ServerProcess};
use crate::common::{read, rich_config, ADMIN};

async fn put(client: &reqwest::Client, base: &str, key: &str, version: u64, marker: u64) -> u16 {
    let mut config = rich_config(key);
    config["targets"][0]["keys"] = json!([format!("marker-{marker}")]);
    let r = client
        .put(format!("{base}/api/v1/flags/{key}/environments/production"))
        .bearer_auth(ADMIN)
        .header("If-Match", format!("\"{version}\""))
        .json(&config)
        .send()
        .await;
    match r {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Creates boolean flag `key` through the server at `base`, as the admin.
async fn create_flag(client: &reqwest::Client, base: &str, key: &str) {
    let r = client
        .post(format!("{base}/api/v1/flags"))
        .bearer_auth(ADMIN)
        .json(&json!({"key": key, "kind": "boolean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "creating {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    let mut server = ServerProcess::spawn(&mut server_command(&db));
    let base = server.base.clone();
    let client = reqwest::Client::new();
    const CLIENTS: usize = 8;
    for c in 0..CLIENTS {
        create_flag(&client, &base, &format!("d-{c}")).await;
    }
    // 8 clients write until killed; each remembers its last acknowledged version.
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64)>();
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let base = base.clone();
        let acked_tx = acked_tx.clone();
        writers.push(tokio::spawn(async move {
            let key = format!("d-{c}");
            let mut version = 1;
            loop {
                if put(&client, &base, &key, version, version + 1).await != 200 {
                    break;
                }
                version += 1;
                let _ = acked_tx.send((c, version));
            }
        }));
    }
    drop(acked_tx);
    // Kill after a good number of acknowledged writes, while writes are in flight.
    let mut last = [1u64; CLIENTS];
    let mut total = 0;
    while total < 400 {
        let (c, v) = acked_rx.recv().await.expect("writes are acknowledged");
        last[c] = v;
        total += 1;
    }
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    while let Some((c, v)) = acked_rx.recv().await {
        last[c] = last[c].max(v);
    }

    // The database is intact, even before a server opens it again.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let mut server = ServerProcess::spawn(&mut server_command(&db));
    let base = server.base.clone();
    for (c, acked) in last.iter().enumerate() {
        let r = client
            .get(format!("{base}/api/v1/flags/d-{c}/environments/production"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let body: Value = read(r).await.body;
        let version = body["version"].as_u64().unwrap();
        // Every acknowledged write is there; at most the one in flight committed unanswered.
        assert!(
            version == *acked || version == acked + 1,
            "d-{c}: {version} vs {acked}"
        );
        if version == *acked {
            assert_eq!(body["targets"][0]["keys"][0], format!("marker-{acked}"));
        }
        let audit = client
            .get(format!("{base}/api/v1/audit?flag=d-{c}&limit=500"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let entries = read(audit).await.body["entries"].as_array().unwrap().len() as u64;
        // One row per configuration version (version 1 = the creation).
        assert_eq!(entries, version);
    }
    server.kill();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Commits never copy the WAL into the database file themselves (that made one write in a few
/// hundred wait for the copy); a background checkpoint does, while the server runs. A copy of
/// the database file alone, taken a few seconds after a write, holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_reaches_the_database_file_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    let mut server = ServerProcess::spawn(&mut server_command(&db));
    let client = reqwest::Client::new();
    create_flag(&client, &server.base, "checkpointed").await;
    let copy = dir.path().join("copy.db");
    let mut found = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::copy(&db, &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let n: Result<i64, _> = conn.query_row(
            "SELECT count(*) FROM flags WHERE key = 'checkpointed'",
            [],
            |r| r.get(0),
        );
        if n.is_ok_and(|n| n == 1) {
            found = true;
            break;
        }
    }
    server.kill();
    assert!(
        found,
        "the database file alone never held the write (no checkpoint ran)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let out = run_to_exit(&mut server_command(&db));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("schema version 999"), "{stderr}");
    assert!(stderr.contains("newer flag-server"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_an_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    // Each start runs until it listens (the token line comes before that), then is killed.
    let start = || {
        let mut command = server_command(&db);
        command
            .env_remove("FLAG_ADMIN_TOKEN")
            .stdout(Stdio::piped());
        ServerProcess::spawn(&mut command).kill_and_read_stdout()
    };
    let first = start();
    let token = printed_token(&first).unwrap_or_else(|| panic!("no token in {first:?}"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT hash FROM tokens WHERE name = 'bootstrap'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, flag_server::auth::hash(token).to_vec());
    drop(conn);
    let second = start();
    assert!(!second.contains(token));
    assert!(second.trim().is_empty(), "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    let mut server = ServerProcess::spawn(&mut server_command(&db));
    let base = server.base.clone();
    let client = reqwest::Client::new();
    create_flag(&client, &base, "f").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Bounded wait for the exit (graceful shutdown takes well under the 10 s timeout).
    let mut exited = None;
    for _ in 0..300 {
        if let Some(s) = server.child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = exited.unwrap_or_else(|| panic!("flag-server did not stop on SIGTERM"));
    assert!(exited.success(), "{exited:?}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let flags: i64 = conn
        .query_row("SELECT count(*) FROM flags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(flags, 1);
}
