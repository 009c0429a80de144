//! flag-server under load on loopback: durable flag updates per second with concurrent
//! clients (each `PUT`s its own flag with `If-Match`, as the CLI does), then `GET` latency.
//! The server runs in-process on 127.0.0.1:0 with a fresh database (WAL, `synchronous=FULL`)
//! in the system temp directory; each phase runs for a bounded time.
//!
//! `cargo run --release -p flag-benches --bin server_load -- [SECONDS] [CLIENTS]`
//! (defaults: 5 seconds per phase, 8 clients).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    println!(
        "{name}: {} requests in {:.2} s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let clients: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(8);
    let phase = Duration::from_secs(seconds);

    let dir = tempfile::tempdir()?;
    let mut cfg = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    cfg.workers = None;
    let server = flag_server::start(&cfg).await?;
    let base = format!("http://{}", server.addr);
    println!(
        "server on {base}, db in {}, {clients} clients, {seconds} s per phase",
        dir.path().display()
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

    // Phase 1: durable updates. Each client PUTs its own flag with If-Match, back to back.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let key = format!("bench-{c}");
            let url = format!("{base}/api/v1/flags/{key}/environments/production");
            let mut latencies = Vec::new();
            let mut version = 1u64;
            while start.elapsed() < phase {
                let t = Instant::now();
                let r = client
                    .put(&url)
                    .bearer_auth(ADMIN)
                    .header("If-Match", format!("\"{version}\""))
                    .json(&config(&key, version))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "put: {}", r.status());
                r.bytes().await?;
                latencies.push(t.elapsed());
                version += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut puts = Vec::new();
    for t in tasks {
        puts.extend(t.await??);
    }
    let elapsed = start.elapsed();
    report("PUT (durable flag updates)", puts, elapsed);
    let metrics = server.state.metrics.clone();
    let batches = metrics.batch_size.get_sample_count();
    let requests = metrics.batch_size.get_sample_sum();
    println!(
        "  group commit: {batches} commits, {:.1} requests per commit, mean commit {:.3} ms",
        requests / batches.max(1) as f64,
        metrics.write_latency.get_sample_sum() / batches.max(1) as f64 * 1e3
    );

    // Phase 2: reads of a flag's configuration.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let url = format!("{base}/api/v1/flags/bench-{c}/environments/production");
            let mut latencies = Vec::new();
            while start.elapsed() < phase {
                let t = Instant::now();
                let r = client.get(&url).bearer_auth(ADMIN).send().await?;
                anyhow::ensure!(r.status() == 200, "get: {}", r.status());
                r.bytes().await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut gets = Vec::new();
    for t in tasks {
        gets.extend(t.await??);
    }
    report("GET (flag configuration)", gets, start.elapsed());

    // Phase 3: one client reading while the others write (reads never wait for writes).
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 1..clients {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let key = format!("bench-{c}");
            let url = format!("{base}/api/v1/flags/{key}/environments/production");
            while start.elapsed() < phase {
                let r = client
                    .put(&url)
                    .bearer_auth(ADMIN)
                    .json(&config(&key, 0))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "put: {}", r.status());
                r.bytes().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/flags/bench-0/environments/production");
    let mut reads = Vec::new();
    while start.elapsed() < phase {
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(ADMIN).send().await?;
        anyhow::ensure!(r.status() == 200, "get: {}", r.status());
        r.bytes().await?;
        reads.push(t.elapsed());
    }
    for t in tasks {
        t.await??;
    }
    report("GET while writing", reads, start.elapsed());

    server.handle.stop(true).await;
    Ok(())
}
