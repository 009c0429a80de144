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

/// Every `$ref` in `value` (recursively).
fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| refs(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_body_is_described_and_every_reference_resolves() {
    let doc: serde_json::Value = serde_json::from_str(&flag_server::api::openapi_json()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
        assert!(schemas.contains_key(name), "unresolved {r}");
    }
    // The model's types, with the operators as an enum, as the server parses them.
    let op = &schemas["Op"]["enum"];
    assert_eq!(op.as_array().map(Vec::len), Some(15), "{op}");
    assert!(op.as_array().unwrap().contains(&"in_segment".into()));
    for (name, fields) in [
        (
            "Flag",
            &[
                "variations",
                "prerequisites",
                "targets",
                "rules",
                "fallthrough",
            ][..],
        ),
        ("Segment", &["included", "excluded", "rules"][..]),
        ("Clause", &["attribute", "op", "values", "negate"][..]),
        ("Rollout", &["bucket_by", "salt", "weights"][..]),
    ] {
        for field in fields {
            assert!(
                schemas[name]["properties"].get(*field).is_some(),
                "{name}.{field} missing"
            );
        }
    }
    let serve = &schemas["Serve"];
    assert_eq!(
        (&serve["minProperties"], &serve["maxProperties"]),
        (&serde_json::json!(1), &serde_json::json!(1))
    );
    assert!(
        serve["properties"].get("variation").is_some()
            && serve["properties"].get("rollout").is_some()
    );
    let put = &doc["paths"]["/api/v1/flags/{key}/environments/{env}"]["put"];
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Flag"
    );
    // No body of the REST API is a bare object (the OpenAPI document itself is one, and OFREP
    // requests follow OFREP's own document: `{"context": {...}}`, read by hand).
    let mut paths = doc["paths"].clone();
    paths
        .as_object_mut()
        .unwrap()
        .retain(|path, _| path != "/openapi.json" && !path.starts_with("/ofrep/"));
    let bare = paths
        .to_string()
        .matches(r#""schema":{"type":"object"}"#)
        .count();
    assert_eq!(bare, 0, "a body described as a bare object");
}
