//! flag-server under load on loopback: durable flag updates per second with concurrent
//! clients (each `PUT`s its own flag with `If-Match`, as the CLI does), then `GET` latency.
//! The server runs in-process on 127.0.0.1:0 with a fresh database (WAL, `synchronous=FULL`)
//! in the system temp directory; each phase runs for a bounded time. The load clients use
//! the harness's minimal keep-alive HTTP/1.1 client ([`flag_benches::http`]) so that they
//! take as little as possible of the two cores they share with the server.
//!
//! ```text
//! cargo run --release -p flag-benches --bin server_load -- [SECONDS] [CLIENTS] [--sdk-clients N] [--db postgres://...]
//! ```
//!
//! Defaults: 5 seconds per phase, 8 clients, a fresh SQLite file. `--db` runs the server on
//! that (empty) PostgreSQL database instead. With `--sdk-clients N`, N real SDK clients
//! stream from the server during the write storm (every update is fanned out to each of
//! them), and the harness reports how long after the storm every client held the last
//! revision. They stand in for N application processes on other machines, so they run in a
//! child process of this binary (`--sdk-fleet`) at the lowest CPU priority (`nice -n 19`):
//! the server keeps the cores it would have in production, and the fleet catches up with
//! what it was denied after the storm, which the convergence time includes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use flag_benches::load::{report, run_phase};
use flag_benches::{connect_clients, http::Connection};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const ADMIN: &str = "bench-admin-token";

fn config(key: &str, marker: u64) -> Value {
    json!({
        "key": key, "kind": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "enabled": true, "off_variation": "off",
        "targets": [{"variation": "on", "keys": [format!("user-{marker}")]}],
        "rules": [{"id": "benelux",
                   "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
                   "serve": {"variation": "on"}}],
        "fallthrough": {"rollout": {"bucket_by": "key",
            "weights": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}
    })
}

struct Args {
    seconds: u64,
    clients: usize,
    sdk_clients: usize,
    db: Option<flag_server::store::Location>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 5,
        clients: 8,
        sdk_clients: 0,
        db: None,
    };
    let mut positional = 0;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sdk-clients" => {
                args.sdk_clients = it.next().context("--sdk-clients N")?.parse()?;
            }
            "--db" => {
                args.db = Some(it.next().context("--db postgres://...")?.parse()?);
            }
            value => {
                match positional {
                    0 => args.seconds = value.parse().context("SECONDS")?,
                    1 => args.clients = value.parse().context("CLIENTS")?,
                    _ => anyhow::bail!("unexpected argument {value:?}"),
                }
                positional += 1;
            }
        }
    }
    Ok(args)
}

const AUTH: (&str, &str) = ("Authorization", "Bearer bench-admin-token");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// `PUT`s flag `bench-{c}` over its version `n + 1` (`If-Match`), as the CLI does.
async fn put(c: usize, n: u64, connection: Connection) -> anyhow::Result<Connection> {
    put_flag(c, n, connection, true).await
}

/// `PUT`s flag `bench-{c}` without a precondition (the background writers of phase 3).
async fn put_any(c: usize, n: u64, connection: Connection) -> anyhow::Result<Connection> {
    put_flag(c, n, connection, false).await
}

async fn put_flag(
    c: usize,
    n: u64,
    mut connection: Connection,
    if_match: bool,
) -> anyhow::Result<Connection> {
    let key = format!("bench-{c}");
    let body = serde_json::to_vec(&config(&key, n))?;
    let path = format!("/api/v1/flags/{key}/environments/production");
    let version = format!("\"{}\"", n + 1);
    let with_precondition = [AUTH, JSON, ("If-Match", version.as_str())];
    let headers = if if_match {
        &with_precondition[..]
    } else {
        &with_precondition[..2]
    };
    let r = connection.send("PUT", &path, headers, &body).await?;
    anyhow::ensure!(r.status == 200, "put: {}", r.status);
    Ok(connection)
}

/// `GET`s flag `bench-{c}`'s configuration.
async fn get(c: usize, _: u64, mut connection: Connection) -> anyhow::Result<Connection> {
    let path = format!("/api/v1/flags/bench-{c}/environments/production");
    let r = connection.send("GET", &path, &[AUTH], b"").await?;
    anyhow::ensure!(r.status == 200, "get: {}", r.status);
    Ok(connection)
}

