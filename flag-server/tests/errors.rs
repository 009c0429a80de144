//! Every error is problem+json: malformed and hostile input, unknown routes, limits.

use reqwest::Method;
use serde_json::json;

use crate::common::{read, TestServer, ADMIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let s = TestServer::start().await;
    for body in ["{", "not json", "{\"key\": \"x\",}", ""] {
        let r = s
            .client
            .post(s.url("/api/v1/flags"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        read(r).await.problem(400);
    }
    // Valid JSON of the wrong shape is a validation error.
    let r = s.post("/api/v1/flags", json!([1, 2])).await;
    r.problem(422);
    let r = s
        .post("/api/v1/flags", json!({"key": 5, "kind": "boolean"}))
        .await;
    r.problem(422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_is_400_and_the_server_stays_healthy() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_object = format!(
        "{{\"key\":\"f\",\"kind\":\"json\",\"variations\":[{{\"key\":\"a\",\"value\":{}1{}}}]}}",
        "{\"a\":".repeat(5000),
        "}".repeat(5000)
    );
    // A deep array where an object is expected is the wrong shape: 422, before any depth.
    let r = s
        .client
        .post(s.url("/api/v1/flags"))
        .bearer_auth(ADMIN)
        .body(deep.clone())
        .send()
        .await
        .unwrap();
    read(r).await.problem(422);
    // Deep values where any JSON is allowed hit the depth limit: 400.
    for (path, body) in [
        ("/api/v1/flags", deep_object.clone()),
        ("/api/v1/flags/f/environments/production", deep_object),
        (
            "/api/v1/environments/production/evaluate",
            format!("{{\"context\": {deep}}}"),
        ),
    ] {
        let method = if path.ends_with("production") {
            Method::PUT
        } else {
            Method::POST
        };
        let r = s
            .client
            .request(method, s.url(path))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        read(r).await.problem(400);
    }
    s.get("/healthz").await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_1_mib_are_413() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let big = json!({"key": "f", "kind": "boolean", "name": "x".repeat(2 << 20)});
    s.post("/api/v1/flags", big.clone()).await.problem(413);
    s.put("/api/v1/flags/f/environments/production", big.clone(), None)
        .await
        .problem(413);
    s.post("/api/v1/flags/f/environments/production/kill", big)
        .await
        .problem(413);
    // Chunked (no Content-Length) too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..3).map(|_| Ok(vec![b' '; 1 << 20])).collect();
    let r = s
        .client
        .post(s.url("/api/v1/flags"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    read(r).await.problem(413);
    s.get("/healthz").await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_problems() {
    let s = TestServer::start().await;
    s.get("/nope").await.problem(404);
    s.get("/api/v1/flagz").await.problem(404);
    s.send(Method::PUT, "/api/v1/flags", Some(ADMIN), None, &[])
        .await
        .problem(405);
    s.send(
        Method::DELETE,
        "/api/v1/environments",
        Some(ADMIN),
        None,
        &[],
    )
    .await
    .problem(405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_headers_and_queries_are_400() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let r = s
        .send(
            Method::PUT,
            "/api/v1/flags/f/environments/production",
            Some(ADMIN),
            Some(&crate::common::rich_config("f")),
            &[("If-Match", "\"seven\"")],
        )
        .await;
    r.problem(400);
    assert_eq!(r.fields(), ["If-Match"]);
    s.get("/api/v1/audit?limit=abc").await.problem(400);
    let r = s.get("/api/v1/audit?limit=0").await;
    r.problem(400);
    assert_eq!(r.fields(), ["limit"]);
    let r = s.get("/api/v1/audit?cursor=zzz").await;
    assert_eq!(r.fields(), ["cursor"]);
    s.get("/api/v1/flags?archived=maybe").await.problem(400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_are_refused_without_harm() {
    let s = TestServer::start().await;
    let r = s
        .client
        .get(s.url("/healthz"))
        .header("x-huge", "a".repeat(256 * 1024))
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    s.get("/healthz").await.ok(200);
}
