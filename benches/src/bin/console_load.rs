//! The console's targets (BENCHMARKS.md): the first page ready in ≤ 300 ms on loopback, the
//! flag list with 10,000 flags ready in ≤ 500 ms, every file ≤ 200 KB compressed.
//!
//! Starts the real server in-process, creates the flags through the API, then drives
//! Debian's headless chromium through chromedriver (the browser tests' WebDriver client).
//! "Ready" is the console's own mark (`console:ready:<page>`, set when a page has rendered
//! its data), read from the Performance timeline: milliseconds since the navigation started,
//! so it includes fetching the page, its scripts, the session, and the page's API calls.
//! Each page is loaded `RUNS` times with a fresh cache and `RUNS` times with a warm one.
//!
//! `cargo run --release -p flag-benches --bin console_load [flags]`

use std::time::Duration;

use futures_util::{stream, StreamExt};
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../../../flag-server/tests/common/webdriver.rs"]
mod webdriver;

use webdriver::Browser;

const ADMIN: &str = "bench-admin-token";
const RUNS: usize = 10;

/// The console's `console:ready:<page>` mark, in ms since navigation start, once set.
async fn ready_at(browser: &Browser, page: &str) -> anyhow::Result<f64> {
    let script = format!(
        "const m = performance.getEntriesByName('console:ready:{page}'); \
         return m.length ? m[0].startTime : null;"
    );
    let started = std::time::Instant::now();
    loop {
        if let Some(ms) = browser.exec(&script, vec![]).await.as_f64() {
            return Ok(ms);
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the {page} page never got ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

/// Loads `url` `RUNS` times and reads when `page` was ready; `cold` empties the cache first.
async fn measure(
    browser: &Browser,
    url: &str,
    page: &str,
    cold: bool,
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        browser.goto("about:blank").await;
        if cold {
            browser.clear_cache().await;
        }
        browser.goto(url).await;
        times.push(ready_at(browser, page).await?);
    }
    Ok(median(times))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let mut cfg = flag_server::Config::ephemeral(dir.path().join("flags.db"), ADMIN);
    cfg.workers = None;
    let server = flag_server::start(&cfg).await?;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    http.post(format!("{base}/api/v1/environments"))
        .bearer_auth(ADMIN)
        .json(&json!({"key": "staging"}))
        .send()
        .await?;

    // The flags, 64 requests at a time (group commit takes them in batches).
    let created = std::time::Instant::now();
    let failures = stream::iter(0..flags)
        .map(|i| {
            let http = http.clone();
            let url = format!("{base}/api/v1/flags");
            async move {
                let body = json!({"key": format!("flag-{i:05}"), "kind": "boolean",
                    "name": format!("Flag number {i}"), "tags": [if i % 2 == 0 { "even" } else { "odd" }]});
                http.post(url)
                    .bearer_auth(ADMIN)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status() == 201)
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(64)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} flags were not created");
    println!("created {flags} flags in {:.1?}", created.elapsed());

    // Every file the console serves, compressed as a browser asks (brotli, then gzip).
    for encoding in ["br", "gzip"] {
        let mut total = 0usize;
        for path in flag_server::console::files() {
            let bytes = http
                .get(format!("{base}{path}"))
                .header("Accept-Encoding", encoding)
                .send()
                .await?
                .bytes()
                .await?;
            total += bytes.len();
        }
        println!(
            "assets, {encoding}: {total} bytes ({:.1} KB)",
            total as f64 / 1024.0
        );
    }

    let artefacts = tempfile::tempdir()?;
    let browser = Browser::start(1440, 960, artefacts.path().to_owned()).await;
    // The first page a visitor gets: the sign-in form.
    let (cold, cold_max) = measure(&browser, &base, "signin", true).await?;
    let (warm, warm_max) = measure(&browser, &base, "signin", false).await?;
    println!("first page (sign-in) ready: cold median {cold:.0} ms (max {cold_max:.0}), warm median {warm:.0} ms (max {warm_max:.0})");

    // Signed in: the flag list with every flag.
    browser.goto(&base).await;
    let token = browser.named("input", "Admin token").await;
    browser.type_in(&token, ADMIN).await;
    let submit = browser.named("button", "Sign in").await;
    browser.click(&submit).await;
    browser.named("input", "Search flags").await;
    let list = format!("{base}/#/flags");
    let (cold, cold_max) = measure(&browser, &list, "flags", true).await?;
    let (warm, warm_max) = measure(&browser, &list, "flags", false).await?;
    let total: Value = browser
        .exec(
            "return document.querySelector('.count').textContent;",
            vec![],
        )
        .await;
    println!("flag list ({total}) ready: cold median {cold:.0} ms (max {cold_max:.0}), warm median {warm:.0} ms (max {warm_max:.0})");
    drop(browser);
    server.handle.stop(true).await;
    Ok(())
}
