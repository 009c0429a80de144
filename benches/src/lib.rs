//! Shared fixtures for the criterion benches and the load harnesses in `src/bin/`.
//!
//! Everything here builds snapshots in memory; harnesses that need a server start the real
//! `flag-server` in-process on 127.0.0.1 and bound their own counts and durations.

use std::future::Future;
use std::time::{Duration, Instant};

use flag_sdk::{Client, CompiledSnapshot, Context, Snapshot, Status};
use serde_json::{json, Value};

pub mod http;
pub mod load;

/// How many connections the harnesses open at once (inside the server's listen backlog).
pub const CONNECT_BATCH: usize = 250;

/// A boolean flag with `on`/`off` variations, enabled, with `extra` fields merged over it.
pub fn bool_flag(key: &str, extra: Value) -> Value {
    let mut flag = json!({
        "key": key, "kind": "boolean", "version": 1, "enabled": true,
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "off_variation": "off", "fallthrough": {"variation": "off"}
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut flag, extra) {
        a.extend(b);
    }
    flag
}

/// A rollout serving `on` to `percent` of contexts.
pub fn rollout(percent: u32) -> Value {
    json!({"rollout": {"bucket_by": "key", "weights": [
        {"variation": "on", "weight": percent * 1000},
        {"variation": "off", "weight": 100_000 - percent * 1000}]}})
}

/// The bench snapshot: `kill-switch` (off), `plain` (fallthrough to `off`), `plain-on`
/// (fallthrough to `on`), `rollout-10`,
/// `five-rules` (5 rules x 3 clauses with a segment, a semver and a regex; the bench context
/// matches only the last rule), and `filler` flags up to `total` flags.
pub fn bench_snapshot(total: usize) -> CompiledSnapshot {
    let mut flags = vec![
        bool_flag("kill-switch", json!({"enabled": false})),
        bool_flag("plain", json!({})),
        bool_flag("plain-on", json!({"fallthrough": {"variation": "on"}})),
        bool_flag("rollout-10", json!({"fallthrough": rollout(10)})),
        five_rule_flag(),
    ];
    for i in flags.len()..total {
        flags.push(bool_flag(
            &format!("filler-{i:05}"),
            json!({"fallthrough": rollout(50)}),
        ));
    }
    let segment = json!({"key": "beta", "included": ["someone-else"], "excluded": [],
        "rules": [{"clauses": [{"attribute": "plan", "op": "in", "values": ["enterprise", "pro"]}]}]});
    let snapshot: Snapshot = serde_json::from_value(json!({
        "environment": "production", "revision": 1,
        "flags": flags.into_iter().map(|f| (f["key"].as_str().unwrap().to_owned(), f)).collect::<serde_json::Map<_, _>>(),
        "segments": {"beta": segment}
    }))
    .expect("bench snapshot parses");
    flag_sdk::validate::validate_snapshot(&snapshot).expect("bench snapshot is valid");
    CompiledSnapshot::new(snapshot)
}

fn five_rule_flag() -> Value {
    let rule = |i: usize, country: &str| {
        json!({"id": format!("rule-{i}"), "clauses": [
            {"attribute": "country", "op": "in", "values": [country, "BE", "LU"]},
            {"attribute": "", "op": "in_segment", "values": ["beta"]},
            {"attribute": "app_version", "op": "semver_gt", "values": ["2.1.0"]}
        ], "serve": {"variation": "on"}})
    };
    let mut rules: Vec<Value> = (0..4).map(|i| rule(i, &format!("X{i}"))).collect();
    rules.push(json!({"id": "rule-4", "clauses": [
        {"attribute": "email", "op": "matches", "values": ["@(example|corp)\\.com$"]},
        {"attribute": "", "op": "in_segment", "values": ["beta"]},
        {"attribute": "app_version", "op": "semver_gt", "values": ["2.1.0"]}
    ], "serve": {"variation": "on"}}));
    bool_flag("five-rules", json!({"rules": rules}))
}

/// The bench context: matches the last rule of `five-rules`.
pub fn bench_context() -> Context {
    Context::new("user-4f1c2a9e-7d3b-4c21-9a55-0e2b3c4d5e6f")
        .with("country", "NL")
        .with("plan", "pro")
        .with("email", "ann@example.com")
        .with("app_version", "2.4.1")
}

/// Builds `n` SDK clients streaming from `url` (in batches of [`CONNECT_BATCH`]) and waits
/// until every one serves its first snapshot.
pub async fn connect_clients(
    url: &str,
    token: &str,
    n: usize,
    init_timeout: Duration,
) -> anyhow::Result<Vec<Client>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(CONNECT_BATCH) {
        let builds = batch.iter().map(|_| {
            Client::builder(url, token)
                .http_client(http.clone())
                .init_timeout(init_timeout)
                .build()
        });
        for client in join_all(builds).await {
            clients.push(client?);
        }
    }
    let not_ready = clients
        .iter()
        .filter(|c| c.status() != Status::Valid)
        .count();
    anyhow::ensure!(not_ready == 0, "{not_ready} clients not ready");
    eprintln!("{n} SDK clients connected in {:?}", started.elapsed());
    Ok(clients)
}

/// Runs the futures as tasks and collects their outputs in order.
pub async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// Creates an SDK token for `production` on the server at `base` with the admin token
/// `admin`; its secret.
pub async fn sdk_token(http: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<String> {
    let created: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"kind": "sdk", "environment": "production", "name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    created["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the token answer has no `token`"))
}

/// The `q` quantile (0 < q ≤ 1) of sorted durations, by the nearest-rank method.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}
