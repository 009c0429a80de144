//! `flag release` with a flag's own bucketing and with a kill in the middle.

use serde_json::{json, Value};

use super::common::*;

/// A boolean flag `f`, on, whose fallthrough buckets organisations (salted) and serves `off`.
fn by_org(s: &Server) -> Value {
    s.create("f");
    let mut config = s.config("f");
    config["enabled"] = json!(true);
    config["fallthrough"] = json!({"rollout": {"bucket_by": "org", "salt": "s1",
        "weights": [{"variation": "off", "weight": 100000}]}});
    s.put_config(&config);
    s.config("f")
}

/// The fallthrough rollout's (bucket_by, salt, weight of `on`).
fn bucketing(s: &Server) -> (Value, Value, Value) {
    let r = s.config("f")["fallthrough"]["rollout"].clone();
    (
        r["bucket_by"].clone(),
        r["salt"].clone(),
        r["weights"][0]["weight"].clone(),
    )
}

#[test]
fn release_start_keeps_the_flags_bucketing_unless_told_otherwise() {
    let s = Server::start();
    by_org(&s);
    let out = s.flag(&["release", "start", "f", "--stages", "10,50,100"]);
    assert!(out.ok().contains("by org"), "{}", out.stdout);
    assert_eq!(bucketing(&s), (json!("org"), json!("s1"), json!(10_000)));
    // `flag rollout` builds the same sticky rollout: same buckets, same salt.
    s.flag(&["rollout", "f", "20", "--variation", "on"]).ok();
    assert_eq!(bucketing(&s), (json!("org"), json!("s1"), json!(20_000)));
    s.flag(&["release", "abort", "f"]).ok();

    s.flag(&["release", "start", "f", "--bucket-by", "device"])
        .ok();
    assert_eq!(bucketing(&s), (json!("device"), json!("s1"), json!(1_000)));
    let status = s.flag(&["release", "status", "f", "--json"]).json();
    assert_eq!(status["bucket_by"], "device");
}

#[test]
fn release_start_guards_tracked_metrics_and_the_server_checks_them() {
    let s = Server::start();
    by_org(&s);
    s.flag(&[
        "release",
        "start",
        "f",
        "--guard-metric",
        "checkout_latency_ms:p95:20%",
        "--guard-metric",
        "db_calls:mean:+3",
    ])
    .ok();
    let release = s.flag(&["release", "status", "f", "--json"]).json();
    assert_eq!(
        release["guard"]["metrics"],
        json!([
            {"metric": "checkout_latency_ms", "statistic": "p95", "max_increase": 0.2, "min_samples": 200},
            {"metric": "db_calls", "statistic": "mean", "max_increase_abs": 3.0, "min_samples": 200}
        ])
    );
    s.flag(&["release", "abort", "f"]).ok();
    // A statistic the server does not know: its 422 names the field, nothing starts.
    let err = s
        .flag(&["release", "start", "f", "--guard-metric", "latency:p99:20%"])
        .fails(1)
        .to_owned();
    assert!(err.contains("guard.metrics[0]"), "{err}");
    // No server-side Prometheus: the guard is refused, naming it.
    let err = s
        .flag(&[
            "release",
            "start",
            "f",
            "--guard-prometheus",
            "20%:up{v=\"{{variation}}\"}",
        ])
        .fails(1)
        .to_owned();
    assert!(err.contains("guard.prometheus"), "{err}");
}

#[test]
fn a_kill_pauses_the_release_and_resume_waits_for_restore() {
    let s = Server::start();
    by_org(&s);
    s.flag(&["release", "start", "f", "--stages", "10,50,100"])
        .ok();
    let before_kill = s.config("f");
    let out = s.flag(&["kill", "f", "--reason", "errors spiking"]);
    assert!(
        out.ok().contains("release:   paused by this kill"),
        "{}",
        out.stdout
    );
    assert!(s.flag(&["release", "status", "f"]).ok().contains("PAUSED"));
    for action in ["resume", "advance"] {
        let err = s.flag(&["release", action, "f"]).fails(5).to_owned();
        assert!(
            err.contains("is killed") && err.contains("flag restore f"),
            "{err}"
        );
    }
    let out = s.flag(&["restore", "f"]);
    assert!(out.ok().contains("still paused"), "{}", out.stdout);
    let mut expected = before_kill.clone();
    expected["version"] = json!(before_kill["version"].as_u64().unwrap() + 2);
    assert_eq!(
        s.config("f"),
        expected,
        "exactly the configuration from before the kill"
    );
    assert!(s
        .flag(&["release", "status", "f"])
        .ok()
        .contains("PAUSED at 10%"));
    assert!(s
        .flag(&["release", "resume", "f"])
        .ok()
        .contains("RUNNING at 10%"));
    assert!(s.flag(&["release", "advance", "f"]).ok().contains("at 50%"));
}
