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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::common::live::WAIT;
use crate::common::TestServer;
use crate::releases::serving;

const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ofrep_clients/page.html");

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The browser, killed when the test ends however it ends.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves the page at `/`, the npm modules under `/modules/`, and takes the page's reports
/// at `POST /report` (sent on `reports`). One request per connection.
async fn page_server(modules: PathBuf) -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(answer(socket, modules.clone(), tx.clone()));
        }
    });
    (origin, rx)
}

async fn answer(mut socket: TcpStream, modules: PathBuf, reports: mpsc::Sender<Value>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body_start) = loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&buf[..end]).to_string(), end + 4);
        }
    };
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method == "POST" && path == "/report" {
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < body_start + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = (body_start + length).min(buf.len());
        if let Ok(report) = serde_json::from_slice(&buf[body_start..end]) {
            let _ = reports.send(report).await;
        }
        ("204 No Content", "text/plain", Vec::new())
    } else if path == "/" {
        (
            "200 OK",
            "text/html",
            std::fs::read(PAGE).unwrap_or_default(),
        )
    } else if let Some(file) = path.strip_prefix("/modules/").filter(|f| !f.contains("..")) {
        match std::fs::read(modules.join(file)) {
            Ok(bytes) => ("200 OK", "text/javascript", bytes),
            Err(_) => ("404 Not Found", "text/plain", Vec::new()),
        }
    } else {
        ("404 Not Found", "text/plain", Vec::new())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(&body).await;
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
    let (origin, mut reports) = page_server(modules).await;
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
    let changed = next_report(&mut reports, "the kill").await;
    let elapsed = killed.elapsed();
    assert_eq!(changed["event"], "changed", "{changed}");
    assert_eq!(
        (changed["value"].clone(), changed["reason"].clone()),
        (json!(false), json!("DISABLED"))
    );
    println!("kill -> browser provider's value changed: {elapsed:?} (debounce included)");
}
