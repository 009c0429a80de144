//! Prints the side-by-side table of the last `cargo bench -p flag-benches --bench compare` run
//! from criterion's output (`target/criterion/compare_*/*/new/estimates.json`): each engine's
//! median, and how many times faster `Client::bool_variation` is than each competitor.
//!
//! `cargo run -p flag-benches --bin compare_table`

use std::path::{Path, PathBuf};

use serde_json::Value;

const CASES: [(&str, &str); 5] = [
    ("kill_switch", "kill switch"),
    ("plain_on", "plain flag on"),
    ("rollout_10pct", "10% rollout"),
    (
        "five_rules_x3_clauses",
        "5 rules × 3 clauses (segment, semver, regex)",
    ),
    ("one_among_10000", "one flag among 10,000"),
];
const ENGINES: [&str; 4] = ["client", "snapshot", "yggdrasil", "launchdarkly"];

fn median_ns(dir: &Path, case: &str, engine: &str) -> anyhow::Result<f64> {
    let path = dir
        .join(format!("compare_{case}"))
        .join(engine)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run the compare bench first)", path.display()))?;
    let json: Value = serde_json::from_str(&text)?;
    json["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("{}: no median", path.display()))
}

fn show(ns: f64) -> String {
    match ns {
        ns if ns >= 1000.0 => format!("{:.1} µs", ns / 1000.0),
        ns if ns >= 100.0 => format!("{ns:.0} ns"),
        ns => format!("{ns:.1} ns"),
    }
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion");
    println!(
        "| case | `Client::bool_variation` | `ArcSwap` load + `CompiledSnapshot::bool_variation` \
         | yggdrasil `is_enabled` | LaunchDarkly evaluation | vs yggdrasil | vs LaunchDarkly |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (case, name) in CASES {
        let m: Vec<f64> = ENGINES
            .iter()
            .map(|engine| median_ns(&dir, case, engine))
            .collect::<anyhow::Result<_>>()?;
        println!(
            "| {name} | {} | {} | {} | {} | {:.1}× | {:.0}× |",
            show(m[0]),
            show(m[1]),
            show(m[2]),
            show(m[3]),
            m[2] / m[0],
            m[3] / m[0]
        );
    }
    Ok(())
}
