//! The checked-in OpenAPI document is the one the code generates; the server serves it.

use crate::common::TestServer;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");

#[test]
fn the_checked_in_document_is_fresh() {
    let generated = flag_server::api::openapi_json() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is stale: run `cargo run -p flag-server -- openapi > openapi/openapi.json` \
         (or UPDATE_OPENAPI=1 cargo test -p flag-server openapi)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_it_and_it_lists_every_route() {
    let s = TestServer::start().await;
    let r = s.get("/openapi.json").await;
    let doc = r.ok(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/environments",
        "/api/v1/flags",
        "/api/v1/flags/{key}",
        "/api/v1/flags/{key}/environments/{env}",
        "/api/v1/flags/{key}/environments/{env}/kill",
        "/api/v1/flags/{key}/environments/{env}/restore",
        "/api/v1/environments/{env}/segments",
        "/api/v1/environments/{env}/segments/{key}",
        "/api/v1/environments/{env}/evaluate",
        "/api/v1/audit",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
}
