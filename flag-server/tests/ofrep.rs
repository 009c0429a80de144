//! OFREP against the real server: the bodies and status codes of the protocol's document,
//! every error code, the bulk ETag and 304, the change notification stream, client tokens
//! (their scope and CORS), the limits, and OFREP evaluations feeding a release guard.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::live::WAIT;
use crate::common::{read, rich_config, Reply, TestServer, ADMIN};
use crate::releases::{release_until, serving};

const ONE: &str = "/ofrep/v1/evaluate/flags";
const APP: &str = "https://app.example.com";

/// POSTs raw `body` to an OFREP path with `token` as a bearer and extra headers.
async fn ofrep(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = server
        .client
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    read(req.send().await.expect("request sent")).await
}

/// `{"context": ...}` as text.
fn ctx(context: Value) -> String {
    json!({ "context": context }).to_string()
}

/// Asserts an OFREP error answer (application/json, `errorCode`, `errorDetails`).
#[track_caller]
fn error(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.body);
    assert!(reply.content_type().starts_with("application/json"));
    assert_eq!(reply.body["errorCode"], code, "{}", reply.body);
    reply.body["errorDetails"]
        .as_str()
        .expect("errorDetails is always there")
        .to_owned()
}

/// A server with a targeted flag `checkout` (rich_config), a static string flag `theme`,
/// and an SDK token.
async fn server_with_flags() -> (TestServer, String) {
    let s = TestServer::start().await;
    s.create_flag("checkout").await;
    s.put(
        "/api/v1/flags/checkout/environments/production",
        rich_config("checkout"),
        None,
    )
    .await
    .ok(200);
    s.post(
        "/api/v1/flags",
        json!({"key": "theme", "kind": "string",
               "variations": [{"key": "blue", "value": "blue"}, {"key": "red", "value": "red"}]}),
    )
    .await
    .ok(201);
    let mut theme = s
        .get("/api/v1/flags/theme/environments/production")
        .await
        .ok(200)
        .clone();
    theme["enabled"] = json!(true);
    theme["fallthrough"] = json!({"variation": "red"});
    s.put("/api/v1/flags/theme/environments/production", theme, None)
        .await
        .ok(200);
    let sdk = s.sdk_token("production").await;
    (s, sdk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flag_answers_value_reason_variant_and_flat_metadata() {
    let (s, sdk) = server_with_flags().await;
    let path = format!("{ONE}/checkout");
    let target = ofrep(
        &s,
        &path,
        Some(&sdk),
        &ctx(json!({"targetingKey": "user-1"})),
        &[],
    )
    .await;
    let body = target.ok(200);
    assert_eq!(
        *body,
        json!({"key": "checkout", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
               "metadata": {"reason": "TARGET_MATCH", "version": 2}})
    );
    let rule = ofrep(
        &s,
        &path,
        Some(&sdk),
        &ctx(json!({"targetingKey": "u9", "country": "NL"})),
        &[],
    )
    .await;
    assert_eq!(rule.body["reason"], "TARGETING_MATCH");
    assert_eq!(
        rule.body["metadata"],
        json!({"reason": "RULE_MATCH", "ruleIndex": 0, "ruleId": "benelux",
               "inRollout": false, "version": 2})
    );
    let split = ofrep(
        &s,
        &path,
        Some(&sdk),
        &ctx(json!({"targetingKey": "u9"})),
        &[],
    )
    .await;
    assert_eq!(split.body["reason"], "SPLIT", "{}", split.body);
    assert_eq!(split.body["metadata"]["inRollout"], true);
    assert!(split.body["variant"].is_string());

    // An untargeted flag is static; X-API-Key works as well as a bearer token.
    let theme = ofrep(
        &s,
        &format!("{ONE}/theme"),
        None,
        &ctx(json!({"targetingKey": "u9"})),
        &[("X-API-Key", &sdk)],
    )
    .await;
    assert_eq!(
        (
            theme.body["value"].clone(),
            theme.body["reason"].clone(),
            theme.body["variant"].clone()
        ),
        (json!("red"), json!("STATIC"), json!("red"))
    );

    s.post(
        "/api/v1/flags/checkout/environments/production/kill",
        json!({"reason": "INC-1"}),
    )
    .await
    .ok(200);
    let off = ofrep(
        &s,
        &path,
        Some(&sdk),
        &ctx(json!({"targetingKey": "user-1"})),
        &[],
    )
    .await;
    assert_eq!(
        (off.body["value"].clone(), off.body["reason"].clone()),
        (json!(false), json!("DISABLED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_with_the_documents_status() {
    let (s, sdk) = server_with_flags().await;
    let path = format!("{ONE}/checkout");
    let parse = ofrep(&s, &path, Some(&sdk), "{not json", &[]).await;
    error(&parse, 400, "PARSE_ERROR");
    assert_eq!(parse.body["key"], "checkout");
    let not_object = ofrep(&s, &path, Some(&sdk), "[1]", &[]).await;
    error(&not_object, 400, "PARSE_ERROR");
    let missing = ofrep(&s, &path, Some(&sdk), &ctx(json!({"plan": "pro"})), &[]).await;
    error(&missing, 400, "TARGETING_KEY_MISSING");
    let no_context = ofrep(&s, &path, Some(&sdk), "{}", &[]).await;
    error(&no_context, 400, "TARGETING_KEY_MISSING");
    let invalid = ofrep(
        &s,
        &path,
        Some(&sdk),
        &ctx(json!({"targetingKey": 42})),
        &[],
    )
    .await;
    let details = error(&invalid, 400, "INVALID_CONTEXT");
    assert!(details.contains("targetingKey"), "{details}");
    let invalid = ofrep(&s, &path, Some(&sdk), r#"{"context": "u1"}"#, &[]).await;
    error(&invalid, 400, "INVALID_CONTEXT");
    let unknown = ofrep(
        &s,
        &format!("{ONE}/nope"),
        Some(&sdk),
        &ctx(json!({"targetingKey": "u"})),
        &[],
    )
    .await;
    let details = error(&unknown, 404, "FLAG_NOT_FOUND");
    assert!(details.contains("nope"), "{details}");
    assert_eq!(unknown.body["key"], "nope");

    let body = ctx(json!({"targetingKey": "u"}));
    let no_token = ofrep(&s, &path, None, &body, &[]).await;
    error(&no_token, 401, "GENERAL");
    let bad_token = ofrep(&s, &path, Some("nope"), &body, &[]).await;
    error(&bad_token, 401, "GENERAL");
    let admin = ofrep(&s, &path, Some(ADMIN), &body, &[]).await;
    error(&admin, 403, "GENERAL");
    // The bulk endpoint refuses a whole request with the same codes, without a key.
    let bulk = ofrep(&s, ONE, Some(&sdk), &ctx(json!({})), &[]).await;
    error(&bulk, 400, "TARGETING_KEY_MISSING");
    assert!(bulk.body.get("key").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_answers_every_flag_with_an_etag_and_304_until_something_changes() {
    let (s, sdk) = server_with_flags().await;
    let body = ctx(json!({"targetingKey": "user-1", "country": "NL"}));
    let first = ofrep(&s, ONE, Some(&sdk), &body, &[]).await;
    let answer = first.ok(200);
    let flags = answer["flags"].as_array().unwrap();
    let keys: Vec<&str> = flags.iter().map(|f| f["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["checkout", "theme"]);
    assert!(flags.iter().all(|f| f["variant"].is_string()));
    assert_eq!(answer["metadata"]["environment"], "production");
    let stream = &answer["eventStreams"][0];
    assert_eq!(stream["type"], "sse");
    assert_eq!(stream["inactivityDelaySec"], 120);
    let url = stream["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/ofrep/v1/events?ticket=", s.base)),
        "{url}"
    );
    assert!(!url.contains(&sdk), "the URL never carries the secret");
    let etag = first.headers["etag"].to_str().unwrap().to_owned();

    let same = ofrep(&s, ONE, Some(&sdk), &body, &[("If-None-Match", &etag)]).await;
    assert_eq!(same.status.as_u16(), 304);
    assert_eq!(same.headers["etag"].to_str().unwrap(), etag);
    let other_context = ofrep(
        &s,
        ONE,
        Some(&sdk),
        &ctx(json!({"targetingKey": "user-2"})),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(other_context.status.as_u16(), 200, "another context");

    s.post(
        "/api/v1/flags/theme/environments/production/kill",
        json!({"reason": "INC-2"}),
    )
    .await
    .ok(200);
    let changed = ofrep(&s, ONE, Some(&sdk), &body, &[("If-None-Match", &etag)]).await;
    assert_eq!(changed.status.as_u16(), 200, "the environment changed");
    assert_ne!(changed.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(changed.body["flags"][1]["reason"], "DISABLED");
}

/// Reads an SSE response until its text contains `needle` (at most [`WAIT`]).
async fn read_until(res: reqwest::Response, needle: &str) -> (String, Instant) {
    let mut stream = res.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` within {WAIT:?}: {text}"))
            .expect("the stream stays open")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    (text, Instant::now())
}

/// A bulk answer to a page at [`APP`] with a client token: its revision and the event
/// stream it advertises.
async fn advertised_stream(s: &TestServer) -> (u64, String) {
    let client = s.client_token("production", &[APP]).await;
    let bulk = ofrep(
        s,
        ONE,
        Some(&client),
        &ctx(json!({"targetingKey": "u"})),
        &[("Origin", APP)],
    )
    .await;
    let revision = bulk.body["metadata"]["revision"].as_u64().unwrap();
    let url = bulk.body["eventStreams"][0]["url"].as_str().unwrap();
    (revision, url.to_owned())
}

/// Opens the event stream at `url` as a page at [`APP`] does.
async fn open_from_app(s: &TestServer, url: &str) -> reqwest::Response {
    s.client
        .get(url)
        .header("Origin", APP)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sends_a_refetch_event_on_the_advertised_stream() {
    let (s, _) = server_with_flags().await;
    let (_, url) = advertised_stream(&s).await;
    let res = open_from_app(&s, &url).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    let killed = tokio::spawn({
        let base = s.base.clone();
        async move {
            // After the stream is open (it was answered above), kill through the API.
            reqwest::Client::new()
                .post(format!(
                    "{base}/api/v1/flags/checkout/environments/production/kill"
                ))
                .bearer_auth(ADMIN)
                .json(&json!({"reason": "INC-7"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let (text, _) = read_until(res, "refetchEvaluation").await;
    assert_eq!(killed.await.unwrap().as_u16(), 200);
    let event = text
        .split("\n\n")
        .find(|e| e.contains("refetchEvaluation"))
        .unwrap();
    assert!(event.contains("event: message"), "{event}");
    let data: Value = serde_json::from_str(
        event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["type"], "refetchEvaluation");
    assert!(data["etag"].is_string());

    // A forged ticket is refused.
    let forged = url.replace("ticket=", "ticket=9");
    let res = s.client.get(&forged).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

/// A kill that lands between the bulk answer and the opening of its event stream (a slow
/// page, a hidden tab that closed the stream) is announced as soon as the stream opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_before_the_stream_opens_is_announced_when_it_opens() {
    let (s, _) = server_with_flags().await;
    let (revision, url) = advertised_stream(&s).await;
    assert!(url.contains(&format!("revision={revision}")), "{url}");
    // A revision that is not one is refused, naming it.
    let bad = url.replace(&format!("revision={revision}"), "revision=-1");
    let res = open_from_app(&s, &bad).await;
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errorCode"], "PARSE_ERROR");
    assert!(
        body["errorDetails"]
            .as_str()
            .unwrap()
            .starts_with("revision:"),
        "{body}"
    );
    // So is a revision given twice, in OFREP's JSON body.
    let twice = format!("{url}&revision={revision}");
    let res = open_from_app(&s, &twice).await;
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert!(
        body["errorDetails"]
            .as_str()
            .unwrap()
            .starts_with("revision: given more than once"),
        "{body}"
    );
    s.post(
        "/api/v1/flags/checkout/environments/production/kill",
        json!({"reason": "INC-8"}),
    )
    .await
    .ok(200);
    let res = open_from_app(&s, &url).await;
    assert_eq!(res.status().as_u16(), 200);
    let (text, _) = read_until(res, "refetchEvaluation").await;
    assert!(
        text.contains(&format!("\"etag\":\"{}\"", revision + 1)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_token_evaluates_its_environment_and_reads_nothing_else() {
    let (s, _) = server_with_flags().await;
    // Creation: origins are required for a client token and only for it.
    let token = |body: Value| s.post("/api/v1/tokens", body);
    let r = token(json!({"kind": "client", "environment": "production", "name": "w"})).await;
    assert_eq!(r.problem(422)["errors"][0]["field"], "origins");
    let r = token(
        json!({"kind": "client", "environment": "production", "name": "w",
                         "origins": ["https://app.example.com/path"]}),
    )
    .await;
    assert_eq!(r.fields(), ["origins[0]"]);
    let r = token(json!({"kind": "client", "name": "w", "origins": [APP]})).await;
    assert_eq!(r.fields(), ["environment"]);
    let r =
        token(json!({"kind": "sdk", "environment": "production", "name": "w", "origins": [APP]}))
            .await;
    assert_eq!(r.fields(), ["origins"]);
    let created = token(
        json!({"kind": "client", "environment": "production", "name": "web", "origins": [APP]}),
    )
    .await;
    let created = created.ok(201);
    assert_eq!(created["kind"], "client");
    assert_eq!(created["origins"], json!([APP]));
    let client = created["token"].as_str().unwrap().to_owned();
    let listed = s.get("/api/v1/tokens").await;
    assert!(listed
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "client" && t["origins"] == json!([APP])));

    let evaluated = ofrep(
        &s,
        &format!("{ONE}/theme"),
        Some(&client),
        &ctx(json!({"targetingKey": "u"})),
        &[],
    )
    .await;
    assert_eq!(evaluated.ok(200)["value"], "red");
    // Rules, segments, targets, the SDK snapshot and stream: all refused.
    for path in [
        "/api/v1/flags",
        "/api/v1/flags/checkout/environments/production",
        "/api/v1/environments/production/segments",
        "/api/v1/tokens",
        "/sdk/v1/snapshot",
        "/sdk/v1/stream",
    ] {
        let r = s.send(Method::GET, path, Some(&client), None, &[]).await;
        r.problem(403);
    }
    let playground = s
        .send(
            Method::POST,
            "/api/v1/environments/production/evaluate",
            Some(&client),
            Some(&json!({"context": {"key": "u"}})),
            &[],
        )
        .await;
    playground.problem(403);
    // It may report counters, as a browser does against the variants it was served.
    let events = s
        .send(
            Method::POST,
            "/sdk/v1/events",
            Some(&client),
            Some(&json!({"counters": [{"flag": "theme", "variation": "red", "evaluations": 0, "errors": 1}]})),
            &[],
        )
        .await;
    events.ok(202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_exactly_the_client_tokens_origins() {
    let (s, sdk) = server_with_flags().await;
    let client = s.client_token("production", &[APP]).await;
    let preflight = |origin: &'static str| {
        s.client
            .request(Method::OPTIONS, s.url(ONE))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight(APP).await.unwrap();
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], APP);
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    let other = preflight("https://evil.example").await.unwrap();
    assert_eq!(other.status().as_u16(), 403);
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let body = ctx(json!({"targetingKey": "u"}));
    let from_app = ofrep(&s, ONE, Some(&client), &body, &[("Origin", APP)]).await;
    assert_eq!(from_app.status.as_u16(), 200);
    assert_eq!(from_app.headers["access-control-allow-origin"], APP);
    let exposed = from_app.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("etag"), "{exposed}");
    // An error is readable by the page too.
    let missing = ofrep(
        &s,
        &format!("{ONE}/nope"),
        Some(&client),
        &body,
        &[("Origin", APP)],
    )
    .await;
    error(&missing, 404, "FLAG_NOT_FOUND");
    assert_eq!(missing.headers["access-control-allow-origin"], APP);
    // Another origin: refused, and nothing a browser would let the page read.
    let elsewhere = ofrep(
        &s,
        ONE,
        Some(&client),
        &body,
        &[("Origin", "https://evil.example")],
    )
    .await;
    error(&elsewhere, 403, "GENERAL");
    assert!(elsewhere
        .headers
        .get("access-control-allow-origin")
        .is_none());
    // An SDK token is for servers: never CORS, never `*`.
    let sdk_from_app = ofrep(&s, ONE, Some(&sdk), &body, &[("Origin", APP)]).await;
    assert_eq!(sdk_from_app.status.as_u16(), 200);
    assert!(sdk_from_app
        .headers
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_over_the_limits_and_tokens_over_their_rate_are_refused() {
    let s = TestServer::start_tuned(|c| c.ofrep_rate_limit = 3).await;
    s.create_flag("f").await;
    let sdk = s.sdk_token("production").await;
    let path = format!("{ONE}/f");
    let big = ctx(json!({"targetingKey": "u", "blob": "x".repeat(70 * 1024)}));
    let too_big = ofrep(&s, &path, Some(&sdk), &big, &[]).await;
    let details = error(&too_big, 400, "INVALID_CONTEXT");
    assert!(details.contains("64 KiB"), "{details}");
    let many: serde_json::Map<String, Value> = (0..1001)
        .map(|i| (format!("a{i}"), json!(i)))
        .chain([("targetingKey".to_owned(), json!("u"))])
        .collect();
    let too_many = ofrep(&s, &path, Some(&sdk), &ctx(Value::Object(many)), &[]).await;
    let details = error(&too_many, 400, "INVALID_CONTEXT");
    assert!(details.contains("1000"), "{details}");

    // Two requests went through the limit above; a third passes, the fourth is refused.
    let body = ctx(json!({"targetingKey": "u"}));
    ofrep(&s, &path, Some(&sdk), &body, &[]).await.ok(200);
    let refused = ofrep(&s, &path, Some(&sdk), &body, &[]).await;
    error(&refused, 429, "GENERAL");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another token has a bucket of its own.
    let other = s.sdk_token("production").await;
    ofrep(&s, &path, Some(&other), &body, &[]).await.ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofrep_evaluations_count_toward_the_release_guard() {
    let s = TestServer::start().await;
    serving(&s, "new-checkout", json!({"variation": "off"})).await;
    let release = "/api/v1/flags/new-checkout/environments/production/release";
    s.post(
        release,
        json!({"variation": "on", "stages": [50, 100], "hold_seconds": 600,
               "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 100},
               "on_regression": "rollback"}),
    )
    .await
    .ok(201);
    let client = s.client_token("production", &[APP]).await;
    let mut served = std::collections::HashMap::<String, u64>::new();
    for i in 0..400 {
        let r = ofrep(
            &s,
            &format!("{ONE}/new-checkout"),
            Some(&client),
            &ctx(json!({"targetingKey": format!("user-{i}")})),
            &[],
        )
        .await;
        assert_eq!(r.body["reason"], "SPLIT", "{}", r.body);
        *served
            .entry(r.body["variant"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // The tally reaches the guard within a flush or two.
    let status = release_until(&s, release, "the OFREP evaluations", |r| {
        r["observed"]["on"]["evaluations"].as_u64() == Some(served["on"])
            && r["observed"]["off"]["evaluations"].as_u64() == Some(served["off"])
    })
    .await;
    assert_eq!(status["state"], "running", "{status}");
    // The browser reports errors against the variant it was served: the new one is bad.
    let errors = json!({"counters": [
        {"flag": "new-checkout", "variation": "on", "evaluations": 0, "errors": served["on"] / 4},
        {"flag": "new-checkout", "variation": "off", "evaluations": 0, "errors": 1}]});
    s.send(
        Method::POST,
        "/sdk/v1/events",
        Some(&client),
        Some(&errors),
        &[],
    )
    .await
    .ok(202);
    let started = Instant::now();
    let status = release_until(&s, release, "the rollback", |r| r["state"] == "rolled_back").await;
    assert!(
        status["reason"].as_str().unwrap().starts_with("regression"),
        "{status}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
