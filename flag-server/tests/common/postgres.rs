//! A real PostgreSQL for the tests: one throwaway cluster per test process (initdb + pg_ctl in
//! a temporary directory, on a free loopback port, as the `postgres` user when the tests run as
//! root), and a fresh database per test. The cluster stops when the test process ends, however
//! it ends: a shell that owns it waits on a pipe from this process and stops the cluster when
//! the pipe closes.
//!
//! Needs PostgreSQL's server programs (Debian: `apt-get install postgresql`, which `.ci/run`
//! does). Without them a test that asks for a database fails and says what is missing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running cluster, kept for the life of the test process.
struct Cluster {
    port: u16,
    /// The owner shell and its stdin: closing it (the process ending) stops the cluster and
    /// removes its directory.
    _owner: Mutex<(Child, ChildStdin)>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database on the test cluster: its `postgres://` URL. Callable from async
/// tests too (the blocking client runs on a thread of its own).
pub fn database() -> String {
    std::thread::spawn(create_database)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn create_database() -> String {
    let cluster = match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL for this test: {e}"),
    };
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let mut client =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test cluster");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port)
}

/// The directory holding `initdb` and `pg_ctl`: `PATH`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    }) {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: neither on PATH nor in \
         /usr/lib/postgresql/*/bin. Install them (Debian: apt-get install postgresql; .ci/run does)"
            .to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// `program args` as the current user, or as `postgres` when root (PostgreSQL refuses root).
fn as_cluster_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start() -> Result<Cluster, String> {
    let bin = bin_dir()?;
    // Kept (`keep`): the owner shell removes it after stopping the cluster.
    let dir = tempfile::Builder::new()
        .prefix("flag-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?
        .keep();
    let data = dir.as_path().join("data");
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.as_path())
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("cannot hand the temporary directory to the postgres user".into());
        }
    }
    let out = as_cluster_user(&bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "-D",
        ])
        .arg(&data)
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c max_connections=300 -c fsync=on",
        dir.as_path().display()
    );
    let pg_ctl = bin.join("pg_ctl");
    let log = dir.as_path().join("postgres.log");
    // The owner: starts the cluster, says so, waits for its stdin to close, stops it.
    let script = format!(
        "'{ctl}' -D '{data}' -l '{log}' -o '{options}' -w -t 60 start >/dev/null && echo started; \
         cat >/dev/null; '{ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        ctl = pg_ctl.display(),
        data = data.display(),
        log = log.display(),
        dir = dir.as_path().display(),
    );
    let mut owner = as_cluster_user(Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
    let stdin = owner.stdin.take().expect("piped stdin");
    let mut line = String::new();
    BufReader::new(owner.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if line.trim() != "started" {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("the cluster did not start; its log:\n{log}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    while postgres::Client::connect(&url, postgres::NoTls).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "the cluster on port {port} does not accept connections"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Cluster {
        port,
        _owner: Mutex::new((owner, stdin)),
    })
}
