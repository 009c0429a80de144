//! The console over HTTP: its pages and their security headers, the session cookie (sign
//! in, CSRF, sign out, a revoked token), the Bearer path unchanged, and the admin event
//! stream `GET /api/v1/events`. The browser tests are in `console_browser`.

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use serde_json::{json, Value};

use crate::common::live::WAIT;
use crate::common::{read, Reply, TestServer, ADMIN};

/// Signs in with `token`; returns the `Cookie` header value and the CSRF value.
async fn sign_in(server: &TestServer, token: &str) -> (String, String) {
    let res = server
        .client
        .post(server.url("/console/session"))
        .header("Origin", &server.base)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    let set_cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let reply = read(res).await;
    reply.ok(200);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    assert!(
        !set_cookie.contains(token),
        "the cookie never holds the token"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    (cookie, reply.body["csrf"].as_str().unwrap().to_owned())
}

/// A request with the session cookie and the headers given.
async fn with_cookie(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut req = server
        .client
        .request(method, server.url(path))
        .header(COOKIE, cookie);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

fn assert_strict(headers: &HeaderMap, what: &str) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
}

#[tokio::test]
async fn the_console_is_served_at_the_root_with_a_strict_policy_compressed_and_cached() {
    let server = TestServer::start().await;
    let page = server
        .client
        .get(server.url("/"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(page.headers()["content-encoding"], "gzip");
    assert_strict(page.headers(), "the page");
    let etag = page.headers()["etag"].clone();
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");
    assert!(!html.contains("style="), "no inline style: {html}");

    let again = server
        .client
        .get(server.url("/"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304, "the browser's copy is still good");

    // Every script and the style sheet the page names is served, with the same policy.
    for asset in [
        "/assets/app.css",
        "/assets/js/app.js",
        "/assets/js/flags.js",
    ] {
        let res = server.client.get(server.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert!(res.headers().contains_key("etag"), "{asset}");
        assert_strict(res.headers(), asset);
    }
    let missing = server.get("/assets/js/nothing.js").await;
    missing.problem(404);
}

#[tokio::test]
async fn a_session_presents_an_admin_token_and_changes_need_the_csrf_header() {
    let server = TestServer::start().await;
    // Signed out: no session (204), and the API answers 401.
    let none = server.get("/console/session").await;
    assert_eq!(none.status, 204);
    let anonymous = server
        .client
        .get(server.url("/api/v1/flags"))
        .send()
        .await
        .unwrap();
    read(anonymous).await.problem(401);
    let refused = server
        .client
        .post(server.url("/console/session"))
        .header("Origin", &server.base)
        .json(&json!({"token": "not-a-token"}))
        .send()
        .await
        .unwrap();
    read(refused).await.problem(401);
    let sdk = server.sdk_token("production").await;
    let sdk_refused = server
        .client
        .post(server.url("/console/session"))
        .json(&json!({ "token": sdk }))
        .send()
        .await
        .unwrap();
    read(sdk_refused).await.problem(403);

    let (cookie, csrf) = sign_in(&server, ADMIN).await;
    let me = with_cookie(
        &server,
        reqwest::Method::GET,
        "/console/session",
        &cookie,
        &[],
        None,
    )
    .await;
    assert_eq!(me.ok(200)["csrf"], csrf.as_str());
    // Reads need nothing more.
    let flags = with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/flags",
        &cookie,
        &[],
        None,
    )
    .await;
    flags.ok(200);

    let create = json!({"key": "from-console", "kind": "boolean"});
    let post = reqwest::Method::POST;
    // A change without the CSRF header, with a wrong one, or from another origin: 403,
    // and nothing is created.
    for headers in [
        vec![],
        vec![("X-CSRF-Token", "0123")],
        vec![
            ("X-CSRF-Token", csrf.as_str()),
            ("Origin", "https://evil.example"),
        ],
        vec![
            ("X-CSRF-Token", csrf.as_str()),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    ] {
        let r = with_cookie(
            &server,
            post.clone(),
            "/api/v1/flags",
            &cookie,
            &headers,
            Some(create.clone()),
        )
        .await;
        r.problem(403);
    }
    server.get("/api/v1/flags/from-console").await.problem(404);
    // With it, from this origin: created, and audited under the token's name.
    let origin = server.base.clone();
    let ok = with_cookie(
        &server,
        post.clone(),
        "/api/v1/flags",
        &cookie,
        &[("X-CSRF-Token", &csrf), ("Origin", &origin)],
        Some(create.clone()),
    )
    .await;
    ok.ok(201);
    let audit = server.audit("flag=from-console").await;
    assert_eq!(audit[0]["actor"], "bootstrap");

    // The Bearer path is as it was: no cookie, no CSRF header needed.
    server.create_flag("from-bearer").await;

    // A forged or altered cookie is no session.
    let forged = cookie.replacen("flag_session=1.", "flag_session=2.", 1);
    with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/flags",
        &forged,
        &[],
        None,
    )
    .await
    .problem(401);

    // Sign out: the cookie is cleared.
    let res = server
        .client
        .delete(server.url("/console/session"))
        .header(COOKIE, &cookie)
        .header("Origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cleared = res.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("flag_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn a_revoked_tokens_sessions_end_everywhere() {
    let server = TestServer::start().await;
    let created = server
        .post("/api/v1/tokens", json!({"kind": "admin", "name": "alice"}))
        .await;
    let secret = created.ok(201)["token"].as_str().unwrap().to_owned();
    let id = created.body["id"].clone();
    let (cookie, _) = sign_in(&server, &secret).await;
    with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/flags",
        &cookie,
        &[],
        None,
    )
    .await
    .ok(200);
    server.delete(&format!("/api/v1/tokens/{id}")).await.ok(204);
    with_cookie(
        &server,
        reqwest::Method::GET,
        "/api/v1/flags",
        &cookie,
        &[],
        None,
    )
    .await
    .problem(401);
}

/// The next `audit` event of an SSE body, as JSON.
async fn next_audit(
    events: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buffer: &mut String,
) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(data) = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .filter(|_| frame.contains("event: audit"))
            {
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the stream stays open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_admin_event_stream_sends_every_audit_entry_as_it_commits() {
    let server = TestServer::start().await;
    server.create_flag("before").await;
    // An SDK token may not follow it.
    let sdk = server.sdk_token("production").await;
    let res = server
        .client
        .get(server.url("/api/v1/events"))
        .bearer_auth(&sdk)
        .send()
        .await
        .unwrap();
    read(res).await.problem(403);

    let res = server
        .client
        .get(server.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut events = res.bytes_stream();
    let mut buffer = String::new();
    // Entries from before the stream opened are not sent again; new ones are, in order.
    server.create_flag("after").await;
    server
        .post(
            "/api/v1/flags/after/environments/production/kill",
            json!({"reason": "INC-9"}),
        )
        .await
        .ok(200);
    let created = next_audit(&mut events, &mut buffer).await;
    assert_eq!(
        (created["action"].as_str(), created["flag"].as_str()),
        (Some("flag.create"), Some("after"))
    );
    let killed = next_audit(&mut events, &mut buffer).await;
    assert_eq!(killed["action"], "flag.kill");
    assert_eq!(killed["reason"], "INC-9");
    assert!(killed["id"].as_i64() > created["id"].as_i64());

    // Resuming with Last-Event-ID sends what came after it.
    let res = server
        .client
        .get(server.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .header("Last-Event-ID", created["id"].to_string())
        .send()
        .await
        .unwrap();
    let mut resumed = res.bytes_stream();
    let mut buffer = String::new();
    assert_eq!(
        next_audit(&mut resumed, &mut buffer).await["id"],
        killed["id"]
    );
}
