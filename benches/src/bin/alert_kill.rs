//! Alert received → SDKs have the kill: how long from Alertmanager's notification reaching
//! the server until every SDK client serves the killed flag (and, with `on_resolved:
//! restore`, from the resolution until every client serves it again).
//!
//! ```text
//! cargo run --release -p flag-benches --bin alert_kill -- [--clients 1000] [--rounds 20]
//! ```
//!
//! One process holds the real `flag-server` (in-process, 127.0.0.1:0, temp SQLite, 2
//! workers), a binding `{"alertname": "CheckoutErrors"} → kill new-checkout in production,
//! on_resolved: restore`, an integration token, and N `flag_sdk::Client`s streaming from it.
//! Each round posts Alertmanager's webhook payload (version 4) for a new occurrence of the
//! alert (a new `startsAt`) to `POST /api/v1/integrations/alertmanager`, exactly as
//! Alertmanager's webhook receiver does, and waits on every client's change subscription
//! until all N have swapped in the killed flag; then it posts the resolution and waits for
//! the restore. A round's time starts when the request is sent, so it counts parsing,
//! matching the binding, the occurrence row, the kill's group commit and the fan-out.
//! Alertmanager's own `group_wait` comes on top (it is its configuration, not ours).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use flag_benches::{bool_flag, connect_clients, quantile, sdk_token};
use flag_sdk::{Client, Context};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const ADMIN: &str = "alert-bench-admin";
const FLAG: &str = "new-checkout";
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

fn args() -> anyhow::Result<(usize, usize)> {
    let (mut clients, mut rounds) = (1000, 20);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().context("missing value");
        match arg.as_str() {
            "--clients" => clients = value()?.parse()?,
            "--rounds" => rounds = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok((clients, rounds))
}

/// Alertmanager's notification (payload version 4) of `CheckoutErrors`, occurrence `round`.
fn notification(status: &str, round: usize) -> Value {
    let starts_at = format!("2026-12-01T{:02}:{:02}:00Z", round / 60 % 24, round % 60);
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"CheckoutErrors\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "flags",
        "groupLabels": {"alertname": "CheckoutErrors"},
        "commonLabels": {"alertname": "CheckoutErrors", "severity": "page"},
        "commonAnnotations": {"summary": "checkout errors above 5%"},
        "externalURL": "http://alertmanager.bench:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "CheckoutErrors", "severity": "page"},
            "annotations": {"summary": "checkout errors above 5%"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.bench:9090/graph?g0.expr=checkout_errors",
            "fingerprint": "5f3b2a1c0d9e8f7a",
        }]
    })
}

async fn call(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let r = http.post(url).bearer_auth(token).json(body).send().await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (n, rounds) = args()?;
    let dir = tempfile::tempdir()?;
    let mut config = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    config.workers = Some(2);
    let server = flag_server::start(&config).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{base}{path}");
    call(
        &http,
        api("/api/v1/flags"),
        ADMIN,
        &json!({"key": FLAG, "kind": "boolean"}),
    )
    .await?;
    http.put(api(&format!(
        "/api/v1/flags/{FLAG}/environments/production"
    )))
    .bearer_auth(ADMIN)
    .json(&bool_flag(
        FLAG,
        json!({"fallthrough": {"variation": "on"}}),
    ))
    .send()
    .await?
    .error_for_status()?;
    call(
        &http,
        api("/api/v1/integrations/alertmanager/bindings"),
        ADMIN,
        &json!({"matchers": {"alertname": "CheckoutErrors"}, "flag": FLAG,
                "environment": "production", "action": "kill", "on_resolved": "restore"}),
    )
    .await?;
    let integration = call(
        &http,
        api("/api/v1/tokens"),
        ADMIN,
        &json!({"kind": "integration", "name": "alertmanager"}),
    )
    .await?["token"]
        .as_str()
        .context("no token")?
        .to_owned();
    let token = sdk_token(&http, &base, ADMIN).await?;
    println!(
        "alert_kill: {n} SDK clients in-process, {rounds} alert occurrences, server with 2 workers"
    );
    let clients = connect_clients(&base, &token, n, ROUND_TIMEOUT).await?;

    let (tx, mut seen) = mpsc::unbounded_channel::<Instant>();
    for client in &clients {
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
    let webhook = api("/api/v1/integrations/alertmanager");
    let (mut kills, mut restores) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (status, times) in [("firing", &mut kills), ("resolved", &mut restores)] {
            let sent = Instant::now();
            let receipt = call(
                &http,
                webhook.clone(),
                &integration,
                &notification(status, round),
            )
            .await?;
            let outcome = &receipt["actions"][0]["outcome"];
            if outcome != "acted" && outcome != "restored" {
                bail!("round {round}: the {status} alert did not act: {receipt}");
            }
            let mut last = sent;
            for _ in 0..n {
                let at = tokio::time::timeout(ROUND_TIMEOUT, seen.recv())
                    .await
                    .context("a client never saw the change")?
                    .context("watchers gone")?;
                last = last.max(at);
            }
            check(&clients, status == "firing")?;
            times.push(last - sent);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    report(
        "alert firing received -> every client serves the kill",
        kills,
    );
    report(
        "alert resolved received -> every client serves the restore",
        restores,
    );
    server.state.broadcaster.shutdown();
    server.handle.stop(false).await;
    Ok(())
}

fn check(clients: &[Client], killed: bool) -> anyhow::Result<()> {
    let ctx = Context::new("user-1");
    let wrong = clients
        .iter()
        .filter(|c| c.bool_variation(FLAG, &ctx, killed) == killed)
        .count();
    if wrong > 0 {
        bail!("{wrong} clients serve the old value");
    }
    Ok(())
}

fn report(what: &str, mut times: Vec<Duration>) {
    if times.is_empty() {
        return;
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}, {} rounds: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        ms(quantile(&times, 0.50)),
        ms(quantile(&times, 0.99)),
        ms(times[times.len() - 1]),
    );
}
