//! Releases guarded by Prometheus: the real `prometheus` scrapes a small exporter whose
//! per-variation latency the test sets; the scheduler queries it per variation and rolls the
//! release back when the new variation turns slow. An empty result and an unreachable
//! Prometheus hold the release at its stage, with the reason in its status.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::prometheus::{free_port, Exporter, Prometheus};
use crate::common::TestServer;
use crate::releases::{flag_serving_off, healthy_counters, release_until, CONFIG, RELEASE};

fn guarded_plan(hold_seconds: u64) -> Value {
    json!({"variation": "on", "stages": [10, 50, 100], "hold_seconds": hold_seconds,
           "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 100,
                     "prometheus": [{"query": "max(checkout_latency_seconds{variation=\"{{variation}}\"})",
                                     "max_increase": 0.2}]},
           "on_regression": "rollback"})
}

/// A server asking the Prometheus at `url` every second.
async fn server_asking(url: String) -> TestServer {
    TestServer::start_tuned(|c| {
        c.prometheus_url = Some(url);
        c.prometheus_interval_seconds = 1;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_the_new_variation_slow_and_the_release_rolls_back() {
    let exporter = Exporter::start().await;
    exporter.set("off", 0.2);
    let prometheus = Prometheus::scraping(&exporter.addr).await;
    let server = server_asking(prometheus.url.clone()).await;
    flag_serving_off(&server).await;
    server.post(RELEASE, guarded_plan(600)).await.ok(201);

    // No series for the new variation yet: an empty result, so no verdict, and it says so.
    let blind = release_until(&server, RELEASE, "the empty result in the status", |r| {
        r["reason"].as_str().is_some_and(|w| w.contains("no data"))
    })
    .await;
    assert_eq!(blind["state"], "running", "{blind}");
    assert!(
        blind["prometheus"]["error"]
            .as_str()
            .unwrap()
            .contains("`on`"),
        "names the variation: {blind}"
    );

    // Both variations equally fast: read, healthy, still running.
    exporter.set("on", 0.2);
    let healthy = release_until(&server, RELEASE, "a healthy reading", |r| {
        r["prometheus"]["values"][0]["on"].is_number()
    })
    .await;
    assert_eq!(healthy["state"], "running", "{healthy}");
    assert_eq!(healthy["prometheus"]["values"][0]["off"], 0.2, "{healthy}");
    assert!(healthy["prometheus"]["error"].is_null(), "{healthy}");

    // The new path turns three times slower; the next readings see it.
    exporter.set("on", 0.6);
    let release = release_until(&server, RELEASE, "the Prometheus guard's rollback", |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(release["state"], "rolled_back", "{release}");
    let reason = release["reason"].as_str().unwrap();
    assert!(
        reason.contains("Prometheus") && reason.contains("0.6000 vs 0.2000"),
        "{reason}"
    );
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(
        config["fallthrough"],
        json!({"variation": "off"}),
        "rolled back"
    );
    let audit = server.audit("action=release.rolled_back").await;
    assert!(
        audit.iter().any(|e| e["actor"] == "release-scheduler"),
        "{audit:?}"
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_holds_the_release_and_says_why() {
    let server = server_asking(format!("http://127.0.0.1:{}", free_port())).await;
    flag_serving_off(&server).await;
    server.post(RELEASE, guarded_plan(600)).await.ok(201);
    healthy_counters(&server, crate::releases::FLAG).await;
    let unreachable = |r: &Value| {
        r["reason"]
            .as_str()
            .is_some_and(|w| w.contains("unreachable"))
    };
    let first = release_until(&server, RELEASE, "the first failed reading", unreachable).await;
    let first_at = first["prometheus"]["at"].as_i64().unwrap();
    // The stage's ten minutes pass (the scheduler's simulated clock): the guard passes on the
    // counters, but without Prometheus' answer the release does not advance.
    server
        .running
        .state
        .scheduler
        .advance(Duration::from_secs(600));
    let held = release_until(&server, RELEASE, "a hold at the stage's end", |r| {
        unreachable(r) && r["prometheus"]["at"].as_i64() >= Some(first_at + 600_000)
    })
    .await;
    assert_eq!(held["state"], "running", "{held}");
    assert_eq!(held["percent"], 10, "never advances blind: {held}");
    let reason = held["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("holding 10%") && reason.contains("Prometheus at http://127.0.0.1:"),
        "{reason}"
    );
}
