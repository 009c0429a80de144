//! Hostile input (contract section 4): deep JSON, oversized bodies, huge headers, slow-loris
//! clients and arbitrary JSON against every write endpoint get a 4xx or a closed connection,
//! never a 5xx or a crash, and the server keeps serving everyone else.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{read, rich_config, TestServer, ADMIN};

/// Every JSON write endpoint, with the method, for a server holding flag `f` and segment `s`.
const WRITES: &[(&str, &str)] = &[
    ("POST", "/api/v1/environments"),
    ("POST", "/api/v1/flags"),
    ("PATCH", "/api/v1/flags/f"),
    ("PUT", "/api/v1/flags/f/environments/production"),
    ("POST", "/api/v1/flags/f/environments/production/kill"),
    ("POST", "/api/v1/flags/f/environments/production/restore"),
    ("POST", "/api/v1/environments/production/segments"),
    ("PUT", "/api/v1/environments/production/segments/s"),
    ("POST", "/api/v1/environments/production/evaluate"),
    ("POST", "/api/v1/tokens"),
    ("POST", "/api/v1/flags/f/environments/production/release"),
    (
        "POST",
        "/api/v1/flags/f/environments/production/release/pause",
    ),
    ("POST", "/api/v1/webhooks"),
];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a method")
}

/// A server with flag `f` and segment `s` in `production`.
async fn seeded() -> TestServer {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    s.post(
        "/api/v1/environments/production/segments",
        json!({"key": "s", "included": ["u1"]}),
    )
    .await
    .ok(201);
    s
}

/// Sends `body` as raw JSON bytes with the admin token.
async fn send_raw(s: &TestServer, verb: &str, path: &str, body: Vec<u8>) -> reqwest::Result<u16> {
    let r = s
        .client
        .request(method(verb), s.url(path))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok(read(r).await.status.as_u16())
}

