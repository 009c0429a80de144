//! `GET /api/v1/flags` at 10,000 flags on loopback: the first page of 50 with filters, the
//! first page without, a search, and the whole list. The server runs in-process on
//! 127.0.0.1:0 with a fresh SQLite database and two environments; every 10th flag is tagged
//! `payments`, every 5th is on in production. One client asks back to back for a bounded
//! time per query (latency as a console or script sees it, one request at a time).
//!
//! ```text
//! cargo run --release -p flag-benches --bin flag_list -- [FLAGS] [SECONDS]
//! ```
//!
//! Defaults: 10,000 flags, 3 seconds per query.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use flag_benches::http::Connection;
use flag_benches::join_all;
use flag_benches::load::report;
use serde_json::json;

const ADMIN: &str = "bench-admin-token";

/// Set-up requests in flight at once.
const SETUP_CONCURRENCY: usize = 32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let flags: usize = args
        .next()
        .map_or(Ok(10_000), |a| a.parse())
        .context("FLAGS")?;
    let seconds: u64 = args
        .next()
        .map_or(Ok(3), |a| a.parse())
        .context("SECONDS")?;

    let dir = tempfile::tempdir()?;
    let mut cfg = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    cfg.workers = None;
    let server = flag_server::start(&cfg).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    anyhow::ensure!(
        post("/api/v1/environments", json!({"key": "staging"}))
            .await?
            .status()
            == 201
    );
    for chunk in (0..flags).collect::<Vec<_>>().chunks(SETUP_CONCURRENCY) {
        let created = join_all(chunk.iter().map(|&i| {
            let tags = if i % 10 == 0 {
                vec!["payments"]
            } else {
                vec![]
            };
            post(
                "/api/v1/flags",
                json!({"key": format!("flag-{i:05}"), "kind": "boolean",
                       "name": format!("Flag number {i}"), "tags": tags}),
            )
        }))
        .await;
        for r in created {
            anyhow::ensure!(r?.status() == 201, "create failed");
        }
        let on = chunk.iter().filter(|&&i| i % 5 == 0).map(|&i| {
            let key = format!("flag-{i:05}");
            let mut config = flag_benches::bool_flag(&key, json!({}));
            config["fallthrough"] = json!({"variation": "on"});
            config["off_variation"] = json!("off");
            http.put(format!("{base}/api/v1/flags/{key}/environments/production"))
                .bearer_auth(ADMIN)
                .json(&config)
                .send()
        });
        for r in join_all(on).await {
            anyhow::ensure!(r?.status() == 200, "turning on failed");
        }
    }
    println!(
        "{flags} flags in 2 environments set up in {:.1} s; {seconds} s per query",
        started.elapsed().as_secs_f64()
    );

    let queries = [
        (
            "first page of 50, tag=payments&state=on&environment=production",
            "/api/v1/flags?limit=50&tag=payments&state=on&environment=production",
        ),
        ("first page of 50, no filter", "/api/v1/flags?limit=50"),
        (
            "first page of 50, q=number 99 (search by name)",
            "/api/v1/flags?limit=50&q=number%2099",
        ),
        ("every flag (no limit)", "/api/v1/flags"),
    ];
    let auth = format!("Bearer {ADMIN}");
    let mut connection = Connection::open(server.addr).await?;
    for (name, path) in queries {
        let phase = Duration::from_secs(seconds);
        let begin = Instant::now();
        let mut latencies = Vec::new();
        let mut bytes = 0;
        while begin.elapsed() < phase {
            let t = Instant::now();
            let res = connection
                .send("GET", path, &[("Authorization", &auth)], b"")
                .await?;
            latencies.push(t.elapsed());
            anyhow::ensure!(res.status == 200, "{path}: {}", res.status);
            bytes = res.body.len();
        }
        report(
            &format!("{name} ({bytes} bytes)"),
            latencies,
            begin.elapsed(),
        );
    }
    server.handle.stop(true).await;
    Ok(())
}
