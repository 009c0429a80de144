//! The real `flag-server` binary as a child process, for what only a process shows: its exit
//! status and messages, what it prints, `kill -9`, signals, two servers at once.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::ADMIN;

/// How long a start or an exit may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// `flag-server --db DB` on an ephemeral port (`FLAG_SERVER_LISTEN`, so `--listen` may be
/// added) with the test admin token and `info` logs; its stdout is discarded (ask for it
/// with `.stdout(Stdio::piped())`).
pub fn server_command(db: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flag-server"));
    command
        .arg("--db")
        .arg(db)
        .env("FLAG_SERVER_LISTEN", "127.0.0.1:0")
        .env("FLAG_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    command
}

/// A server process that is listening; killed (`kill -9`) when dropped.
pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServerProcess {
    /// Spawns `command` and waits until the server logs the address it listens on.
    pub fn spawn(command: &mut Command) -> ServerProcess {
        Self::start(command, true)
    }

    /// As [`ServerProcess::spawn`], but stops reading stderr once the server listens: its
    /// later log lines meet a closed pipe, as when a log collector goes away.
    pub fn spawn_then_close_stderr(command: &mut Command) -> ServerProcess {
        Self::start(command, false)
    }

    fn start(command: &mut Command, read_on: bool) -> ServerProcess {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("flag-server starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("addr=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(Ok(addr));
                    if !read_on {
                        return;
                    }
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            let _ = tx.send(Err(seen));
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(Ok(addr)) => ServerProcess {
                child,
                base: format!("http://{addr}"),
            },
            other => {
                let _ = child.kill();
                panic!("flag-server did not start listening: {other:?}")
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, and waits for the process to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process and returns everything it wrote to a piped stdout.
    pub fn kill_and_read_stdout(&mut self) -> String {
        self.kill();
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        out
    }

    /// The first line of a piped stdout (blocks until it is there).
    pub fn stdout_line(&mut self) -> String {
        let stdout = self.child.stdout.as_mut().expect("stdout is piped");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        // Byte by byte, so nothing after the line is consumed.
        while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `command` until it exits (within [`PATIENCE`], else it is killed and the test fails)
/// and returns its status, stdout and stderr.
pub fn run_to_exit(command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flag-server starts");
    wait_for_exit(child)
}

/// Waits until `child` exits (within [`PATIENCE`], else it is killed and the test fails) and
/// returns its status and what it wrote to piped stdout and stderr.
pub fn wait_for_exit(mut child: Child) -> Output {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "flag-server did not exit; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The admin token in what a first start printed: the 64 hex characters.
pub fn printed_token(stdout: &str) -> Option<&str> {
    stdout
        .split_whitespace()
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
}