/// The SDK fleet as seen from the harness: a child process holding N streaming clients.
struct Fleet {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Fleet {
    /// Starts `n` SDK clients in a child process at the lowest CPU priority and waits until
    /// all of them hold the environment's snapshot.
    async fn start(url: &str, token: &str, n: usize) -> anyhow::Result<Fleet> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new("nice")
            .args(["-n", "19"])
            .arg(exe)
            .args(["--sdk-fleet", url, token, &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the SDK fleet (`nice` from coreutils)")?;
        let stdin = child.stdin.take().context("fleet stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("fleet stdout")?).lines();
        let mut fleet = Fleet {
            child,
            stdin,
            stdout,
        };
        fleet.expect("ready").await?;
        Ok(fleet)
    }

    /// Waits until every client of the fleet holds `revision`.
    async fn converged(&mut self, revision: u64) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{revision}\n").as_bytes())
            .await?;
        self.expect("converged").await
    }

    async fn expect(&mut self, word: &str) -> anyhow::Result<()> {
        let line = self.stdout.next_line().await?.unwrap_or_default();
        anyhow::ensure!(line == word, "SDK fleet said {line:?}, not {word:?}");
        Ok(())
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin); // end of input: the fleet closes its clients and exits
        anyhow::ensure!(self.child.wait().await?.success(), "SDK fleet failed");
        Ok(())
    }
}

/// The child side (`--sdk-fleet URL TOKEN N`): connects N clients, says `ready`, then for
/// each revision read from stdin says `converged` once all clients hold it (within 60 s).
async fn sdk_fleet(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let url = args.next().context("URL")?;
    let token = args.next().context("TOKEN")?;
    let n: usize = args.next().context("N")?.parse()?;
    let clients = connect_clients(&url, &token, n, Duration::from_secs(60)).await?;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(b"ready\n").await?;
    stdout.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let revision: u64 = line.trim().parse()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let behind = clients
                .iter()
                .filter(|c| c.revision() < Some(revision))
                .count();
            if behind == 0 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{behind} SDK clients behind revision {revision} after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stdout.write_all(b"converged\n").await?;
        stdout.flush().await?;
    }
    for client in &clients {
        client.close().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut raw = std::env::args().skip(1).peekable();
    if raw.peek().map(String::as_str) == Some("--sdk-fleet") {
        raw.next();
        return sdk_fleet(raw).await;
    }
    let Args {
        seconds,
        clients,
        sdk_clients,
        db,
    } = args()?;
    let phase = Duration::from_secs(seconds);

    let dir = tempfile::tempdir()?;
    let mut cfg = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    if let Some(db) = db {
        cfg.db = db;
    }
    cfg.workers = None;
    let server = flag_server::start(&cfg).await?;
    let addr = server.addr;
    let base = format!("http://{addr}");
    println!(
        "server on {base}, db {}, {clients} clients, {seconds} s per phase",
        cfg.db
    );

    let setup = reqwest::Client::new();
    for c in 0..clients {
        let r = setup
            .post(format!("{base}/api/v1/flags"))
            .bearer_auth(ADMIN)
            .json(&json!({"key": format!("bench-{c}"), "kind": "boolean"}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "create: {}", r.status());
    }
    let mut fleet = if sdk_clients > 0 {
        let token = flag_benches::sdk_token(&setup, &base, ADMIN).await?;
        Some(Fleet::start(&base, &token, sdk_clients).await?)
    } else {
        None
    };

    // Phase 1: durable updates. Each client PUTs its own flag with If-Match, back to back.
    let (puts, elapsed) = run_phase(addr, 0..clients, phase, put).await?;
    let storm_ended = Instant::now();
    let title = if sdk_clients == 0 {
        "PUT (durable flag updates)".to_owned()
    } else {
        format!("PUT (durable flag updates, {sdk_clients} SDK clients streaming)")
    };
    report(&title, puts, elapsed);
    let metrics = server.state.metrics.clone();
    let batches = metrics.batch_size.get_sample_count();
    let requests = metrics.batch_size.get_sample_sum();
    println!(
        "  group commit: {batches} commits, {:.1} requests per commit, mean commit {:.3} ms",
        requests / batches.max(1) as f64,
        metrics.write_latency.get_sample_sum() / batches.max(1) as f64 * 1e3
    );
    if let Some(fleet) = &mut fleet {
        let revision = server
            .state
            .snapshots
            .get("production")
            .context("no production snapshot")?
            .revision();
        fleet.converged(revision).await?;
        println!(
            "  all {sdk_clients} SDK clients held revision {revision} {:.1} ms after the storm ended",
            storm_ended.elapsed().as_secs_f64() * 1e3
        );
    }

    // Phase 2: reads of a flag's configuration.
    let (gets, elapsed) = run_phase(addr, 0..clients, phase, get).await?;
    report("GET (flag configuration)", gets, elapsed);

    // Phase 3: one client reading while the others write (reads never wait for writes).
    let writers = tokio::spawn(run_phase(addr, 1..clients, phase, put_any));
    let (reads, elapsed) = run_phase(addr, 0..1, phase, get).await?;
    writers.await??;
    report("GET while writing", reads, elapsed);

    if let Some(fleet) = fleet {
        fleet.stop().await?;
    }
    server.handle.stop(true).await;
    Ok(())
}
