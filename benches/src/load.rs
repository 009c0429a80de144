//! The load harnesses' phases: clients on keep-alive connections running one step back to
//! back for a bounded time, and the latency report every harness prints.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http::Connection;

/// The `p` quantile (0..=1) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Prints `name: N requests in T s = R/s; p50, p99, max`.
pub fn report(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    println!(
        "{name}: {} requests in {:.2} s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

/// Runs `clients` tasks for `phase`, each with its own connection; every task runs `step`
/// back to back and the latencies of all steps are returned with the wall time.
pub async fn run_phase<F, Fut>(
    addr: SocketAddr,
    clients: std::ops::Range<usize>,
    phase: Duration,
    step: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize, u64, Connection) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = anyhow::Result<Connection>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients {
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while start.elapsed() < phase {
                let t = Instant::now();
                connection = step(c, n, connection).await?;
                latencies.push(t.elapsed());
                n += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, start.elapsed()))
}
