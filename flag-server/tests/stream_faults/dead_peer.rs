//! The server's side of a network cut without FIN: a subscriber whose network died is
//! dropped within a few heartbeats (`TCP_USER_TIMEOUT` on accepted connections), not after
//! the kernel's ~15 minutes of retransmissions.
//!
//! Loopback never loses a packet, so the test runs itself again inside a network namespace
//! of its own (`unshare -rn`: no privilege needed where user namespaces are enabled) and
//! takes that namespace's `lo` down under an open stream: from then on nothing is delivered
//! or acknowledged either way, as with a cut cable. Where no namespace can be made, the test
//! says so and does nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{eventually, raw_stream, Server};

/// Set in the copy of the test that runs inside the namespace.
const INSIDE: &str = "FLAG_TEST_INSIDE_NETNS";
const NAME: &str = "stream_faults::dead_peer::a_subscriber_cut_off_without_fin_is_dropped";
const HEARTBEAT_MS: u64 = 200;

#[test]
fn a_subscriber_cut_off_without_fin_is_dropped() {
    if std::env::var_os(INSIDE).is_some() {
        return inside_namespace();
    }
    let namespaces = Command::new("unshare").args(["-rn", "true"]).status();
    if !namespaces.is_ok_and(|s| s.success()) {
        eprintln!("dead_peer: skipped, `unshare -rn` cannot make a network namespace here");
        return;
    }
    let out = Command::new("unshare")
        .arg("-rn")
        .arg(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "inside the namespace:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout
        .lines()
        .filter_map(|l| l.find("dead peer:").map(|i| &l[i..]))
    {
        println!("{line}");
    }
}

fn inside_namespace() {
    ip(&["link", "set", "lo", "up"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("flags.db"), None, |c| {
            c.sse_heartbeat_ms = HEARTBEAT_MS;
        })
        .await;
        let (_, token) = server.sdk_token().await;

        let socket = raw_stream(server.running.addr, &token).await;
        assert_eq!(server.subscribers(), 1);

        ip(&["link", "set", "lo", "down"]);
        let cut = Instant::now();
        eventually("the server to drop the cut-off subscriber", || {
            server.subscribers() == 0
        })
        .await;
        let dropped_after = cut.elapsed();
        // Not before its heartbeats went unacknowledged for the timeout (three heartbeats,
        // at least a second).
        assert!(dropped_after >= Duration::from_secs(1), "{dropped_after:?}");
        println!(
            "dead peer: dropped {dropped_after:?} after the cut (heartbeat {HEARTBEAT_MS} ms)"
        );
        drop(socket);
        server.stop().await;
    });
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(status.success(), "ip {args:?}");
}
