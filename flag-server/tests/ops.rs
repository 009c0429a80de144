//! Health, readiness and metrics.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let s = TestServer::start().await;
    let r = s
        .send(reqwest::Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!(r.ok(200)["status"], "ok");
    let r = s
        .send(reqwest::Method::GET, "/readyz", None, None, &[])
        .await;
    assert_eq!(r.ok(200)["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_writes_and_flags() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    s.get("/api/v1/flags/f").await.ok(200);
    s.get("/api/v1/flags/nope").await.problem(404);
    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for needle in [
        "flag_server_requests_total{route=\"/api/v1/flags/{key}\",status=\"200\"} 1",
        "flag_server_requests_total{route=\"/api/v1/flags/{key}\",status=\"404\"} 1",
        "flag_server_request_duration_seconds_bucket{route=\"/api/v1/flags\"",
        "flag_server_sqlite_write_seconds_count",
        "flag_server_sqlite_write_batch_size_count",
        "flag_server_flags{environment=\"production\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
}
