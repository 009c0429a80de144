//! The web console in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` (W3C WebDriver, `common::webdriver`) against the real server on a loopback
//! port. Elements are found by the accessible names the issue fixes ("Admin token", "Search
//! flags", "<flag> in <environment>", "Kill", "Reason", "Kill <flag>", "Restore", ...). Every
//! page must log no JavaScript error (nor a refused resource or CSP violation), and a
//! screenshot of each is kept under `target/console-screenshots/`.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::webdriver::{Browser, El, ESCAPE};
use crate::common::{target_dir, TestServer, ADMIN};

const XSS: &str = "<img src=x onerror=alert(1)>";

fn shots() -> PathBuf {
    target_dir().join("console-screenshots")
}

/// A server with two environments and flags to work on; `new-checkout` is on in production.
async fn server() -> TestServer {
    let server = TestServer::start().await;
    server
        .post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .ok(201);
    server
        .post(
            "/api/v1/flags",
            json!({"key": "new-checkout", "kind": "boolean", "name": "New checkout",
                   "description": XSS, "tags": ["checkout", "web"]}),
        )
        .await
        .ok(201);
    for key in ["dark-mode", "search-v2", "pricing-page"] {
        server.create_flag(key).await;
    }
    switch(&server, "new-checkout", "production", true).await;
    server
}

/// Turns a flag on or off through the API (read, change, write with If-Match).
async fn switch(server: &TestServer, key: &str, env: &str, on: bool) {
    let path = format!("/api/v1/flags/{key}/environments/{env}");
    let mut config = server.get(&path).await.ok(200).clone();
    config["enabled"] = json!(on);
    let version = config["version"].to_string();
    server
        .put(&path, config, Some(&format!("\"{version}\"")))
        .await
        .ok(200);
}

async fn enabled(server: &TestServer, key: &str, env: &str) -> bool {
    server
        .get(&format!("/api/v1/flags/{key}/environments/{env}"))
        .await
        .ok(200)["enabled"]
        == true
}

/// Signs in through the form, by the field's accessible name.
async fn sign_in(b: &Browser, server: &TestServer) {
    b.clear_cache().await; // a first visit
    b.goto(&server.base).await;
    let token = b.named("input", "Admin token").await;
    b.screenshot(&shots(), "signin").await;
    b.type_in(&token, ADMIN).await;
    let submit = b.named("button", "Sign in").await;
    b.click(&submit).await;
    b.named("input", "Search flags").await;
}

/// Asserts the page logged no error so far, and that every control shown has an
/// accessible name.
async fn no_errors(b: &Browser, page: &str) {
    let errors = b.errors().await;
    assert!(
        errors.is_empty(),
        "the {page} page logged errors: {errors:#?}"
    );
    for el in b
        .all("button, a[href], input, select, textarea, [role=switch]")
        .await
    {
        if b.displayed(&el).await && b.label(&el).await.trim().is_empty() {
            let html = b.property(&el, "outerHTML").await;
            panic!("on the {page} page a control has no accessible name: {html}");
        }
    }
}

async fn shown_flags(b: &Browser) -> Vec<String> {
    let mut keys = Vec::new();
    for row in b.all("tbody tr[data-key]").await {
        keys.push(b.attr(&row, "data-key").await.unwrap_or_default());
    }
    keys
}

/// The audit entries of a flag, newest first.
async fn actions(server: &TestServer, key: &str) -> Vec<Value> {
    server.audit(&format!("flag={key}")).await
}

