//! Kill-switch propagation: how long from the kill API's answer until every SDK client
//! serves the new value, and what an idle SDK subscriber costs the server.
//!
//! ```text
//! cargo run --release -p flag-benches --bin propagation -- [--clients 1000] [--kills 20]
//! cargo run --release -p flag-benches --bin propagation -- --idle 10000 [--kills 10] [--raw]
//!     [--flags 1000]
//! cargo run --release -p flag-benches --bin propagation -- --db postgres://... --replicas 3
//!     [--clients 1000] [--kills 20] [--restart]
//! ```
//!
//! Default mode: one process holds the real `flag-server` (in-process, 127.0.0.1:0, temp
//! SQLite) and N `flag_sdk::Client`s streaming from it. Each round kills or restores one flag
//! and waits, on every client's change subscription, until all N have swapped in the new
//! snapshot; the round's time is the last client's swap minus the moment the API answered
//! (a client may swap before the answer arrives: the stream is published right after COMMIT).
//!
//! `--db postgres://... --replicas R`: R replicas in this process on that (empty) PostgreSQL
//! database; the clients are spread over them in turn and every kill goes through the first,
//! so a round is the time until the change reached every replica's SDKs through the change
//! log. With `--restart`, the last replica is then stopped, a few changes are made through the
//! first while it is down, and it is started again on the same address: the harness reports
//! how long until all of its clients hold the last change, and checks that every client of
//! every replica is at the same revision (none missed a change).
//!
//! `--idle N`: the server runs in this process; the N clients run in a child process (this
//! binary with `--child`), so this process's RSS growth (`VmRSS` in /proc/self/status) while
//! they connect is the server's memory per subscriber. The child then times K kills as above.
//! Needs ~N+100 file descriptors per process (`ulimit -n`). With `--raw` the child holds bare
//! SSE readers instead of SDK clients, so the time measured is the server's fan-out and the
//! loopback, not 10,000 SDKs parsing and recompiling on the same two cores. `--flags N` first
//! fills the environment with N more flags (each with a 50% rollout), so the `put` every
//! subscriber is sent at connection grows with N; `--kills 0` measures memory only.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use flag_benches::{connect_clients, join_all, rollout, CONNECT_BATCH};
use flag_sdk::{Client, Context};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const ADMIN: &str = "propagation-bench-admin";
const FLAG: &str = "kill-switch";
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    clients: usize,
    kills: usize,
    idle: Option<usize>,
    raw: bool,
    flags: usize,
    child: Option<(String, String)>,
    db: Option<String>,
    replicas: usize,
    restart: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        clients: 1000,
        kills: 20,
        idle: None,
        raw: false,
        flags: 0,
        child: None,
        db: None,
        replicas: 1,
        restart: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("missing value");
        match arg.as_str() {
            "--clients" => args.clients = value()?.parse()?,
            "--kills" => args.kills = value()?.parse()?,
            "--idle" => args.idle = Some(value()?.parse()?),
            "--child" => args.child = Some((value()?, value()?)),
            "--raw" => args.raw = true,
            "--flags" => args.flags = value()?.parse()?,
            "--db" => args.db = Some(value()?),
            "--replicas" => args.replicas = value()?.parse()?,
            "--restart" => args.restart = true,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    if let Some((url, token)) = &args.child {
        return child(url, token, args.clients, args.kills, args.raw).await;
    }
    let dir = tempfile::tempdir()?;
    let db: flag_server::store::Location = match &args.db {
        Some(url) => url.parse()?,
        None => dir.path().join("flags.db").into(),
    };
    if args.replicas > 1 && !matches!(db, flag_server::store::Location::Postgres(_)) {
        bail!("--replicas needs --db postgres://... (replicas share one PostgreSQL database)");
    }
    let mut config = flag_server::Config::ephemeral(db, ADMIN);
    config.workers = Some(2);
    let server = flag_server::start(&config).await?;
    let url = format!("http://{}", server.addr);
    let api = Api::new(&url);
    api.call(
        reqwest::Method::POST,
        "/api/v1/flags",
        json!({"key": FLAG, "kind": "boolean"}),
    )
    .await?;
    api.call(
        reqwest::Method::PUT,
        &format!("/api/v1/flags/{FLAG}/environments/production"),
        json!({"key": FLAG, "kind": "boolean", "enabled": true,
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "off_variation": "off", "fallthrough": {"variation": "on"}}),
    )
    .await?;
    fill(&api, args.flags).await?;
    let token = api
        .call(
            reqwest::Method::POST,
            "/api/v1/tokens",
            json!({"kind": "sdk", "environment": "production", "name": "bench"}),
        )
        .await?["token"]
        .as_str()
        .context("no token")?
        .to_owned();

    if args.replicas > 1 {
        return replicas(server, &config, &token, &args).await;
    }
    match args.idle {
        None => {
            println!(
                "propagation: {} SDK clients in-process, {} kills, server with 2 workers",
                args.clients, args.kills
            );
            let clients = connect_clients(&url, &token, args.clients, ROUND_TIMEOUT).await?;
            let rounds = kill_rounds(&api, &clients, args.kills).await?;
            report(&rounds);
        }
        Some(n) => idle(&server, &url, &token, n, args.kills, args.raw).await?,
    }
    server.state.broadcaster.shutdown();
    server.handle.stop(false).await;
    Ok(())
}

