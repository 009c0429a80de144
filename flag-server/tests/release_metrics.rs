//! Releases guarded by metrics the SDKs track: real SDK clients `track_value` a latency, the
//! guard sees the new variation slower and rolls back; the events intake takes older SDKs'
//! batches and unknown event kinds, and refuses a malformed metric event; bad guards are
//! refused naming the field.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::TestServer;
use crate::releases::{flag_serving_off, healthy_counters, release_until, CONFIG, FLAG, RELEASE};

fn latency_plan(statistic: &str) -> Value {
    json!({"variation": "on", "stages": [50, 100], "hold_seconds": 600,
           "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 100,
                     "metrics": [{"metric": "checkout_latency_ms", "statistic": statistic,
                                  "max_increase": 0.2, "min_samples": 200}]},
           "on_regression": "rollback"})
}

#[tokio::test]
async fn sdk_clients_track_latency_and_the_guard_rolls_a_slow_release_back() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    server.post(RELEASE, latency_plan("p95")).await.ok(201);

    let token = server.sdk_token("production").await;
    let client = flag_sdk::Client::builder(&server.base, &token)
        .events_interval(Duration::from_millis(50))
        .build()
        .await
        .expect("client builds");
    // The application: the new payment path takes about 600 ms, the old one about 200 ms.
    for i in 0..1500u32 {
        let ctx = flag_sdk::Context::new(format!("user-{i}"));
        let new_path = client.bool_variation(FLAG, &ctx, false);
        let jitter = f64::from(i % 100);
        let latency = if new_path {
            550.0 + jitter
        } else {
            150.0 + jitter
        };
        client.track_value(&ctx, "checkout_latency_ms", latency);
    }
    // The timing helpers record too (a few fast calls on both paths).
    let ctx = flag_sdk::Context::new("user-timed");
    assert_eq!(client.time(&ctx, "checkout_latency_ms", || 7), 7);
    client.timer(&ctx, "checkout_latency_ms").stop();

    let release = release_until(&server, RELEASE, "the latency guard's verdict", |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(release["state"], "rolled_back", "{release}");
    let reason = release["reason"].as_str().unwrap();
    assert!(reason.contains("checkout_latency_ms p95"), "{reason}");
    let metrics = &release["metrics"]["checkout_latency_ms"];
    assert!(metrics["on"]["count"].as_u64().unwrap() >= 200, "{release}");
    assert!(metrics["on"]["mean"].as_f64().unwrap() > 500.0, "{release}");
    assert!(metrics["off"]["p95"].as_f64().unwrap() < 300.0, "{release}");
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(
        config["fallthrough"],
        json!({"variation": "off"}),
        "rolled back"
    );
    let audit = server.audit("action=release.rolled_back").await;
    assert!(
        audit.iter().any(|e| e["reason"]
            .as_str()
            .unwrap_or("")
            .contains("checkout_latency_ms")),
        "{audit:?}"
    );
    client.close().await;
    assert_eq!(client.events_dropped(), 0);
}

/// Posts a batch as an SDK of production does; returns the status and body.
async fn post_events(server: &TestServer, batch: Value) -> crate::common::Reply {
    let sdk = server.sdk_token("production").await;
    server
        .send(
            reqwest::Method::POST,
            "/sdk/v1/events",
            Some(&sdk),
            Some(&batch),
            &[],
        )
        .await
}

fn metric_event(variation: &str, count: u64, bucket: u16, value: f64) -> Value {
    json!({"kind": "metric", "flag": FLAG, "variation": variation,
           "metric": "checkout_latency_ms",
           "histogram": {"count": count, "sum": value * count as f64,
                         "sum_squares": value * value * count as f64,
                         "buckets": [[bucket, count]]}})
}

#[tokio::test]
async fn metric_events_feed_the_mean_guard_beside_older_batches_and_unknown_kinds() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    server.post(RELEASE, latency_plan("mean")).await.ok(201);
    // An older SDK's batch (no events) and an event of a kind this server does not know.
    healthy_counters(&server, FLAG).await;
    let batch = json!({"counters": [], "events": [{"kind": "page_view", "anything": 1}]});
    assert_eq!(post_events(&server, batch).await.status, 202);
    let same = |n| json!({"events": [metric_event("off", n, 282, 200.0), metric_event("on", n, 282, 200.0)]});
    assert_eq!(post_events(&server, same(500)).await.status, 202);
    let release = server.get(RELEASE).await.ok(200).clone();
    assert_eq!(
        release["state"], "running",
        "the same latency is healthy: {release}"
    );
    assert_eq!(
        release["metrics"]["checkout_latency_ms"]["on"]["count"],
        500
    );
    // Then the new variation is three times slower: rolled back at once.
    let slow = json!({"events": [metric_event("on", 1000, 307, 600.0)]});
    assert_eq!(post_events(&server, slow).await.status, 202);
    let release = release_until(&server, RELEASE, "the rollback", |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(release["state"], "rolled_back", "{release}");
    assert!(
        release["reason"].as_str().unwrap().contains("mean"),
        "{release}"
    );
}

#[tokio::test]
async fn a_malformed_metric_event_is_refused_naming_it_and_counts_nothing() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    server.post(RELEASE, latency_plan("mean")).await.ok(201);
    let mut bad = metric_event("on", 10, 282, 200.0);
    bad["histogram"]["count"] = json!(11);
    let batch = json!({"counters": [{"flag": FLAG, "variation": "on", "evaluations": 5}],
                       "events": [{"kind": "other"}, bad]});
    let reply = post_events(&server, batch).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(reply.fields(), ["events[1]"]);
    let release = server.get(RELEASE).await.ok(200).clone();
    assert_eq!(release["observed"], json!({}), "nothing counted: {release}");
}

#[tokio::test]
async fn bad_metric_and_prometheus_guards_name_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    let before = server.get(CONFIG).await.ok(200).clone();
    let mut plan = latency_plan("p95");
    plan["guard"]["metrics"] = json!([
        {"metric": "ok_ms", "statistic": "mean", "max_increase": 0.2},
        {"metric": "", "statistic": "p95", "max_increase": 0.2, "max_increase_abs": 5}
    ]);
    let reply = server.post(RELEASE, plan).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.fields(),
        ["guard.metrics[1].metric", "guard.metrics[1].max_increase"]
    );
    let mut plan = latency_plan("p95");
    plan["guard"]["metrics"][0]["statistic"] = json!("p99");
    let reply = server.post(RELEASE, plan).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert!(reply.body.to_string().contains("p99"), "{:?}", reply.body);
    let mut plan = latency_plan("p95");
    plan["guard"]["prometheus"] =
        json!([{"query": "up{v=\"{{variation}}\"}", "max_increase": 0.2}]);
    let reply = server.post(RELEASE, plan).await;
    assert_eq!(reply.status, 422, "no --prometheus-url: {:?}", reply.body);
    assert_eq!(reply.fields(), ["guard.prometheus"]);
    assert_eq!(server.get(RELEASE).await.status, 404, "no release started");
    assert_eq!(
        server.get(CONFIG).await.ok(200),
        &before,
        "the flag unchanged"
    );
}
