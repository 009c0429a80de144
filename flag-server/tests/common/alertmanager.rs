//! A real Prometheus Alertmanager for the tests: Debian's `prometheus-alertmanager` (or an
//! `alertmanager` on `PATH`), started in a temporary directory on a free loopback port with
//! clustering off and a webhook receiver that posts to the server with an integration
//! token, short `group_wait` and `group_interval`. Killed when dropped.
//!
//! Without the program a test that asks for it fails and names it (Debian: `apt-get install
//! prometheus-alertmanager`, which `.ci/run` does).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Alertmanager may take to start answering.
const START: Duration = Duration::from_secs(30);

/// A running Alertmanager.
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

/// The program: `alertmanager` or `prometheus-alertmanager` on `PATH`, else Debian's path.
fn program() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["alertmanager", "prometheus-alertmanager"].map(|name| dir.join(name)))
            .find(|p| p.is_file())
    });
    let debian = PathBuf::from("/usr/bin/prometheus-alertmanager");
    on_path
        .or_else(|| debian.is_file().then_some(debian))
        .unwrap_or_else(|| {
            panic!(
                "Prometheus Alertmanager is not installed: no `alertmanager` or \
                 `prometheus-alertmanager` on PATH nor /usr/bin/prometheus-alertmanager. \
                 Install it (Debian: apt-get install prometheus-alertmanager; .ci/run does)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Alertmanager {
    /// Starts one whose only receiver posts every alert (and its resolution) to `webhook`
    /// with `Authorization: Bearer <token>`; waits until it is ready.
    pub async fn start(webhook: &str, token: &str) -> Alertmanager {
        let program = program();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            r#"route:
  receiver: flags
  group_by: ['alertname']
  group_wait: 50ms
  group_interval: 200ms
  repeat_interval: 1h
receivers:
  - name: flags
    webhook_configs:
      - url: '{webhook}'
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: '{token}'
"#
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let port = free_port();
        let child = Command::new(&program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        am.wait_ready().await;
        am
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START;
        let client = reqwest::Client::new();
        loop {
            let ready = client.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Alertmanager exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not become ready within {START:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts alerts to its API (`POST /api/v2/alerts`), as Prometheus does.
    pub async fn post_alerts(&self, alerts: &serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(alerts)
            .send()
            .await
            .expect("Alertmanager answers");
        assert!(
            r.status().is_success(),
            "Alertmanager refused the alerts: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
