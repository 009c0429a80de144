//! `flag alert bind|list|unbind`, an alert acting through the binding, and `flag log` by time
//! showing it as done by the alert.

use serde_json::{json, Value};

use super::common::*;

/// Posts Alertmanager's notification that `CheckoutErrors` fires, with `token`.
fn fire(s: &Server, token: &str) -> Value {
    let payload = json!({
        "version": "4", "status": "firing", "receiver": "flags",
        "alerts": [{"status": "firing",
                    "labels": {"alertname": "CheckoutErrors", "flag": "new-checkout"},
                    "annotations": {"summary": "checkout errors above 5%"},
                    "startsAt": "2026-12-01T03:00:00Z", "fingerprint": "c0ffee"}]
    });
    let res = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/integrations/alertmanager", s.base))
        .bearer_auth(token)
        .json(&payload)
        .send()
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().unwrap()
}

#[test]
fn bind_an_alert_see_it_kill_and_find_it_in_the_log_by_time() {
    let s = Server::start();
    s.create("new-checkout");
    s.flag(&["on", "new-checkout"]).ok();
    let out = s.flag(&[
        "alert",
        "bind",
        "new-checkout",
        "--match",
        "alertname=CheckoutErrors",
        "--on-resolved",
        "restore",
    ]);
    assert!(
        out.ok()
            .contains("alerts {alertname=CheckoutErrors} → kill new-checkout in production (on resolved: restore)"),
        "{}",
        out.stdout
    );
    s.flag(&[
        "alert",
        "bind",
        "--flag-label",
        "flag",
        "--match",
        "alertname=~Checkout.*",
        "--action",
        "pause_release",
    ])
    .ok();
    let list = s.flag(&["alert", "list"]).ok().to_owned();
    assert!(list.contains("MATCHERS"), "{list}");
    assert!(
        list.contains("alertname=~Checkout.*") && list.contains("label:flag"),
        "{list}"
    );
    let bindings = s.flag(&["alert", "list", "--json"]).json();
    assert_eq!(bindings.as_array().unwrap().len(), 2);
    let second = bindings[1]["id"].to_string();
    s.flag(&["alert", "unbind", &second]).ok();
    s.flag(&["alert", "unbind", &second]).fails(3);
    let usage = s.flag(&[
        "alert",
        "bind",
        "new-checkout",
        "--match",
        "alertname=X",
        "--action",
        "explode",
    ]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    s.flag(&["alert", "bind", "no-such-flag", "--match", "alertname=X"])
        .fails(1);

    let created = s
        .flag(&[
            "token",
            "create",
            "--kind",
            "integration",
            "--name",
            "am",
            "--json",
        ])
        .json();
    assert_eq!(created["environment"], Value::Null);
    let receipt = fire(&s, created["token"].as_str().unwrap());
    assert_eq!(receipt["actions"][0]["outcome"], "acted");
    assert_eq!(s.config("new-checkout")["enabled"], false);

    let log = s
        .flag(&["log", "new-checkout", "--since", "1h"])
        .ok()
        .to_owned();
    let kill = log
        .lines()
        .find(|l| l.contains("flag.kill"))
        .unwrap_or_else(|| panic!("no kill in\n{log}"));
    assert!(
        kill.contains("alertmanager:am") && kill.contains("alert CheckoutErrors firing"),
        "{kill}"
    );
    // Around a time long past: nothing; a window around now: the kill.
    let old = s
        .flag(&["log", "--around", "2026-01-01T03:00Z", "--json"])
        .json();
    assert_eq!(old["entries"], json!([]));
    let now = s
        .flag(&["log", "--since", "2026-01-01T00:00Z", "--json"])
        .json();
    assert!(now["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "flag.kill" && e["actor"] == "alertmanager:am"));
    s.flag(&["log", "--since", "yesterday"]).fails(1);
}
