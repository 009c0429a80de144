//! The real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) with a webhook
//! receiver pointing at the server and an integration token: an alert posted to its API
//! kills the flag an SDK is reading, with the alert in the audit log, and its resolution
//! restores it (`on_resolved: restore`).

use serde_json::json;

use crate::alerts::{integration_token, BINDINGS, WEBHOOK};
use crate::common::alertmanager::Alertmanager;
use crate::common::live::{eventually, WAIT};
use crate::common::TestServer;

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_through_alertmanager_kills_the_flag_and_its_resolution_restores_it() {
    let s = TestServer::start().await;
    crate::releases::serving(&s, "new-checkout", json!({"variation": "on"})).await;
    s.post(
        BINDINGS,
        json!({"matchers": {"alertname": "CheckoutErrors"}, "flag": {"label": "flag"},
               "environment": "production", "action": "kill", "on_resolved": "restore"}),
    )
    .await
    .ok(201);
    let token = integration_token(&s, "alertmanager-prod").await;
    let am = Alertmanager::start(&s.url(WEBHOOK), &token).await;

    let sdk_token = s.sdk_token("production").await;
    let client = flag_sdk::Client::builder(&s.base, &sdk_token)
        .init_timeout(WAIT)
        .build()
        .await
        .expect("the SDK starts");
    let ctx = flag_sdk::Context::new("user-1");
    assert!(client.bool_variation("new-checkout", &ctx, false));

    let started = time::OffsetDateTime::now_utc();
    let alert = |ends: time::OffsetDateTime| {
        json!([{
            "labels": {"alertname": "CheckoutErrors", "flag": "new-checkout", "severity": "page"},
            "annotations": {"summary": "checkout errors above 5%"},
            "generatorURL": "http://prometheus.test/graph?g0.expr=checkout_errors",
            "startsAt": rfc3339(started),
            "endsAt": rfc3339(ends),
        }])
    };
    am.post_alerts(&alert(started + time::Duration::hours(1)))
        .await;
    eventually("the SDK sees the kill", || {
        !client.bool_variation("new-checkout", &ctx, true)
    })
    .await;
    let kill = s
        .audit("flag=new-checkout")
        .await
        .into_iter()
        .find(|e| e["action"] == "flag.kill")
        .expect("the kill is audited");
    assert_eq!(kill["actor"], "alertmanager:alertmanager-prod");
    let reason = kill["reason"].as_str().unwrap();
    assert!(
        reason.contains("alert CheckoutErrors firing: checkout errors above 5%")
            && reason.contains("fingerprint ")
            && reason.contains("http://prometheus.test/graph?g0.expr=checkout_errors"),
        "{reason}"
    );

    // Prometheus says it is over: Alertmanager sends the resolution; the flag comes back.
    am.post_alerts(&alert(time::OffsetDateTime::now_utc()))
        .await;
    eventually("the SDK sees the restore", || {
        client.bool_variation("new-checkout", &ctx, false)
    })
    .await;
    let actions: Vec<String> = s
        .audit("flag=new-checkout")
        .await
        .iter()
        .filter(|e| e["actor"] == "alertmanager:alertmanager-prod")
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["flag.restore", "flag.kill"]);
    client.close().await;
}
