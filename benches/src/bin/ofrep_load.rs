//! OFREP under load on loopback: single-flag evaluations per second and their latency, bulk
//! evaluations of 100 flags, bulk `304`s, and how long after a kill's commit the change
//! notification reaches a connected event stream. The server runs in-process on 127.0.0.1:0
//! with a fresh database; its per-token rate limit is set out of the way (the limiter still
//! runs on every request). The load clients use the harness's minimal keep-alive HTTP/1.1
//! client ([`flag_benches::http`]) on one thread (a current-thread runtime), so they take as
//! little as possible of the cores they share with the server: with two load threads on a
//! 2-core machine, four busy threads take turns on two cores and the p99 measures the
//! scheduler's time slices rather than the server.
//!
//! ```text
//! cargo run --release -p flag-benches --bin ofrep_load -- [SECONDS] [CLIENTS] [--kills N]
//! ```
//!
//! Defaults: 5 seconds per phase, 8 clients, 50 kills. Every phase is bounded in time; the
//! kill phase by its count and a 5 s wait per notification.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use flag_benches::http::Connection;
use flag_benches::load::{percentile, report, run_phase};
use futures_util::StreamExt;
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token";
/// Flags in the environment: what a bulk evaluation answers.
const FLAGS: usize = 100;

/// Flag `key`: a target, a rule on `country`, a 25% rollout for the rest.
fn config(key: &str) -> Value {
    json!({
        "key": key, "kind": "boolean",
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "enabled": true, "off_variation": "off",
        "targets": [{"variation": "on", "keys": ["user-1"]}],
        "rules": [{"id": "benelux",
                   "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
                   "serve": {"variation": "on"}}],
        "fallthrough": {"rollout": {"bucket_by": "key",
            "weights": [{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}
    })
}

fn context(n: u64) -> Vec<u8> {
    json!({"context": {"targetingKey": format!("user-{n}"), "country": "DE", "plan": "pro",
                       "app_version": "4.2.0"}})
    .to_string()
    .into_bytes()
}

/// The SDK token every load client presents (set once before the phases).
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
/// The bulk body of phase 3 and its `ETag`.
static CACHED: std::sync::OnceLock<(Vec<u8>, String)> = std::sync::OnceLock::new();

fn auth() -> String {
    format!("Bearer {}", TOKEN.get().map_or("", String::as_str))
}

async fn single(c: usize, n: u64, mut connection: Connection) -> anyhow::Result<Connection> {
    let path = format!("/ofrep/v1/evaluate/flags/flag-{}", (n as usize + c) % FLAGS);
    let auth = auth();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = connection
        .send("POST", &path, &headers, &context(n * 64 + c as u64))
        .await?;
    anyhow::ensure!(r.status == 200, "single: {}", r.status);
    Ok(connection)
}

async fn bulk(c: usize, n: u64, mut connection: Connection) -> anyhow::Result<Connection> {
    let auth = auth();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = connection
        .send(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &headers,
            &context(n * 64 + c as u64),
        )
        .await?;
    anyhow::ensure!(r.status == 200, "bulk: {}", r.status);
    Ok(connection)
}

async fn not_modified(_: usize, _: u64, mut connection: Connection) -> anyhow::Result<Connection> {
    let (body, etag) = CACHED.get().context("no cached bulk")?;
    let auth = auth();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("If-None-Match", etag.as_str()),
    ];
    let r = connection
        .send("POST", "/ofrep/v1/evaluate/flags", &headers, body)
        .await?;
    anyhow::ensure!(r.status == 304, "304 expected: {}", r.status);
    Ok(connection)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut seconds = 5;
    let mut clients = 8;
    let mut kills = 50;
    let mut positional = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kills" => kills = args.next().context("--kills N")?.parse()?,
            value => {
                match positional {
                    0 => seconds = value.parse().context("SECONDS")?,
                    1 => clients = value.parse().context("CLIENTS")?,
                    _ => anyhow::bail!("unexpected argument {value:?}"),
                }
                positional += 1;
            }
        }
    }
    let phase = Duration::from_secs(seconds);

    let dir = tempfile::tempdir()?;
    let mut cfg = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    cfg.workers = None;
    cfg.ofrep_rate_limit = 1_000_000_000;
    let server = flag_server::start(&cfg).await?;
    let addr = server.addr;
    let base = format!("http://{addr}");
    println!("server on {base}, {FLAGS} flags, {clients} clients, {seconds} s per phase");

    let setup = reqwest::Client::new();
    for i in 0..FLAGS {
        let key = format!("flag-{i}");
        let r = setup
            .post(format!("{base}/api/v1/flags"))
            .bearer_auth(ADMIN)
            .json(&json!({"key": key, "kind": "boolean"}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "create: {}", r.status());
        let r = setup
            .put(format!("{base}/api/v1/flags/{key}/environments/production"))
            .bearer_auth(ADMIN)
            .json(&config(&key))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "configure: {}", r.status());
    }
    let token = flag_benches::sdk_token(&setup, &base, ADMIN).await?;
    TOKEN.set(token.clone()).ok();

    let (latencies, elapsed) = run_phase(addr, 0..clients, phase, single).await?;
    report("single-flag OFREP evaluation", latencies, elapsed);
    let (latencies, elapsed) = run_phase(addr, 0..clients, phase, bulk).await?;
    report(
        &format!("bulk OFREP evaluation of {FLAGS} flags"),
        latencies,
        elapsed,
    );

    let body = context(7);
    let first = setup
        .post(format!("{base}/ofrep/v1/evaluate/flags"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await?;
    let etag = first.headers()["etag"].to_str()?.to_owned();
    let answer: Value = first.json().await?;
    let url = answer["eventStreams"][0]["url"]
        .as_str()
        .context("no event stream")?
        .to_owned();
    CACHED.set((body, etag)).ok();
    let (latencies, elapsed) = run_phase(addr, 0..clients, phase, not_modified).await?;
    report("bulk 304 (unchanged)", latencies, elapsed);

    // Change notification: a kill (or restore) through the API, then the refetch event on
    // an open stream. Timed from the kill's answer (after its commit) and from its request.
    let mut events = setup.get(&url).send().await?.bytes_stream();
    let mut after_commit = Vec::new();
    let mut after_request = Vec::new();
    for i in 0..kills {
        let action = if i % 2 == 0 { "kill" } else { "restore" };
        let sent = Instant::now();
        let r = setup
            .post(format!(
                "{base}/api/v1/flags/flag-0/environments/production/{action}"
            ))
            .bearer_auth(ADMIN)
            .json(&json!({"reason": "bench"}))
            .send()
            .await?;
        let committed = Instant::now();
        anyhow::ensure!(r.status() == 200, "{action}: {}", r.status());
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .context("no refetch event within 5 s")?
                .context("the stream ended")??;
            if String::from_utf8_lossy(&chunk).contains("refetchEvaluation") {
                break;
            }
        }
        after_commit.push(committed.elapsed());
        after_request.push(sent.elapsed());
    }
    after_commit.sort();
    after_request.sort();
    if kills > 0 {
        println!(
            "refetch event after {kills} kills/restores: from the answer p50 {:.3} ms, p99 {:.3} ms; \
             from the request p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            percentile(&after_commit, 0.5).as_secs_f64() * 1e3,
            percentile(&after_commit, 0.99).as_secs_f64() * 1e3,
            percentile(&after_request, 0.5).as_secs_f64() * 1e3,
            percentile(&after_request, 0.99).as_secs_f64() * 1e3,
            after_request.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
    server.handle.stop(true).await;
    Ok(())
}
