//! The real `prometheus` (Debian's package; `.ci/run` installs it) started on a free loopback
//! port in a temporary directory, scraping every second a small exporter the test runs
//! in-process, whose per-variation gauge the test sets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Prometheus starts and scrapes within this on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

const BINARY: &str = "/usr/bin/prometheus";

/// A `/metrics` endpoint on loopback serving `checkout_latency_seconds{variation="..."}`.
pub struct Exporter {
    /// `127.0.0.1:port`.
    pub addr: String,
    values: Arc<Mutex<BTreeMap<String, f64>>>,
}

impl Exporter {
    /// Starts serving on a free port.
    pub async fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let values: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let served = values.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let values = served.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let body: String = values
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(v, x)| {
                            format!("checkout_latency_seconds{{variation=\"{v}\"}} {x}\n")
                        })
                        .collect();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Exporter { addr, values }
    }

    /// Sets the latency the exporter reports for `variation`.
    pub fn set(&self, variation: &str, seconds: f64) {
        self.values
            .lock()
            .unwrap()
            .insert(variation.to_owned(), seconds);
    }
}

/// A running Prometheus; killed on drop.
pub struct Prometheus {
    /// `http://127.0.0.1:port`.
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second; returns once it is
    /// ready and has scraped the target.
    pub async fn scraping(target: &str) -> Prometheus {
        assert!(
            Path::new(BINARY).exists(),
            "prometheus is missing ({BINARY}): `apt-get install prometheus` (.ci/run installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        prometheus.wait_for_data().await;
        prometheus
    }

    /// Waits until the exporter's series can be queried.
    async fn wait_for_data(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = http
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", "count(checkout_latency_seconds)")])
                .send()
                .await;
            if let Ok(answer) = answer {
                let body: serde_json::Value = answer.json().await.unwrap_or_default();
                if body["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus at {} did not scrape the exporter within {WAIT:?}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
