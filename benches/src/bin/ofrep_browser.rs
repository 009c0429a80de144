//! Kill → a browser's OpenFeature provider sees it: Debian's `chromium`, headless, runs the
//! browser test's page (`@openfeature/web-sdk` with `@openfeature/ofrep-web-provider`, from
//! `.ci/ofrep-clients.sh`) against the real server in-process on 127.0.0.1; the harness kills
//! and restores a flag through the API, alternately, and times each change from the request
//! to the page's report of the new value. That includes the durable commit, the event stream,
//! the provider's 50 ms debounce, its bulk re-fetch, and the report back over loopback.
//!
//! ```text
//! cargo run --release -p flag-benches --bin ofrep_browser -- [CHANGES]
//! ```
//!
//! Default: 40 changes, each waited for at most 10 s.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use flag_benches::load::percentile;
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[path = "../../../flag-server/tests/common/page.rs"]
mod page;

const ADMIN: &str = "bench-admin-token";
const PAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../flag-server/tests/ofrep_clients/page.html"
);

async fn report(reports: &mut mpsc::Receiver<Value>) -> anyhow::Result<Value> {
    let report = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .context("the page did not report within 10 s")?
        .context("the page server stopped")?;
    anyhow::ensure!(report["event"] != "error", "the page failed: {report}");
    Ok(report)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let changes: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(40);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let modules = target.join("ofrep-web/node_modules");
    anyhow::ensure!(
        modules.join("@openfeature/ofrep-web-provider").exists(),
        "{} is missing: run `bash .ci/ofrep-clients.sh`",
        modules.display()
    );

    let dir = tempfile::tempdir()?;
    let mut cfg = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    cfg.workers = None;
    let server = flag_server::start(&cfg).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let call = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let config = "/api/v1/flags/banner/environments/production";
    anyhow::ensure!(
        call("/api/v1/flags", json!({"key": "banner", "kind": "boolean"}))
            .await?
            .status()
            == 201
    );
    let mut flag: Value = http
        .get(format!("{base}{config}"))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .json()
        .await?;
    flag["enabled"] = json!(true);
    flag["fallthrough"] = json!({"variation": "on"});
    let r = http
        .put(format!("{base}{config}"))
        .bearer_auth(ADMIN)
        .json(&flag)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "configure: {}", r.status());

    let (origin, mut reports) = page::page_server(PathBuf::from(PAGE), modules).await;
    let token: Value = call(
        "/api/v1/tokens",
        json!({"kind": "client", "environment": "production", "name": "bench", "origins": [origin]}),
    )
    .await?
    .json()
    .await?;
    let token = token["token"].as_str().context("no token")?;
    let profile = tempfile::tempdir()?;
    let mut browser = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args(["--no-first-run", "--no-default-browser-check"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{origin}/?base={base}&token={token}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromium (Debian: apt-get install chromium)")?;

    let result = async {
        let initial = report(&mut reports).await?;
        anyhow::ensure!(initial["value"] == true, "initial: {initial}");
        let mut times = Vec::with_capacity(changes);
        for i in 0..changes {
            let (action, want) = if i % 2 == 0 { ("kill", false) } else { ("restore", true) };
            let sent = Instant::now();
            let r = call(&format!("{config}/{action}"), json!({"reason": "bench"})).await?;
            anyhow::ensure!(r.status() == 200, "{action}: {}", r.status());
            loop {
                if report(&mut reports).await?["value"] == want {
                    break;
                }
            }
            times.push(sent.elapsed());
        }
        times.sort();
        println!(
            "kill/restore -> browser provider's value changed, {changes} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        Ok(())
    }
    .await;
    let _ = browser.kill();
    let _ = browser.wait();
    server.handle.stop(true).await;
    result
}
