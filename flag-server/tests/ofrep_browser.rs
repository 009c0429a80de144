//! OFREP in a real browser: Debian's `chromium`, headless, loads a page this test serves on
//! another loopback origin than the server's; the page runs `@openfeature/web-sdk` with
//! `@openfeature/ofrep-web-provider` (npm, installed by `.ci/ofrep-clients.sh`) with a client
//! token listing the page's origin. It must see the initial value, then a kill made through
//! the API must reach it through the advertised event stream. The time the kill took to reach
//! the page is printed (no assertion on it: figures come from the benches).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::live::WAIT;
use crate::common::page::page_server;
use crate::common::target_dir;
use crate::common::TestServer;
use crate::releases::serving;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ofrep_clients/page.html");

/// The browser, killed when the test ends however it ends.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The page's next report (at most [`WAIT`]); an `error` report fails the test.
async fn next_report(reports: &mut mpsc::Receiver<Value>, waiting_for: &str) -> Value {
    let report = tokio::time::timeout(WAIT, reports.recv())
        .await
        .unwrap_or_else(|_| panic!("the page did not report {waiting_for} within {WAIT:?}"))
        .expect("the page server runs");
    assert_ne!(report["event"], "error", "the page failed: {report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_provider_sees_a_kill_through_the_event_stream() {
    let _one = crate::common::webdriver::ONE_BROWSER.lock().await;
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "chromium is missing: `apt-get install chromium` (.ci/run installs it)"
    );
    let modules = target_dir().join("ofrep-web/node_modules");
    assert!(
        modules.join("@openfeature/ofrep-web-provider").exists(),
        "the browser OFREP client is missing ({}): `bash .ci/ofrep-clients.sh` installs \
         @openfeature/web-sdk and @openfeature/ofrep-web-provider there",
        modules.display()
    );
    let s = TestServer::start().await;
    serving(&s, "banner", json!({"variation": "on"})).await;
    let (origin, mut reports) = page_server(PathBuf::from(PAGE), modules).await;
    let token = s.client_token("production", &[&origin]).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{origin}/?base={}&token={token}", s.base);
    let _browser = Browser(
        Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts"),
    );

    let initial = next_report(&mut reports, "the initial value").await;
    assert_eq!(initial["event"], "initial", "{initial}");
    assert_eq!(initial["value"], true, "{initial}");
    assert_eq!(initial["variant"], "on", "{initial}");

    let killed = Instant::now();
    s.post(
        "/api/v1/flags/banner/environments/production/kill",
        json!({"reason": "INC-9"}),
    )
    .await
    .ok(200);
    let changed = loop {
        let report = next_report(&mut reports, "the kill").await;
        if report["value"] == false {
            break report;
        }
    };
    let elapsed = killed.elapsed();
    assert_eq!(changed["event"], "changed", "{changed}");
    assert_eq!(
        (changed["value"].clone(), changed["reason"].clone()),
        (json!(false), json!("DISABLED"))
    );
    println!("kill -> browser provider's value changed: {elapsed:?} (debounce included)");
}
