//! Storage faults and secrets, against the real binary run as a process:
//!
//! - a full disk (the database on a small tmpfs, filled up) answers every write 503 with a
//!   clear body, saves nothing, publishes nothing, and writes work again once space returns;
//! - a file system the kernel turns read-only under the running server (ext4 on a loop device,
//!   `errors=remount-ro`, an error injected through sysfs) answers writes 503 "read-only"
//!   while reads still work, and loses nothing;
//! - with the log at `trace`, no token secret (nor a piece of one) reaches stdout or stderr.
//!
//! The storage tests mount file systems, so they need root: without it they say so and pass.
//! (A tmpfs cannot be remounted read-only while the server holds the database open for
//! writing: the kernel answers EBUSY. Only the kernel's own emergency read-only, as after a
//! disk error, happens under a running process; hence ext4 for that test.)

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{read, rich_config, Reply};

const ADMIN: &str = "faults-admin-token";

// ---------------------------------------------------------------------------------------
// The server as a process.

/// The real binary on `db`, on an ephemeral port, its stdout and stderr captured.
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
    admin: String,
    output: Arc<Mutex<String>>,
}

impl Server {
    fn spawn(db: &Path) -> Server {
        Server::spawn_with(db, ADMIN, "info")
    }

    fn spawn_with(db: &Path, admin: &str, log: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flag-server"))
            .args(["--listen", "127.0.0.1:0", "--workers", "2", "--db"])
            .arg(db)
            .env("FLAG_ADMIN_TOKEN", admin)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flag-server starts");
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = output.clone();
            let addr_tx = addr_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("listening") {
                        if let Some(rest) = line.split(" addr=").nth(1) {
                            let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                            let _ = addr_tx.send(addr);
                        }
                    }
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not log its address:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            admin: admin.to_owned(),
            output,
        }
    }

    /// SIGTERM, then a bounded wait for the exit (SIGKILL after 15 s).
    fn stop(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("flag-server did not stop on SIGTERM")
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    async fn send(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request sent")).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &self.admin, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, &self.admin, Some(body)).await
    }

    async fn put_config(&self, key: &str, version: u64, marker: &str) -> Reply {
        let mut config = rich_config(key);
        config["targets"][0]["keys"] = json!([marker]);
        let r = self
            .client
            .put(format!(
                "{}/api/v1/flags/{key}/environments/production",
                self.base
            ))
            .bearer_auth(&self.admin)
            .header("If-Match", format!("\"{version}\""))
            .json(&config)
            .send()
            .await
            .expect("request sent");
        read(r).await
    }

    async fn kill_flag(&self, key: &str) -> Reply {
        self.post(
            &format!("/api/v1/flags/{key}/environments/production/kill"),
            json!({"reason": "fault test"}),
        )
        .await
    }

    async fn sdk_token(&self) -> String {
        let r = self
            .post(
                "/api/v1/tokens",
                json!({"kind": "sdk", "environment": "production", "name": "app"}),
            )
            .await;
        r.ok(201)["token"].as_str().unwrap().to_owned()
    }

    /// Everything a failed write could have touched: each flag's config (and version), the
    /// flag list, the audit log and the SDK snapshot with its revision.
    async fn state(&self, keys: &[&str], sdk: &str) -> Value {
        let mut configs = serde_json::Map::new();
        for key in keys {
            let r = self
                .get(&format!("/api/v1/flags/{key}/environments/production"))
                .await;
            configs.insert((*key).to_owned(), r.ok(200).clone());
        }
        let flags = self.get("/api/v1/flags").await.ok(200).clone();
        let audit = self.get("/api/v1/audit?limit=500").await.ok(200).clone();
        let snapshot = self.send(Method::GET, "/sdk/v1/snapshot", sdk, None).await;
        let etag = snapshot.headers["etag"].to_str().unwrap().to_owned();
        json!({"configs": configs, "flags": flags, "audit": audit,
               "snapshot": snapshot.ok(200).clone(), "etag": etag})
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SDK stream read event by event.
struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

/// One SSE event: its name, id and JSON data.
#[derive(Debug)]
struct Event {
    name: String,
    id: u64,
    data: Value,
}

impl Events {
    async fn open(server: &Server, token: &str) -> Events {
        let res = server
            .client
            .get(format!("{}/sdk/v1/stream", server.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("stream opens");
        assert_eq!(res.status(), 200);
        Events {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event (heartbeats and `retry:` skipped), within 20 s.
    async fn next(&mut self) -> Event {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = Event {
                    name: String::new(),
                    id: 0,
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.name = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = v.parse().unwrap();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(v).unwrap();
                    }
                }
                if !event.name.is_empty() {
                    return event;
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("an SSE event within 20 s")
                .expect("the stream is open")
                .expect("the stream reads");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Mounts, unmounted on drop so a failing test never leaks one.

fn is_root() -> bool {
    // The effective uid is the second field of `Uid:`.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command; its stdout, or a message with its stderr.
fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn unmount(dir: &Path) {
    let dir = dir.to_str().unwrap();
    if sh("umount", &[dir]).is_err() {
        // Still busy (a process left behind): detach it anyway.
        let _ = sh("umount", &["-l", dir]);
    }
}

/// A tmpfs of `size` on a fresh temporary directory.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        sh(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path],
        )
        .expect("mount a tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(self.dir.path());
    }
}

/// ext4 (no journal, `errors=remount-ro`) on a loop device whose image lives on a tmpfs.
struct Ext4 {
    mnt: PathBuf,
    dev: String,
    mounted: bool,
    // Dropped after the file system on it.
    _image: Tmpfs,
}

impl Ext4 {
    /// `None` when this machine has no loop devices or no mkfs.ext4.
    fn mount() -> Option<Ext4> {
        if !Path::new("/dev/loop-control").exists() || sh("mkfs.ext4", &["-V"]).is_err() {
            return None;
        }
        let image = Tmpfs::mount("48m");
        let img = image.path().join("disk.img");
        let mnt = image.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let img = img.to_str().unwrap();
        sh("mkfs.ext4", &["-q", "-F", "-O", "^has_journal", img]).expect("mkfs.ext4");
        let dev = sh("losetup", &["-f", "--show", img]).expect("a loop device");
        let mut disk = Ext4 {
            mnt,
            dev,
            mounted: false,
            _image: image,
        };
        disk.mount_rw();
        Some(disk)
    }

    fn mount_rw(&mut self) {
        sh(
            "mount",
            &[
                "-t",
                "ext4",
                "-o",
                "errors=remount-ro",
                &self.dev,
                self.mnt.to_str().unwrap(),
            ],
        )
        .expect("mount the ext4 file system");
        self.mounted = true;
    }

    /// What the kernel does after a disk error: the file system turns read-only at once,
    /// open files and all, until it is unmounted.
    fn fail(&self) {
        let name = Path::new(&self.dev).file_name().unwrap().to_str().unwrap();
        std::fs::write(
            format!("/sys/fs/ext4/{name}/trigger_fs_error"),
            "injected by the flag-server fault test",
        )
        .expect("inject an ext4 error");
    }

    /// Unmounts and mounts again: the only way back from an emergency read-only.
    fn remount(&mut self) {
        unmount(&self.mnt);
        self.mounted = false;
        self.mount_rw();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        if self.mounted {
            unmount(&self.mnt);
        }
        let _ = sh("losetup", &["-d", &self.dev]);
    }
}

/// Writes `path` until the file system has no space left; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 16, 512, 1] {
        let bytes = vec![0xa5u8; chunk];
        loop {
            match file.write(&bytes) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let _ = file.sync_all();
    written
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[track_caller]
fn unavailable(r: &Reply, what: &str) {
    let body = r.problem(503);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(what), "detail: {detail}");
    assert!(detail.contains("not saved"), "detail: {detail}");
    assert_eq!(r.headers["retry-after"], "5");
}

/// Every write the test tries while the storage fails: a config PUT, a kill, a new flag,
/// a new token, and a group of PUTs sent together (one group commit).
async fn every_write_fails(server: &Server, keys: &[&str], versions: &[u64], what: &str) {
    unavailable(&server.put_config(keys[0], versions[0], "lost").await, what);
    unavailable(&server.kill_flag(keys[0]).await, what);
    unavailable(
        &server
            .post("/api/v1/flags", json!({"key": "new", "kind": "boolean"}))
            .await,
        what,
    );
    unavailable(
        &server
            .post("/api/v1/tokens", json!({"kind": "admin", "name": "lost"}))
            .await,
        what,
    );
    let group = keys
        .iter()
        .zip(versions)
        .map(|(key, version)| server.put_config(key, *version, "lost-in-a-group"));
    for r in futures_util::future::join_all(group).await {
        unavailable(&r, what);
    }
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_saves_nothing_and_recovers_when_space_returns() {
    if !is_root() {
        eprintln!("SKIPPED: the full-disk test mounts a tmpfs and needs root");
        return;
    }
    let disk = Tmpfs::mount("4m");
    let db = disk.path().join("flags.db");
    let mut server = Server::spawn(&db);
    let keys = ["f0", "f1", "f2"];
    for key in keys {
        server
            .post("/api/v1/flags", json!({"key": key, "kind": "boolean"}))
            .await
            .ok(201);
        server.put_config(key, 1, "saved").await.ok(200);
    }
    let sdk = server.sdk_token().await;
    let mut events = Events::open(&server, &sdk).await;
    let put = events.next().await;
    assert_eq!(put.name, "put");
    let before = server.state(&keys, &sdk).await;
    // The whole database is on the small disk: the file, its WAL and its shared memory.
    for file in ["flags.db", "flags.db-wal", "flags.db-shm"] {
        assert!(
            disk.path().join(file).exists(),
            "{file} is not on the tmpfs"
        );
    }

    let filler = disk.path().join("filler");
    assert!(fill(&filler) > 0);
    every_write_fails(&server, &keys, &[2, 2, 2], "disk is full").await;
    unavailable(&server.get("/readyz").await, "disk is full");
    // Reads still answer, and nothing changed: config, version, audit, flags, snapshot.
    assert_eq!(server.state(&keys, &sdk).await, before);

    std::fs::remove_file(&filler).unwrap();
    server.get("/readyz").await.ok(200);
    let r = server.put_config("f0", 2, "after").await;
    assert_eq!(r.ok(200)["version"], 3);
    server.kill_flag("f1").await.ok(200);
    server
        .post("/api/v1/flags", json!({"key": "new", "kind": "boolean"}))
        .await
        .ok(201);
    // The stream carried nothing of the failed writes: the next events are the new ones,
    // revision after revision.
    let first = events.next().await;
    assert_eq!(
        (first.name.as_str(), first.id, &first.data["key"]),
        ("patch", put.id + 1, &json!("f0"))
    );
    assert_eq!(first.data["data"]["targets"][0]["keys"], json!(["after"]));
    let second = events.next().await;
    assert_eq!((second.id, &second.data["key"]), (put.id + 2, &json!("f1")));
    let after = server.get("/api/v1/audit?flag=f0&limit=500").await;
    assert_eq!(after.ok(200)["entries"].as_array().unwrap().len(), 3);

    assert!(server.stop().success());
    assert_eq!(integrity(&db), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_gone_read_only_answers_503_keeps_reads_and_loses_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: the read-only test mounts file systems and needs root");
        return;
    }
    let Some(mut disk) = Ext4::mount() else {
        eprintln!("SKIPPED: the read-only test needs loop devices and mkfs.ext4");
        return;
    };
    let db = disk.mnt.join("flags.db");
    let mut server = Server::spawn(&db);
    let keys = ["r0", "r1"];
    for key in keys {
        server
            .post("/api/v1/flags", json!({"key": key, "kind": "boolean"}))
            .await
            .ok(201);
        server.put_config(key, 1, "saved").await.ok(200);
    }
    let sdk = server.sdk_token().await;
    let before = server.state(&keys, &sdk).await;

    disk.fail();
    every_write_fails(&server, &keys, &[2, 2], "read-only").await;
    unavailable(&server.get("/readyz").await, "read-only");
    // Reads answer from the read-only disk, unchanged.
    assert_eq!(server.state(&keys, &sdk).await, before);
    server.stop();

    // The kernel lifts an emergency read-only only by unmounting: back on a writable mount,
    // the database is intact, nothing of the refused writes is in it, and writes work.
    disk.remount();
    assert_eq!(integrity(&db), "ok");
    let mut server = Server::spawn(&db);
    assert_eq!(server.state(&keys, &sdk).await, before);
    server.get("/readyz").await.ok(200);
    assert_eq!(
        server.put_config("r0", 2, "after").await.ok(200)["version"],
        3
    );
    assert!(server.stop().success());
    assert_eq!(integrity(&db), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let admin = flag_server::auth::new_secret();
    let mut server = Server::spawn_with(&dir.path().join("flags.db"), &admin, "trace");
    let created = server
        .post(
            "/api/v1/tokens",
            json!({"kind": "admin", "name": "ops-bot"}),
        )
        .await;
    let second_admin = created.ok(201)["token"].as_str().unwrap().to_owned();
    let second_id = created.body["id"].as_i64().unwrap();
    let sdk = server.sdk_token().await;
    let wrong = flag_server::auth::new_secret();

    // Every way a secret travels: admin API, SDK snapshot, stream and events, each token on
    // the other's endpoints, wrong, revoked, lowercase scheme, in query strings.
    server
        .send(
            Method::POST,
            "/api/v1/flags",
            &second_admin,
            Some(json!({"key": "f", "kind": "boolean"})),
        )
        .await
        .ok(201);
    server.get("/api/v1/flags").await.ok(200);
    server
        .send(Method::GET, "/sdk/v1/snapshot", &sdk, None)
        .await
        .ok(200);
    let mut events = Events::open(&server, &sdk).await;
    assert_eq!(events.next().await.name, "put");
    drop(events);
    server
        .send(
            Method::POST,
            "/sdk/v1/events",
            &sdk,
            Some(json!({"counters": []})),
        )
        .await;
    server
        .send(Method::GET, "/api/v1/flags", &sdk, None)
        .await
        .problem(403);
    server
        .send(Method::GET, "/sdk/v1/snapshot", &admin, None)
        .await
        .problem(403);
    for path in ["/api/v1/flags", "/sdk/v1/snapshot", "/sdk/v1/stream"] {
        server
            .send(Method::GET, path, &wrong, None)
            .await
            .problem(401);
    }
    server
        .send(
            Method::DELETE,
            &format!("/api/v1/tokens/{second_id}"),
            &admin,
            None,
        )
        .await
        .ok(204);
    server
        .send(Method::GET, "/api/v1/flags", &second_admin, None)
        .await
        .problem(401);
    let r = server
        .client
        .get(format!("{}/api/v1/flags", server.base))
        .header("Authorization", format!("bearer {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for query in [
        format!("/sdk/v1/snapshot?token={sdk}"),
        format!("/api/v1/flags?access_token={admin}"),
        format!("/sdk/v1/stream?authorization=Bearer%20{sdk}"),
    ] {
        let r = server
            .client
            .get(format!("{}{query}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{query}");
    }
    server.stop();

    let log = server.output();
    // The log is there and names requests, tokens by name and the refusals (so this test
    // would see a secret if one were written).
    for expected in [
        "route=\"/api/v1/tokens\"",
        "route=\"/sdk/v1/snapshot\"",
        "route=\"/sdk/v1/stream\"",
        "token=\"ops-bot\"",
        "status=401",
    ] {
        assert!(log.contains(expected), "no `{expected}` in the log");
    }
    for secret in [&admin, &second_admin, &sdk, &wrong] {
        let hash = hex_sha256(secret);
        for piece in [
            secret.as_str(),
            &secret[..16],
            &secret[secret.len() - 16..],
            &hash[..16],
        ] {
            assert!(
                !log.contains(piece),
                "a secret's piece `{piece}` is in the log:\n{}",
                log.lines()
                    .filter(|l| l.contains(piece))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

fn hex_sha256(secret: &str) -> String {
    flag_server::auth::hash(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