/// How many flags exist (archived ones too): nothing partial was written.
async fn flag_count(s: &TestServer) -> usize {
    s.get("/api/v1/flags?archived=true").await.ok(200)["flags"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_is_a_4xx_problem_on_every_write_endpoint() {
    let s = seeded().await;
    const DEPTH: usize = 5000;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
    // Deep values in the fields that take any JSON, and deep values as the whole body.
    let bodies = [
        arrays.clone(),
        objects.clone(),
        format!("{{\"context\": {objects}}}"),
        format!(
            "{{\"key\":\"g\",\"kind\":\"json\",\"variations\":[{{\"key\":\"a\",\"value\":{arrays}}}]}}"
        ),
        format!("{{\"key\":\"t\",\"rules\":[{{\"clauses\":[{{\"attribute\":\"a\",\"op\":\"in\",\"values\":[{arrays}]}}]}}]}}"),
    ];
    let before = flag_count(&s).await;
    for (verb, path) in WRITES {
        for body in &bodies {
            let r = s
                .client
                .request(method(verb), s.url(path))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("answered");
            let r = read(r).await;
            let status = r.status.as_u16();
            assert!(
                (400..500).contains(&status),
                "{verb} {path}: {status} {}",
                r.body
            );
            r.problem(status);
        }
    }
    assert_eq!(flag_count(&s).await, before, "a deep body wrote a flag");
    s.get("/healthz").await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_just_over_1_mib_are_413_on_every_write_endpoint() {
    let s = seeded().await;
    let before = flag_count(&s).await;
    // Valid JSON one byte over the limit: the limit, not the parser, refuses it.
    let mut body = json!({"key": "big", "kind": "boolean", "name": ""}).to_string();
    let pad = (1 << 20) + 1 - body.len();
    body = body.replace(
        "\"name\":\"\"",
        &format!("\"name\":\"{}\"", "x".repeat(pad)),
    );
    assert_eq!(body.len(), (1 << 20) + 1);
    for (verb, path) in WRITES {
        match send_raw(&s, verb, path, body.clone().into_bytes()).await {
            Ok(status) => assert_eq!(status, 413, "{verb} {path}"),
            // A connection closed on the oversized body is also an acceptable answer.
            Err(e) => assert!(!e.is_timeout(), "{verb} {path}: {e}"),
        }
    }
    // Exactly at the limit is read and parsed (a 2xx or a validation error, never a 413/5xx).
    let at_limit = body[..body.len() - 3].to_owned() + "\"}";
    assert_eq!(at_limit.len(), 1 << 20);
    let status = send_raw(&s, "POST", "/api/v1/flags", at_limit.into_bytes())
        .await
        .unwrap();
    assert!(status < 500 && status != 413, "{status}");
    assert!(flag_count(&s).await <= before + 1);
    s.get("/healthz").await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_urls_and_header_counts_are_refused_without_harm() {
    let s = seeded().await;
    let refused = |r: reqwest::Result<reqwest::Response>, what: &str| {
        if let Ok(r) = r {
            let status = r.status().as_u16();
            assert!((400..500).contains(&status), "{what}: {status}");
        }
    };
    // actix reads request heads up to a fixed 128 KiB: a 100 KiB header is served like any
    // other request (no 5xx), anything larger is refused before a handler runs.
    let r = s
        .client
        .get(s.url("/api/v1/flags"))
        .bearer_auth(ADMIN)
        .header("x-filler", "a".repeat(100 * 1024))
        .send()
        .await
        .expect("a 100 KiB header is answered");
    assert!(r.status().as_u16() < 500, "100 KiB header: {}", r.status());
    // A 200 KiB header on an authenticated write: refused, nothing written.
    let r = s
        .client
        .put(s.url("/api/v1/flags/f/environments/production"))
        .bearer_auth(ADMIN)
        .header("x-filler", "a".repeat(200 * 1024))
        .json(&rich_config("f"))
        .send()
        .await;
    refused(r, "200 KiB header");
    // A 200 KiB bearer token.
    let r = s
        .client
        .get(s.url("/api/v1/flags"))
        .bearer_auth("t".repeat(200 * 1024))
        .send()
        .await;
    refused(r, "200 KiB token");
    // A 100 KiB token is simply not a valid token.
    let r = s
        .client
        .get(s.url("/api/v1/flags"))
        .bearer_auth("t".repeat(100 * 1024))
        .send()
        .await
        .unwrap();
    read(r).await.problem(401);
    // A 100 KiB path.
    let r = s
        .client
        .get(s.url(&format!("/api/v1/flags/{}", "k".repeat(100 * 1024))))
        .bearer_auth(ADMIN)
        .send()
        .await;
    refused(r, "100 KiB path");
    // 500 small headers.
    let mut req = s.client.get(s.url("/api/v1/flags")).bearer_auth(ADMIN);
    for i in 0..500 {
        req = req.header(format!("x-h{i}"), "v");
    }
    refused(req.send().await, "500 headers");
    // Raw: a request head that never ends, 1 MiB of header lines.
    let mut tcp = TcpStream::connect(s.running.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let line = format!("x-pad: {}\r\n", "p".repeat(1000));
    let mut written = 0;
    while written < (1 << 20) {
        if tcp.write_all(line.as_bytes()).await.is_err() {
            break; // closed by the server: fine
        }
        written += line.len();
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    let head = String::from_utf8_lossy(&answer);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 4"),
        "{}",
        &head[..head.len().min(200)]
    );
    // Still healthy, and nothing was changed.
    s.get("/healthz").await.ok(200);
    assert_eq!(
        s.get("/api/v1/flags/f/environments/production")
            .await
            .ok(200)["version"],
        1
    );
}

/// Opens a connection and dribbles a request head one byte at a time, never finishing it.
async fn slow_loris(addr: std::net::SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> bool {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return true;
    };
    let head = b"POST /api/v1/flags HTTP/1.1\r\nHost: 127.0.0.1\r\nx-slow: ";
    if tcp.write_all(head).await.is_err() {
        return true;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        if *stop.borrow() {
            return false;
        }
        if tcp.write_all(b"a").await.is_err() {
            // The server cut the slow client off.
            return true;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_do_not_hold_up_other_requests() {
    let s = seeded().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    const LORIS: usize = 64;
    let loris: Vec<_> = (0..LORIS)
        .map(|_| tokio::spawn(slow_loris(s.running.addr, stop_rx.clone())))
        .collect();
    // And one that sends its head but dribbles a declared body.
    let mut slow_body = TcpStream::connect(s.running.addr).await.unwrap();
    slow_body
        .write_all(
            format!(
                "POST /api/v1/flags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"key\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // While they hang on, everyone else is served promptly: reads and writes.
    for i in 0..40 {
        let r = tokio::time::timeout(Duration::from_secs(2), s.get("/healthz"))
            .await
            .unwrap_or_else(|_| panic!("request {i} waited 2 s behind slow clients"));
        r.ok(200);
        if i % 10 == 0 {
            let key = format!("ok-{i}");
            tokio::time::timeout(Duration::from_secs(2), s.create_flag(&key))
                .await
                .expect("a write waited 2 s behind slow clients");
        }
    }
    // The server eventually cuts slow heads off (actix's request-head timeout); bounded wait.
    let cut = tokio::time::timeout(Duration::from_secs(30), async {
        let mut cut = 0;
        for l in loris {
            cut += usize::from(l.await.unwrap());
        }
        cut
    })
    .await;
    // Whatever happened, the loris tasks stop now.
    let _ = stop_tx.send(true);
    let cut = cut.expect("the server kept slow request heads open for 30 s");
    assert_eq!(cut, LORIS, "the server kept slow request heads open");
    drop(slow_body);
    s.get("/healthz").await.ok(200);
    s.get("/readyz").await.ok(200);
}

/// Arbitrary JSON, biased toward the field names the API knows so that bodies get past the
/// first layer of shape checks.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    const NAMES: &[&str] = &[
        "key",
        "kind",
        "name",
        "description",
        "tags",
        "variations",
        "value",
        "enabled",
        "off_variation",
        "fallthrough",
        "variation",
        "rollout",
        "weights",
        "weight",
        "bucket_by",
        "rules",
        "clauses",
        "attribute",
        "op",
        "values",
        "negate",
        "serve",
        "targets",
        "keys",
        "prerequisites",
        "flag",
        "included",
        "excluded",
        "context",
        "flags",
        "environment",
        "reason",
        "stages",
        "hold_seconds",
        "guard",
        "on_regression",
        "url",
        "secret",
        "events",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "boolean",
            "string",
            "number",
            "json",
            "admin",
            "sdk",
            "production",
            "f",
            "s",
            "on",
            "off",
            "in",
            "matches",
            "(",
            "semver_gt",
            "in_segment",
            "true",
            "",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(NAMES), inner.clone(), 0..8).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body for each of [`WRITES`], in the same order: the seeds that mutation starts from.
fn templates() -> Vec<Value> {
    let mut config = rich_config("f");
    config["rules"].as_array_mut().unwrap().extend([
        json!({"clauses": [{"attribute": "key", "op": "in_segment", "values": ["s"]}],
               "serve": {"variation": "off"}}),
        json!({"clauses": [{"attribute": "email", "op": "matches", "values": ["@example\\.com$"]},
                           {"attribute": "version", "op": "semver_gt", "values": ["1.2.0"], "negate": true}],
               "serve": {"variation": "on"}}),
    ]);
    let segment = |key: &str| {
        json!({"key": key, "included": ["a"], "excluded": ["b"],
               "rules": [{"clauses": [{"attribute": "country", "op": "in", "values": ["NL"]}]}]})
    };
    vec![
        json!({"key": "staging"}),
        json!({"key": "g", "kind": "json", "name": "G", "description": "d", "tags": ["t"],
               "variations": [{"key": "a", "value": 1}, {"key": "b", "value": {"x": [1]}}]}),
        json!({"name": "F", "description": "d", "tags": ["a"]}),
        config,
        json!({"reason": "r"}),
        json!({"reason": "r"}),
        segment("s2"),
        segment("s"),
        json!({"context": {"key": "u", "country": "NL", "version": "1.3.0"}, "flags": ["f"]}),
        json!({"kind": "sdk", "environment": "production", "name": "n"}),
        json!({"variation": "on", "stages": [1, 50, 100], "hold_seconds": 600,
               "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 200},
               "on_regression": "pause"}),
        json!({"reason": "r"}),
        // Loopback: refused by the SSRF rules, and nothing is ever sent off this machine.
        json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef", "events": ["*"]}),
    ]
}

/// Every JSON pointer inside `value` (not the root).
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (token, child) in children {
        let here = format!("{at}/{token}");
        out.push(here.clone());
        pointers(child, &here, out);
    }
}

/// Replaces (or, for `None`, removes) the values at the chosen places of `template`.
fn mutate(template: &Value, edits: &[(prop::sample::Index, Option<Value>)]) -> Value {
    let mut body = template.clone();
    for (index, replacement) in edits {
        let mut all = Vec::new();
        pointers(&body, "", &mut all);
        if all.is_empty() {
            break;
        }
        let at = index.get(&all);
        match replacement {
            Some(v) => *body.pointer_mut(at).unwrap() = v.clone(),
            None => {
                let (parent, last) = at.rsplit_once('/').unwrap();
                match body.pointer_mut(parent).unwrap() {
                    Value::Object(m) => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Value::Array(a) => {
                        a.remove(last.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
            }
        }
    }
    body
}

#[test]
fn arbitrary_json_never_gets_a_5xx_from_a_write_endpoint() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(seeded());
    let templates = templates();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // Each case: one arbitrary value sent as is, and each endpoint's valid body with up to
    // three places replaced by arbitrary values or removed.
    let strategy = (
        arbitrary_json(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::option::weighted(0.8, arbitrary_json()),
            ),
            1..4,
        ),
    );
    let result = runner.run(&strategy, |(raw, edits)| {
        rt.block_on(async {
            for ((verb, path), template) in WRITES.iter().zip(&templates) {
                for body in [&raw, &mutate(template, &edits)] {
                    let r = s
                        .client
                        .request(method(verb), s.url(path))
                        .bearer_auth(ADMIN)
                        .json(body)
                        .send()
                        .await
                        .expect("answered");
                    let r = read(r).await;
                    let status = r.status.as_u16();
                    prop_assert!(status < 500, "{} {}: {} for {}", verb, path, status, body);
                    if status >= 400 {
                        prop_assert_eq!(r.content_type(), "application/problem+json");
                    }
                }
            }
            Ok(())
        })
    });
    rt.block_on(async {
        s.get("/healthz").await.ok(200);
    });
    drop(s);
    result.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mutation_templates_are_valid_bodies() {
    // Guards the property test above: its seeds must reach past the shape checks.
    let s = seeded().await;
    for ((verb, path), body) in WRITES.iter().zip(templates()) {
        let r = s
            .send(method(verb), path, Some(ADMIN), Some(&body), &[])
            .await;
        let status = r.status.as_u16();
        if path.ends_with("/webhooks") {
            // A loopback webhook: refused by the SSRF rule, not by the shape.
            assert!(
                status == 422 && r.fields() == ["url"],
                "{verb} {path}: {status} {}",
                r.body
            );
        } else {
            assert!(
                (200..300).contains(&status),
                "{verb} {path}: {status} {}",
                r.body
            );
        }
    }
}