async fn goto_hash(b: &Browser, server: &TestServer, hash: &str) {
    b.goto(&format!("{}/#/{hash}", server.base)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_search_switch_kill_restore_and_see_changes_live() {
    let server = server().await;
    let _one = crate::common::webdriver::ONE_BROWSER.lock().await;
    let b = Browser::start(1440, 960, shots()).await;
    sign_in(&b, &server).await;
    no_errors(&b, "sign-in").await;

    // Search by key: one row left.
    let search = b.named("input", "Search flags").await;
    b.type_in(&search, "new-check").await;
    b.until("the search leaves one flag", || async {
        shown_flags(&b).await == ["new-checkout"]
    })
    .await;

    // The XSS description is text, and no element came of it.
    let desc = b.all("tr[data-key='new-checkout'] .flag-desc").await;
    assert_eq!(b.text(&desc[0]).await, XSS);
    assert_eq!(
        b.exec("return document.querySelectorAll('img').length;", vec![])
            .await,
        0
    );

    // The switch: role switch, named "<key> in <env>"; off it goes.
    let sw = b.named("[role=switch]", "new-checkout in production").await;
    assert_eq!(b.role(&sw).await, "switch");
    assert_eq!(b.attr(&sw, "aria-checked").await.as_deref(), Some("true"));
    b.screenshot(&shots(), "flags").await;
    b.click(&sw).await;
    b.until("the flag is off on the server", || async {
        !enabled(&server, "new-checkout", "production").await
    })
    .await;
    b.until("the switch says off", || async {
        let sw = b.named("[role=switch]", "new-checkout in production").await;
        b.attr(&sw, "aria-checked").await.as_deref() == Some("false")
    })
    .await;
    switch(&server, "new-checkout", "production", true).await;

    // The flag's page: Kill with a reason, by the names the issue fixes.
    let link = b.named("a", "new-checkout").await;
    b.click(&link).await;
    let kill = b.named("button", "Kill").await;
    // Escape closes the dialog and gives the focus back.
    b.click(&kill).await;
    b.named("textarea", "Reason").await;
    b.keys(ESCAPE).await;
    b.until("Escape closes the dialog", || async {
        b.named_now("button", "Kill new-checkout").await.is_none()
    })
    .await;
    assert_eq!(b.label(&b.focused().await).await, "Kill");

    b.click(&kill).await;
    let reason = b.named("textarea", "Reason").await;
    b.type_in(&reason, "INC-7: checkout errors").await;
    b.screenshot(&shots(), "kill-dialog").await;
    let confirm = b.named("button", "Kill new-checkout").await;
    b.click(&confirm).await;
    b.until("the kill is in the audit log", || async {
        let entries = actions(&server, "new-checkout").await;
        entries[0]["action"] == "flag.kill" && entries[0]["reason"] == "INC-7: checkout errors"
    })
    .await;
    assert!(!enabled(&server, "new-checkout", "production").await);

    // Restore, likewise.
    let restore = b.named("button", "Restore").await;
    b.screenshot(&shots(), "flag-killed").await;
    b.click(&restore).await;
    let reason = b.named("textarea", "Reason").await;
    b.type_in(&reason, "INC-7 fixed").await;
    let confirm = b.named("button", "Restore new-checkout").await;
    b.click(&confirm).await;
    b.until("the restore is in the audit log", || async {
        actions(&server, "new-checkout").await[0]["action"] == "flag.restore"
    })
    .await;
    assert!(enabled(&server, "new-checkout", "production").await);
    b.named("button", "Kill").await;

    // Someone else's change through the API appears without a reload: a kill on this page,
    // a new name on the list.
    server
        .post(
            "/api/v1/flags/new-checkout/environments/production/kill",
            json!({"reason": "from the CLI"}),
        )
        .await
        .ok(200);
    b.named("button", "Restore").await;
    b.until_text("from the CLI").await;
    goto_hash(&b, &server, "flags").await;
    b.named("input", "Search flags").await;
    server
        .patch(
            "/api/v1/flags/dark-mode",
            json!({"name": "Dark mode, renamed live"}),
        )
        .await
        .ok(200);
    b.until_text("Dark mode, renamed live").await;
    let sw = b.named("[role=switch]", "new-checkout in production").await;
    assert_eq!(b.attr(&sw, "aria-checked").await.as_deref(), Some("false"));
    no_errors(&b, "flags").await;

    // Signing out ends the session: the next load asks for the token again.
    let out = b.named("button", "Sign out").await;
    b.click(&out).await;
    b.named("input", "Admin token").await;
    b.goto(&server.base).await;
    b.named("input", "Admin token").await;
    no_errors(&b, "signed out").await;
}

/// The option of a select with this value.
async fn choose(b: &Browser, select: &El, value: &str) {
    let options = b.all_in(select, &format!("option[value='{value}']")).await;
    b.click(&options[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_errors_land_on_their_field_and_every_page_works() {
    let server = server().await;
    // A release running, with counters reported by an SDK.
    server
        .post(
            "/api/v1/flags/new-checkout/environments/production/release",
            json!({"variation": "on", "stages": [10, 50, 100], "hold_seconds": 3600,
                   "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 100}}),
        )
        .await
        .ok(201);
    let sdk = server.sdk_token("production").await;
    let counters = json!({"counters": [
        {"flag": "new-checkout", "variation": "on", "evaluations": 400, "errors": 6},
        {"flag": "new-checkout", "variation": "off", "evaluations": 3600, "errors": 36}]});
    let res = server
        .client
        .post(server.url("/sdk/v1/events"))
        .bearer_auth(&sdk)
        .json(&counters)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    server
        .post(
            "/api/v1/environments/production/segments",
            json!({"key": "beta-testers", "included": ["user-1"], "excluded": [], "rules": []}),
        )
        .await
        .ok(201);

    let _one = crate::common::webdriver::ONE_BROWSER.lock().await;
    let b = Browser::start(1440, 1100, shots()).await;
    sign_in(&b, &server).await;
    goto_hash(&b, &server, "flags/new-checkout/production").await;

    // The release: its stage, the chart of error rates per variation, and a person's move.
    b.until_text("on at 10% (stage 1 of 3)").await;
    let chart = b.all("svg.chart").await;
    let chart_name = b.attr(&chart[0], "aria-label").await.unwrap_or_default();
    assert!(chart_name.contains("on 1.50%"), "{chart_name}");
    let advance = b.named("button", "Advance").await;
    b.click(&advance).await;
    b.until_text("on at 50% (stage 2 of 3)").await;
    b.screenshot(&shots(), "flag").await;
    no_errors(&b, "flag").await;

    // A rule whose regex does not compile: the API's error shows on the values field.
    let add = b.named("button", "Add rule").await;
    b.click(&add).await;
    let attribute = b.named("input", "Attribute").await;
    b.type_in(&attribute, "email").await;
    let op = b.named("select", "Operator").await;
    choose(&b, &op, "matches").await;
    let values = b.named("input, textarea", "Values").await;
    b.type_in(&values, "(unclosed").await;
    let save = b.named("button", "Save changes").await;
    b.click(&save).await;
    b.until("the values field is marked invalid", || async {
        let values = b.named("input, textarea", "Values").await;
        b.attr(&values, "aria-invalid").await.as_deref() == Some("true")
    })
    .await;
    let values = b.named("input, textarea", "Values").await;
    let error_id = format!("{}-error", b.attr(&values, "id").await.unwrap());
    let error = b.all(&format!("#{error_id}")).await;
    let message = b.text(&error[0]).await;
    assert!(!message.is_empty(), "the field names the problem");
    b.screenshot(&shots(), "flag-validation").await;
    // Nothing was saved.
    let config = server
        .get("/api/v1/flags/new-checkout/environments/production")
        .await;
    assert!(
        config.body.get("rules").is_none_or(|r| r == &json!([])),
        "{}",
        config.body
    );
    // Fixed, it saves.
    b.clear(&values).await;
    b.type_in(&values, "@example\\.com$").await;
    let save = b.named("button", "Save changes").await;
    b.click(&save).await;
    b.until("the rule is saved", || async {
        let config = server
            .get("/api/v1/flags/new-checkout/environments/production")
            .await;
        config.body["rules"][0]["clauses"][0]["values"] == json!(["@example\\.com$"])
    })
    .await;
    b.until("the page has read the saved flag again", || async {
        b.attr(&save, "disabled").await.is_none()
    })
    .await;
    no_errors(&b, "flag after saving").await;

    // A stale edit: someone else saves meanwhile; saving overwrites nothing, says who
    // changed what, and offers to reload.
    let rule_id = b.named("input", "Rule id").await;
    b.type_in(&rule_id, "example-staff").await;
    let path = "/api/v1/flags/new-checkout/environments/production";
    let mut config = server.get(path).await.ok(200).clone();
    config["targets"] = json!([{"variation": "on", "keys": ["vip-1"]}]);
    let version = format!("\"{}\"", config["version"]);
    server.put(path, config, Some(&version)).await.ok(200);
    let save = b.named("button", "Save changes").await;
    b.click(&save).await;
    let reload = b.named("button", "Reload the flag").await;
    b.until_text("Someone changed this flag meanwhile").await;
    b.until_text("flag.config.update").await;
    b.screenshot(&shots(), "flag-stale").await;
    b.click(&reload).await;
    b.until("the reloaded page shows their target", || async {
        let keys = b.named("input, textarea", "Context keys served on").await;
        b.property(&keys, "value").await == "vip-1"
    })
    .await;
    let saved = server.get(path).await;
    assert!(saved.body["rules"][0].get("id").is_none(), "{}", saved.body);

    // The playground.
    goto_hash(&b, &server, "playground").await;
    let evaluate = b.named("button", "Evaluate").await;
    b.screenshot(&shots(), "playground-empty").await;
    b.click(&evaluate).await;
    b.until_text("Results in production").await;
    b.until_text("FALLTHROUGH").await;
    b.screenshot(&shots(), "playground").await;
    no_errors(&b, "playground").await;

    // Every other page renders without an error, with a screenshot.
    for (hash, name, shows) in [
        ("audit", "audit", "release.advance"),
        ("releases", "releases", "on at 50%"),
        ("segments", "segments", "beta-testers"),
        ("segments/beta-testers", "segment", "Included context keys"),
        (
            "compare/new-checkout",
            "compare",
            "new-checkout across environments",
        ),
        ("tokens", "tokens", "Create a token"),
        ("webhooks", "webhooks", "Add a webhook"),
    ] {
        goto_hash(&b, &server, hash).await;
        b.until_text(shows).await;
        b.screenshot(&shots(), name).await;
        no_errors(&b, name).await;
    }
    // Dark, as the system asks.
    b.prefer_dark().await;
    goto_hash(&b, &server, "flags/new-checkout/production").await;
    b.named("button", "Kill").await;
    b.screenshot(&shots(), "flag-dark").await;
    goto_hash(&b, &server, "flags").await;
    b.named("[role=switch]", "new-checkout in production").await;
    b.screenshot(&shots(), "flags-dark").await;
    no_errors(&b, "dark").await;
}
