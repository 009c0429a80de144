//! A small W3C WebDriver client over reqwest, driving Debian's headless `chromium` through
//! `chromedriver` (`chromium-driver`), for the console's browser tests and the console
//! benchmark (which includes this file through `#[path]`; it needs only reqwest, tokio,
//! serde_json and base64-free PNG bytes from the driver).
//!
//! Elements are found by their accessible name and role as the browser computes them
//! (`computedlabel`, `computedrole`), so the tests check the names a screen reader reads.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Debian installs them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for the page lasts at most.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// Held by every test that runs a browser, so that two headless chromiums never compete for
/// the machine's two cores (their waits are for the page, not for CPU).
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Keys as WebDriver sends them.
pub const ESCAPE: &str = "\u{E00C}";

/// `chromedriver` and one browser session, both ended when dropped.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// The session's URL (`http://127.0.0.1:PORT/session/ID`).
    base: String,
    /// Where a failed wait leaves a screenshot (`failure.png`).
    artefacts: PathBuf,
}

/// An element of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct El(pub String);

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver close the browser (synchronously: a drop
        // cannot await), then chromedriver itself goes.
        let path = self
            .base
            .splitn(4, '/')
            .nth(3)
            .unwrap_or_default()
            .to_owned();
        let host = self.base.split('/').nth(2).unwrap_or_default().to_owned();
        let _ = std::net::TcpStream::connect(&host).and_then(|mut stream| {
            use std::io::{Read, Write};
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            stream.read_to_end(&mut Vec::new())
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless chromium of `width`×`height`; panics naming what is
    /// missing when either program is not installed.
    /// A wait that fails leaves `failure.png` in `artefacts`.
    pub async fn start(width: u32, height: u32, artefacts: PathBuf) -> Browser {
        for (program, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's `{package}` (apt-get install {package}; .ci/run does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{root}/status")).send().await;
            if let Ok(res) = ready {
                let status: Value = res.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < PAGE_WAIT,
                "chromedriver did not get ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                         "--disable-features=BackForwardCache",
                         format!("--window-size={width},{height}")],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let res: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a session");
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromium did not start: {res}"))
            .to_owned();
        Browser {
            driver,
            http,
            base: format!("{root}/session/{session}"),
            artefacts,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res: Value = req
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("JSON");
        res["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for the load event.
    pub async fn goto(&self, url: &str) {
        let v = self.post("/url", json!({ "url": url })).await;
        assert!(v.is_null(), "navigation to {url} failed: {v}");
    }

    /// Empties the browser's HTTP cache (a first visit), through the DevTools protocol.
    pub async fn clear_cache(&self) {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Network.clearBrowserCache", "params": {}}),
        )
        .await;
    }

    /// Renders the page as with `prefers-color-scheme: dark`.
    pub async fn prefer_dark(&self) {
        self.post(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setEmulatedMedia",
                   "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}}),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Every element matching `css`.
    pub async fn all(&self, css: &str) -> Vec<El> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        elements(&v)
    }

    /// The elements matching `css` inside `el`.
    pub async fn all_in(&self, el: &El, css: &str) -> Vec<El> {
        let v = self
            .post(
                &format!("/element/{}/elements", el.0),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        elements(&v)
    }

    /// The element's accessible name, as the browser computes it.
    pub async fn label(&self, el: &El) -> String {
        let v = self.get(&format!("/element/{}/computedlabel", el.0)).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The element's role, as the browser computes it.
    pub async fn role(&self, el: &El) -> String {
        let v = self.get(&format!("/element/{}/computedrole", el.0)).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Whether the element is shown.
    pub async fn displayed(&self, el: &El) -> bool {
        self.get(&format!("/element/{}/displayed", el.0)).await == true
    }

    /// The element's visible text.
    pub async fn text(&self, el: &El) -> String {
        let v = self.get(&format!("/element/{}/text", el.0)).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute (or `None`).
    pub async fn attr(&self, el: &El, name: &str) -> Option<String> {
        let v = self
            .get(&format!("/element/{}/attribute/{name}", el.0))
            .await;
        v.as_str().map(str::to_owned)
    }

    /// A DOM property that is a string (`value`, `outerHTML`).
    pub async fn property(&self, el: &El, name: &str) -> String {
        let v = self
            .get(&format!("/element/{}/property/{name}", el.0))
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks it (as a user would: it must be visible and not covered).
    pub async fn click(&self, el: &El) {
        let v = self
            .post(&format!("/element/{}/click", el.0), json!({}))
            .await;
        assert!(v.is_null(), "click failed: {v}");
    }

    /// Types `text` into it.
    pub async fn type_in(&self, el: &El, text: &str) {
        let v = self
            .post(&format!("/element/{}/value", el.0), json!({ "text": text }))
            .await;
        assert!(v.is_null(), "typing failed: {v}");
    }

    /// Empties a field.
    pub async fn clear(&self, el: &El) {
        let v = self
            .post(&format!("/element/{}/clear", el.0), json!({}))
            .await;
        assert!(v.is_null(), "clear failed: {v}");
    }

    /// Sends keys to whatever has the focus.
    pub async fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// The element that has the focus.
    pub async fn focused(&self) -> El {
        let v = self.get("/element/active").await;
        El(v[ELEMENT].as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching `css` whose accessible name is `name`, if any now.
    pub async fn named_now(&self, css: &str, name: &str) -> Option<El> {
        for el in self.all(css).await {
            if self.label(&el).await == name {
                return Some(el);
            }
        }
        None
    }

    /// Waits (at most [`PAGE_WAIT`]) for an element matching `css` named `name`.
    pub async fn named(&self, css: &str, name: &str) -> El {
        let started = Instant::now();
        loop {
            if let Some(el) = self.named_now(css, name).await {
                return el;
            }
            if started.elapsed() > PAGE_WAIT {
                let names = self.names(css).await;
                self.screenshot(&self.artefacts, "failure").await;
                panic!("no {css} named {name:?} within {PAGE_WAIT:?}; there are {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The accessible names of every element matching `css` (for failure messages).
    pub async fn names(&self, css: &str) -> Vec<String> {
        let mut names = Vec::new();
        for el in self.all(css).await {
            names.push(self.label(&el).await);
        }
        names
    }

    /// Waits (at most [`PAGE_WAIT`]) until `check` holds; `what` names it on failure.
    pub async fn until<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            if started.elapsed() > PAGE_WAIT {
                self.screenshot(&self.artefacts, "failure").await;
                panic!("{what}: not within {PAGE_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's text contains `text`.
    pub async fn until_text(&self, text: &str) {
        let text_owned = text.to_owned();
        self.until(&format!("the page shows {text:?}"), || {
            let t = text_owned.clone();
            async move {
                self.exec("return document.body.innerText;", vec![])
                    .await
                    .as_str()
                    .is_some_and(|body| body.contains(&t))
            }
        })
        .await;
    }

    /// Everything the page logged at level SEVERE since the last call: JavaScript errors,
    /// CSP violations, files that failed to load. An API answer of 4xx is not one (the
    /// browser logs each; the page handles them, e.g. a 404 for "no release yet").
    pub async fn errors(&self) -> Vec<String> {
        let v = self.post("/se/log", json!({"type": "browser"})).await;
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .filter(|e| {
                        let message = e["message"].as_str().unwrap_or_default();
                        !(e["source"] == "network" && message.contains("/api/v1/"))
                    })
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A PNG of the window, saved as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let v = self.get("/screenshot").await;
        let png = decode_base64(v.as_str().expect("a screenshot"));
        std::fs::create_dir_all(dir).expect("screenshot folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }
}

/// The elements of a `find elements` answer.
fn elements(v: &Value) -> Vec<El> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e[ELEMENT].as_str().map(|s| El(s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Standard base64 (the screenshot's encoding), without a crate for it.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}