/// `--replicas`: `first` and R-1 more replicas on the same database, the clients spread over
/// them, every kill through `first`; then, with `--restart`, the last replica restarted.
async fn replicas(
    first: flag_server::Running,
    config: &flag_server::Config,
    token: &str,
    args: &Args,
) -> anyhow::Result<()> {
    let mut servers = vec![first];
    for _ in 1..args.replicas {
        servers.push(flag_server::start(config).await?);
    }
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    let per = args.clients / urls.len();
    let mut groups = Vec::new();
    for url in &urls {
        // The token was made through the first replica: wait until this one knows it.
        let deadline = Instant::now() + ROUND_TIMEOUT;
        loop {
            let r = reqwest::Client::new()
                .get(format!("{url}/sdk/v1/snapshot"))
                .bearer_auth(token)
                .send()
                .await?;
            if r.status().is_success() {
                break;
            }
            if Instant::now() > deadline {
                bail!("{url} never accepted the token");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        groups.push(connect_clients(url, token, per, ROUND_TIMEOUT).await?);
    }
    println!(
        "propagation: {} SDK clients over {} replicas on PostgreSQL ({per} each), {} kills \
         through the first",
        per * urls.len(),
        urls.len(),
        args.kills
    );
    let api = Api::new(&urls[0]);
    let all: Vec<Client> = groups.iter().flatten().cloned().collect();
    let rounds = kill_rounds(&api, &all, args.kills).await?;
    report(&rounds);
    if args.restart {
        let last = servers.pop().context("a replica to restart")?;
        let addr = last.addr;
        last.state.broadcaster.shutdown();
        last.handle.stop(false).await;
        // Changes while it is down; the last one leaves the flag killed.
        for action in ["kill", "restore", "kill", "restore", "kill"] {
            api.call(
                reqwest::Method::POST,
                &format!("/api/v1/flags/{FLAG}/environments/production/{action}"),
                json!({"reason": "propagation bench: while a replica is down"}),
            )
            .await?;
        }
        let mut restarted = config.clone();
        restarted.listen = addr;
        let stopped = Instant::now();
        servers.push(flag_server::start(&restarted).await?);
        let started = Instant::now();
        let ctx = Context::new("user-1");
        let moved = groups.last().context("clients of the restarted replica")?;
        while moved.iter().any(|c| c.bool_variation(FLAG, &ctx, true)) {
            if started.elapsed() > ROUND_TIMEOUT {
                bail!("the restarted replica's clients never caught up");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let revision = servers[0]
            .state
            .snapshots
            .get("production")
            .map(|s| s.revision());
        let behind = all.iter().filter(|c| c.revision() != revision).count();
        println!(
            "restart: {} clients of the restarted replica hold the last of 5 changes made while \
             it was down {:.0} ms after it started ({:.0} ms after the restart began); clients \
             not at revision {revision:?}: {behind}",
            moved.len(),
            started.elapsed().as_secs_f64() * 1000.0,
            stopped.elapsed().as_secs_f64() * 1000.0,
        );
        if behind > 0 {
            bail!("{behind} clients missed a change");
        }
    }
    for server in servers {
        server.state.broadcaster.shutdown();
        server.handle.stop(false).await;
    }
    Ok(())
}

/// Creates `n` filler flags in `production`, a few requests at a time.
async fn fill(api: &Api, n: usize) -> anyhow::Result<()> {
    const AT_ONCE: usize = 16;
    let started = Instant::now();
    for batch in (0..n).collect::<Vec<_>>().chunks(AT_ONCE) {
        let creates = batch.iter().map(|&i| {
            let api = api.clone();
            async move {
                let key = format!("filler-{i:05}");
                let create = json!({"key": key, "kind": "boolean"});
                api.call(reqwest::Method::POST, "/api/v1/flags", create)
                    .await?;
                let mut config = flag_benches::bool_flag(&key, json!({"fallthrough": rollout(50)}));
                config.as_object_mut().map(|c| c.remove("version"));
                let path = format!("/api/v1/flags/{key}/environments/production");
                api.call(reqwest::Method::PUT, &path, config).await
            }
        });
        for created in join_all(creates).await {
            created?;
        }
    }
    if n > 0 {
        eprintln!("{n} filler flags created in {:?}", started.elapsed());
    }
    Ok(())
}

/// The server side of `--idle`: RSS before and after N subscribers connect.
async fn idle(
    server: &flag_server::Running,
    url: &str,
    token: &str,
    n: usize,
    kills: usize,
    raw: bool,
) -> anyhow::Result<()> {
    // Warm up: one subscriber, so per-environment state and the encoded put exist.
    let warm = connect_clients(url, token, 1, ROUND_TIMEOUT).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let put = reqwest::Client::new()
        .get(format!("{url}/sdk/v1/snapshot"))
        .bearer_auth(token)
        .send()
        .await?
        .bytes()
        .await?;
    let flags = serde_json::from_slice::<Value>(&put)?["flags"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    let before = rss_kib()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--child", url, token, "--clients", &n.to_string()])
        .args(["--kills", &kills.to_string()])
        .args(raw.then_some("--raw"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut stdin = child.stdin.take().context("no stdin")?;
    let ready = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        (line, lines)
    });
    let (line, lines) = ready.await?;
    let line = line.context("child ended")??;
    if line != "ready" {
        bail!("child said {line}");
    }
    let deadline = Instant::now() + ROUND_TIMEOUT;
    while server.state.broadcaster.subscribers("production") < n + 1 {
        if Instant::now() > deadline {
            bail!(
                "only {} subscribers",
                server.state.broadcaster.subscribers("production")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib()?;
    let what = if raw {
        "raw SSE readers"
    } else {
        "SDK clients"
    };
    println!("idle: {n} {what} in a child process, one in-process server (2 workers)");
    println!(
        "environment: {} flags, snapshot (the `put`) {:.1} KiB",
        flags,
        put.len() as f64 / 1024.0
    );
    println!(
        "server RSS {before} KiB -> {after} KiB: {:.2} KiB per idle subscriber",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    writeln!(stdin, "go")?;
    let echoed = tokio::task::spawn_blocking(move || {
        for line in lines.map_while(Result::ok) {
            println!("{line}");
        }
    });
    echoed.await?;
    child.wait()?;
    drop(warm);
    Ok(())
}

/// The child of `--idle`: N clients, "ready", wait for "go", K kill rounds, report.
async fn child(url: &str, token: &str, n: usize, kills: usize, raw: bool) -> anyhow::Result<()> {
    let api = Api::new(url);
    if raw {
        let (tx, rx) = mpsc::unbounded_channel();
        let addr = url.trim_start_matches("http://").to_owned();
        for batch in (0..n).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
            let opened = batch
                .iter()
                .map(|_| raw_reader(addr.clone(), token.to_owned(), tx.clone()));
            for reader in join_all(opened).await {
                reader?;
            }
        }
        println!("ready");
        std::io::stdout().flush()?;
        std::io::stdin().read_line(&mut String::new())?;
        let rounds = rounds(&api, n, kills, rx, |_| Ok(())).await?;
        report(&rounds);
        return Ok(());
    }
    let clients = connect_clients(url, token, n, ROUND_TIMEOUT).await?;
    println!("ready");
    std::io::stdout().flush()?;
    std::io::stdin().read_line(&mut String::new())?;
    let rounds = kill_rounds(&api, &clients, kills).await?;
    report(&rounds);
    Ok(())
}

/// A bare SSE subscriber: reports the instant it reads each `patch` event.
async fn raw_reader(
    addr: String,
    token: String,
    seen: mpsc::UnboundedSender<Instant>,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(&addr).await?;
    let request = format!(
        "GET /sdk/v1/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut first = vec![0u8; 4096];
    let k = socket.read(&mut first).await?;
    if !first[..k].starts_with(b"HTTP/1.1 200") {
        bail!(
            "stream refused: {}",
            String::from_utf8_lossy(&first[..k.min(80)])
        );
    }
    tokio::spawn(async move {
        let needle = b"event: patch";
        let mut buf = vec![0u8; 4096];
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let k = match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(k) => k,
            };
            let now = Instant::now();
            tail.extend_from_slice(&buf[..k]);
            let hits = tail.windows(needle.len()).filter(|w| w == needle).count();
            for _ in 0..hits {
                let _ = seen.send(now);
            }
            let keep = tail.len().min(needle.len() - 1);
            tail.drain(..tail.len() - keep);
        }
    });
    Ok(())
}

/// One kill or restore per round; the time until every client swapped in the change.
async fn kill_rounds(
    api: &Api,
    clients: &[Client],
    kills: usize,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    for client in clients {
        let mut changes = client.subscribe();
        let tx = tx.clone();
        tokio::spawn(async move {
            while changes.recv().await.is_ok() {
                if tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
    }
    let ctx = Context::new("user-1");
    rounds(api, clients.len(), kills, rx, |killing| {
        let wrong = clients
            .iter()
            .filter(|c| c.bool_variation(FLAG, &ctx, killing) == killing)
            .count();
        if wrong > 0 {
            bail!("{wrong} clients serve the old value");
        }
        Ok(())
    })
    .await
}

/// Kills and restores in turn; each round waits for `n` sightings of the change on `seen`.
async fn rounds(
    api: &Api,
    n: usize,
    kills: usize,
    mut seen: mpsc::UnboundedReceiver<Instant>,
    check: impl Fn(bool) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let mut rounds = Vec::with_capacity(kills);
    for round in 0..kills {
        let killing = round % 2 == 0;
        let action = if killing { "kill" } else { "restore" };
        let sent = Instant::now();
        api.call(
            reqwest::Method::POST,
            &format!("/api/v1/flags/{FLAG}/environments/production/{action}"),
            json!({"reason": "propagation bench"}),
        )
        .await?;
        let answered = Instant::now();
        let mut last = answered;
        for _ in 0..n {
            let at = tokio::time::timeout(ROUND_TIMEOUT, seen.recv())
                .await
                .context("a client never saw the change")?
                .context("watchers gone")?;
            last = last.max(at);
        }
        check(killing)?;
        rounds.push((last - answered, last - sent));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(rounds)
}

fn report(rounds: &[(Duration, Duration)]) {
    if rounds.is_empty() {
        return;
    }
    let line = |what: &str, mut sorted: Vec<Duration>| {
        sorted.sort();
        let pick = |q: f64| flag_benches::quantile(&sorted, q);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{what}, {} rounds: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            sorted.len(),
            ms(pick(0.50)),
            ms(pick(0.99)),
            ms(sorted[sorted.len() - 1]),
        );
    };
    line(
        "kill API answer -> every client serves the new value",
        rounds.iter().map(|r| r.0).collect(),
    );
    line(
        "kill request sent -> every client serves the new value",
        rounds.iter().map(|r| r.1).collect(),
    );
}

fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("bad VmRSS")?
        .parse()?)
}

#[derive(Clone)]
struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    fn new(url: &str) -> Api {
        Api {
            url: url.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
