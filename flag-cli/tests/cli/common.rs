//! A real server per test, the `flag` binary as a process, and a proxy that lets someone else
//! write first (to provoke `412`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use flag_server::{Config, Running};
use serde_json::Value;

/// The admin token every test server accepts.
pub const ADMIN: &str = "test-admin-token";

/// A server on an ephemeral port with its own database.
pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    pub home: tempfile::TempDir,
    running: Option<Running>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// What a run of `flag` did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts this exit status and a one-line error on stderr; returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "stderr: {}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("flag: error: "),
            "stderr: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("backtrace"));
        &self.stderr
    }

    /// Stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

impl Server {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config::ephemeral(dir.path().join("flags.db"), ADMIN);
        let running = rt.block_on(flag_server::start(&config)).unwrap();
        Server {
            base: format!("http://{}", running.addr),
            addr: running.addr,
            home: tempfile::tempdir().unwrap(),
            running: Some(running),
            rt,
            _dir: dir,
        }
    }

    /// `flag --server BASE --token ADMIN ARGS...`.
    pub fn flag(&self, args: &[&str]) -> Out {
        let mut all = vec!["--server", &self.base, "--token", ADMIN];
        all.extend_from_slice(args);
        self.bare(&all)
    }

    /// `flag ARGS...` with a clean environment (no FLAG_* variables, an empty home).
    pub fn bare(&self, args: &[&str]) -> Out {
        run(args, self.home.path(), None)
    }

    /// `flag --server BASE --token ADMIN ARGS...` with these environment variables set.
    pub fn flag_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Out {
        let mut all = vec!["--server", &self.base, "--token", ADMIN];
        all.extend_from_slice(args);
        run_with(&all, self.home.path(), None, vars)
    }

    /// A blocking HTTP client with the admin token, for setting up and checking.
    pub fn http(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
    }

    /// The flag's configuration in production.
    pub fn config(&self, key: &str) -> Value {
        let res = self
            .http(
                reqwest::Method::GET,
                &format!("/api/v1/flags/{key}/environments/production"),
            )
            .send()
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        res.json().unwrap()
    }

    /// Replaces the flag's configuration in production (no If-Match).
    pub fn put_config(&self, config: &Value) {
        let key = config["key"].as_str().unwrap();
        let res = self
            .http(
                reqwest::Method::PUT,
                &format!("/api/v1/flags/{key}/environments/production"),
            )
            .json(config)
            .send()
            .unwrap();
        assert!(
            res.status().is_success(),
            "{}: {}",
            res.status(),
            res.text().unwrap()
        );
    }

    /// Creates a boolean flag through the CLI.
    pub fn create(&self, key: &str) {
        self.flag(&["create", key]).ok();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.rt.block_on(running.handle.stop(false));
        }
    }
}

/// Runs the binary with a clean environment.
pub fn run(args: &[&str], home: &Path, stdin: Option<&str>) -> Out {
    run_with(args, home, stdin, &[])
}

/// Runs the binary with a clean environment plus `vars`.
pub fn run_with(args: &[&str], home: &Path, stdin: Option<&str>, vars: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flag"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "FLAG_SERVER_URL",
        "FLAG_TOKEN",
        "FLAG_ENV",
        "FLAG_PROFILE",
        "FLAG_CONFIG",
        "RUST_BACKTRACE",
        "EDITOR",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A TCP proxy to `upstream` that, before forwarding each of the first `races` PUT requests,
/// runs `race` (someone else writing first). Returns its base URL.
pub fn racing_proxy(
    upstream: SocketAddr,
    races: usize,
    race: impl Fn() + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let left = Arc::new(AtomicUsize::new(races));
    let race = Arc::new(race);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(upstream) else {
                return;
            };
            let (mut client_r, mut server_w) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server, &mut client);
            });
            let left = left.clone();
            let race = race.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if buf[..n].starts_with(b"PUT ")
                        && left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                            .is_ok()
                    {
                        race();
                    }
                    if server_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

/// A loopback URL where nothing listens.
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A fixture under tests/data.
pub fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}
