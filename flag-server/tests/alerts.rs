//! Alerts → kill switch over HTTP: Alertmanager's webhook payload (version 4) with an
//! integration token, bindings, one action and one audit row per alert occurrence, a
//! person's restore kept through repeats, restore on resolve, release actions, bad payloads
//! refused with nothing changed, and what an integration token cannot do. The same with the
//! real Alertmanager: `alertmanager.rs`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{self, TestServer};
use crate::releases::{flag_serving_off, plan, RELEASE};

pub(crate) const WEBHOOK: &str = "/api/v1/integrations/alertmanager";
pub(crate) const BINDINGS: &str = "/api/v1/integrations/alertmanager/bindings";
const CONFIG: &str = "/api/v1/flags/new-checkout/environments/production";

/// Creates an integration token named `name`; returns its secret.
pub(crate) async fn integration_token(server: &TestServer, name: &str) -> String {
    let r = server
        .post(
            "/api/v1/tokens",
            json!({"kind": "integration", "name": name}),
        )
        .await;
    r.ok(201)["token"].as_str().unwrap().to_owned()
}

/// One alert of a notification.
fn alert(status: &str, labels: Value, fingerprint: &str) -> Value {
    json!({
        "status": status, "labels": labels,
        "annotations": {"summary": "checkout error rate above 5%"},
        "startsAt": "2026-12-01T03:00:00.000Z",
        "endsAt": if status == "resolved" { "2026-12-01T03:10:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus.example/graph?g0.expr=errors",
        "fingerprint": fingerprint,
    })
}

/// A notification as Alertmanager sends it (every field of payload version 4).
fn notification(status: &str, alerts: Vec<Value>) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"CheckoutErrors\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "flags",
        "groupLabels": {"alertname": "CheckoutErrors"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example", "alerts": alerts,
    })
}

fn checkout_alert(status: &str) -> Value {
    notification(
        status,
        vec![alert(
            status,
            json!({"alertname": "CheckoutErrors", "severity": "page"}),
            "fp-checkout",
        )],
    )
}

async fn notify(server: &TestServer, token: &str, payload: &Value) -> common::Reply {
    server
        .send(Method::POST, WEBHOOK, Some(token), Some(payload), &[])
        .await
}

/// An enabled `new-checkout`, a binding killing it on `CheckoutErrors` (resolution: `on_resolved`), and an
/// integration token `am`.
async fn bound(server: &TestServer, on_resolved: &str) -> String {
    crate::releases::serving(server, "new-checkout", json!({"variation": "on"})).await;
    server
        .post(
            BINDINGS,
            json!({"matchers": {"alertname": "CheckoutErrors"}, "flag": "new-checkout",
                   "environment": "production", "action": "kill", "on_resolved": on_resolved}),
        )
        .await
        .ok(201);
    integration_token(server, "am").await
}

async fn enabled(server: &TestServer) -> bool {
    server.get(CONFIG).await.ok(200)["enabled"] == true
}

async fn audit_actions(server: &TestServer) -> Vec<(String, String)> {
    server
        .audit("flag=new-checkout")
        .await
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_firing_alert_kills_once_however_often_it_repeats_and_a_persons_restore_stays() {
    let s = TestServer::start().await;
    let am = bound(&s, "nothing").await;
    let firing = checkout_alert("firing");

    let first = notify(&s, &am, &firing).await;
    let receipt = first.ok(200);
    assert_eq!(receipt["alerts"], 1);
    assert_eq!(receipt["actions"][0]["outcome"], "acted");
    assert_eq!(receipt["actions"][0]["flag"], "new-checkout");
    assert!(!enabled(&s).await);

    // Alertmanager repeats the notification: nothing more happens.
    let again = notify(&s, &am, &firing).await;
    assert_eq!(again.ok(200)["actions"][0]["outcome"], "repeat");
    let kills: Vec<Value> = s
        .audit("flag=new-checkout")
        .await
        .into_iter()
        .filter(|e| e["action"] == "flag.kill")
        .collect();
    assert_eq!(kills.len(), 1, "one kill, one audit row: {kills:?}");
    assert_eq!(kills[0]["actor"], "alertmanager:am");
    let reason = kills[0]["reason"].as_str().unwrap();
    for part in [
        "CheckoutErrors",
        "checkout error rate above 5%",
        "fp-checkout",
        "http://prometheus.example/graph?g0.expr=errors",
    ] {
        assert!(
            reason.contains(part),
            "`{part}` not in the reason `{reason}`"
        );
    }

    // A person restores; the same occurrence repeated does not kill it again.
    s.post(
        &format!("{CONFIG}/restore"),
        json!({"reason": "false alarm"}),
    )
    .await
    .ok(200);
    assert_eq!(
        notify(&s, &am, &firing).await.ok(200)["actions"][0]["outcome"],
        "repeat"
    );
    assert!(enabled(&s).await);

    // A new occurrence (it started again) acts again.
    let mut later = firing.clone();
    later["alerts"][0]["startsAt"] = json!("2026-12-01T05:00:00Z");
    assert_eq!(
        notify(&s, &am, &later).await.ok(200)["actions"][0]["outcome"],
        "acted"
    );
    assert!(!enabled(&s).await);
}

#[tokio::test]
async fn on_resolved_restore_puts_the_flag_back_once_unless_a_person_changed_it() {
    let s = TestServer::start().await;
    let am = bound(&s, "restore").await;
    notify(&s, &am, &checkout_alert("firing")).await.ok(200);
    assert!(!enabled(&s).await);
    let resolved = checkout_alert("resolved");
    assert_eq!(
        notify(&s, &am, &resolved).await.ok(200)["actions"][0]["outcome"],
        "restored"
    );
    assert!(enabled(&s).await);
    assert_eq!(
        notify(&s, &am, &resolved).await.ok(200)["actions"][0]["outcome"],
        "repeat"
    );
    let actions = audit_actions(&s).await;
    assert_eq!(
        actions[..2],
        [
            ("flag.restore".to_owned(), "alertmanager:am".to_owned()),
            ("flag.kill".to_owned(), "alertmanager:am".to_owned())
        ]
    );

    // Killed by the next occurrence, then restored and killed again by a person: the
    // resolution leaves the person's kill alone.
    let mut firing = checkout_alert("firing");
    firing["alerts"][0]["startsAt"] = json!("2026-12-01T06:00:00Z");
    notify(&s, &am, &firing).await.ok(200);
    s.post(&format!("{CONFIG}/restore"), json!({}))
        .await
        .ok(200);
    s.post(&format!("{CONFIG}/kill"), json!({"reason": "INC-7"}))
        .await
        .ok(200);
    let mut resolved = checkout_alert("resolved");
    resolved["alerts"][0]["startsAt"] = json!("2026-12-01T06:00:00Z");
    assert_eq!(
        notify(&s, &am, &resolved).await.ok(200)["actions"][0]["outcome"],
        "kept"
    );
    assert!(!enabled(&s).await);
}

#[tokio::test]
async fn occurrences_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(&dir);
    let am = {
        let s = TestServer::on(db.clone(), tempfile::tempdir().unwrap(), |_| {}).await;
        let am = bound(&s, "nothing").await;
        notify(&s, &am, &checkout_alert("firing")).await.ok(200);
        s.post(&format!("{CONFIG}/restore"), json!({}))
            .await
            .ok(200);
        s.running.handle.stop(true).await;
        am
    };
    let s = TestServer::on(db, dir, |_| {}).await;
    assert_eq!(
        notify(&s, &am, &checkout_alert("firing")).await.ok(200)["actions"][0]["outcome"],
        "repeat"
    );
    assert!(enabled(&s).await);
}

#[tokio::test]
async fn one_binding_takes_flag_and_environment_from_the_alerts_labels() {
    let s = TestServer::start().await;
    crate::releases::serving(&s, "new-checkout", json!({"variation": "on"})).await;
    crate::releases::serving(&s, "search-v2", json!({"variation": "on"})).await;
    let b = s
        .post(
            BINDINGS,
            json!({"matchers": {"severity": "page", "alertname": {"regex": ".*Errors"}},
                   "flag": {"label": "flag"}, "environment": {"label": "environment"},
                   "action": "kill"}),
        )
        .await;
    let binding = b.ok(201).clone();
    assert_eq!(binding["on_resolved"], "nothing");
    assert_eq!(binding["flag"], json!({"label": "flag"}));
    let am = integration_token(&s, "am").await;
    let labels = |name: &str, flag: &str| json!({"alertname": name, "severity": "page", "flag": flag, "environment": "production"});
    let payload = notification(
        "firing",
        vec![
            alert("firing", labels("CheckoutErrors", "new-checkout"), "f1"),
            alert("firing", labels("SearchErrors", "search-v2"), "f2"),
            alert("firing", labels("DiskFull", "search-v2"), "f3"),
        ],
    );
    let r = notify(&s, &am, &payload).await;
    let receipt = r.ok(200);
    let acted: Vec<&str> = receipt["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["flag"].as_str().unwrap())
        .collect();
    assert_eq!(acted, ["new-checkout", "search-v2"]);
    // A firing alert no binding matches changes nothing and is listed.
    assert_eq!(
        receipt["unmatched"],
        json!([{"alert": "DiskFull", "fingerprint": "f3", "status": "firing"}])
    );
    for flag in ["new-checkout", "search-v2"] {
        let config = s
            .get(&format!("/api/v1/flags/{flag}/environments/production"))
            .await;
        assert_eq!(config.ok(200)["enabled"], false, "{flag}");
    }
    let listed = s.get(BINDINGS).await;
    assert_eq!(listed.ok(200).as_array().unwrap().len(), 1);
    let id = binding["id"].as_i64().unwrap();
    s.delete(&format!("{BINDINGS}/{id}")).await.ok(200);
    s.delete(&format!("{BINDINGS}/{id}")).await.problem(404);
    assert_eq!(s.get(BINDINGS).await.ok(200), &json!([]));
}

#[tokio::test]
async fn release_actions_pause_and_roll_back_and_resume_on_resolve() {
    let s = TestServer::start().await;
    flag_serving_off(&s).await;
    s.post(RELEASE, plan("rollback")).await.ok(201);
    let am = integration_token(&s, "am").await;
    s.post(
        BINDINGS,
        json!({"matchers": {"alertname": "CheckoutSlow"}, "flag": "new-checkout",
               "environment": "production", "action": "pause_release", "on_resolved": "restore"}),
    )
    .await
    .ok(201);
    let slow = |status: &str| {
        notification(
            status,
            vec![alert(status, json!({"alertname": "CheckoutSlow"}), "slow")],
        )
    };
    notify(&s, &am, &slow("firing")).await.ok(200);
    assert_eq!(s.get(RELEASE).await.ok(200)["state"], "paused");
    notify(&s, &am, &slow("resolved")).await.ok(200);
    assert_eq!(s.get(RELEASE).await.ok(200)["state"], "running");

    s.post(
        BINDINGS,
        json!({"matchers": {"alertname": "CheckoutDown"}, "flag": "new-checkout",
               "environment": "production", "action": "rollback_release"}),
    )
    .await
    .ok(201);
    let down = notification(
        "firing",
        vec![alert(
            "firing",
            json!({"alertname": "CheckoutDown"}),
            "down",
        )],
    );
    let r = notify(&s, &am, &down).await;
    assert_eq!(r.ok(200)["actions"][0]["outcome"], "acted");
    let release = s.get(RELEASE).await.ok(200).clone();
    assert_eq!(release["state"], "rolled_back");
    assert!(release["reason"].as_str().unwrap().contains("CheckoutDown"));
    assert_eq!(
        s.get(CONFIG).await.ok(200)["fallthrough"],
        json!({"variation": "off"})
    );
    // Nothing left to roll back: the repeat and a new occurrence change nothing.
    let mut later = down.clone();
    later["alerts"][0]["startsAt"] = json!("2026-12-01T09:00:00Z");
    assert_eq!(
        notify(&s, &am, &later).await.ok(200)["actions"][0]["outcome"],
        "unchanged"
    );
}

#[tokio::test]
async fn bad_payloads_get_a_4xx_naming_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    let am = bound(&s, "nothing").await;
    s.post(
        BINDINGS,
        json!({"matchers": {"team": "search"}, "flag": {"label": "flag"},
               "environment": "production", "action": "kill"}),
    )
    .await
    .ok(201);
    let before = s.audit("").await.len();
    let mut wrong_version = checkout_alert("firing");
    wrong_version["version"] = json!("3");
    let mut no_fingerprint = checkout_alert("firing");
    no_fingerprint["alerts"][0]
        .as_object_mut()
        .unwrap()
        .remove("fingerprint");
    let mut bad_start = checkout_alert("firing");
    bad_start["alerts"][0]["startsAt"] = json!("yesterday");
    // The checkout alert would act, but the group's other alert is bad: nothing acts.
    let mut no_flag_label = checkout_alert("firing");
    no_flag_label["alerts"].as_array_mut().unwrap().push(alert(
        "firing",
        json!({"alertname": "X", "team": "search"}),
        "f9",
    ));
    let mut unknown_flag = no_flag_label.clone();
    unknown_flag["alerts"][1]["labels"]["flag"] = json!("no-such-flag");
    let cases = [
        (json!({"text": "not alertmanager"}), 422, "version"),
        (wrong_version, 422, "version"),
        (no_fingerprint, 422, "alerts[0].fingerprint"),
        (bad_start, 422, "alerts[0].startsAt"),
        (no_flag_label, 422, "alerts[1].labels.flag"),
        (unknown_flag, 422, "alerts[1].labels.flag"),
    ];
    for (payload, status, field) in cases {
        let r = notify(&s, &am, &payload).await;
        r.problem(status);
        assert!(
            r.fields().contains(&field.to_owned()),
            "{field} not named: {}",
            r.body
        );
    }
    let r = s
        .send(
            Method::POST,
            WEBHOOK,
            Some(&am),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    r.problem(400);
    assert!(enabled(&s).await);
    assert_eq!(s.audit("").await.len(), before);
}

#[tokio::test]
async fn bad_bindings_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    s.create_flag("new-checkout").await;
    let good = json!({"matchers": {"alertname": "A"}, "flag": "new-checkout",
                      "environment": "production", "action": "kill"});
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    let cases = [
        (with("flag", json!("no-such-flag")), "flag"),
        (with("environment", json!("nowhere")), "environment"),
        (with("matchers", json!({})), "matchers"),
        (
            with("matchers", json!({"bad-name": "x"})),
            "matchers.bad-name",
        ),
        (with("action", json!("explode")), "action"),
        (with("on_resolved", json!("later")), "on_resolved"),
        (with("flag", json!({"label": "1x"})), "flag.label"),
        (
            with("action", json!("rollback_release"))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("on_resolved".into(), json!("restore"));
                    Value::Object(o)
                })
                .unwrap(),
            "on_resolved",
        ),
        (with("colour", json!("red")), "colour"),
    ];
    for (body, field) in cases {
        let r = s.post(BINDINGS, body.clone()).await;
        r.problem(422);
        assert!(
            r.fields().contains(&field.to_owned()),
            "{field} not named for {body}: {}",
            r.body
        );
    }
    assert_eq!(s.get(BINDINGS).await.ok(200), &json!([]));
}

#[tokio::test]
async fn an_integration_token_can_only_post_alerts() {
    let s = TestServer::start().await;
    let am = bound(&s, "nothing").await;
    let refused = [
        (Method::GET, "/api/v1/flags", None),
        (
            Method::POST,
            "/api/v1/flags",
            Some(json!({"key": "x", "kind": "boolean"})),
        ),
        (
            Method::POST,
            &format!("{CONFIG}/kill") as &str,
            Some(json!({"reason": "r"})),
        ),
        (Method::GET, "/api/v1/audit", None),
        (Method::GET, "/api/v1/annotations", None),
        (Method::GET, BINDINGS, None),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"kind": "admin", "name": "x"})),
        ),
        (Method::GET, "/sdk/v1/snapshot", None),
        (
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(json!({"context": {"targetingKey": "u"}})),
        ),
    ];
    for (method, path, body) in refused {
        let r = s
            .send(method.clone(), path, Some(&am), body.as_ref(), &[])
            .await;
        assert_eq!(r.status.as_u16(), 403, "{method} {path}: {}", r.body);
    }
    // And only an integration token posts alerts.
    let sdk = s.sdk_token("production").await;
    for token in [common::ADMIN, sdk.as_str()] {
        notify(&s, token, &checkout_alert("firing"))
            .await
            .problem(403);
    }
    notify(&s, "wrong", &checkout_alert("firing"))
        .await
        .problem(401);
    assert!(enabled(&s).await);
    let r = s
        .post(
            "/api/v1/tokens",
            json!({"kind": "integration", "name": "x", "environment": "production"}),
        )
        .await;
    r.problem(422);
    let listed = s.get("/api/v1/tokens").await;
    assert!(listed
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "integration" && t["name"] == "am"));
}

#[tokio::test]
async fn the_audit_log_answers_by_time_and_as_dashboard_annotations() {
    let s = TestServer::start().await;
    let am = bound(&s, "nothing").await;
    notify(&s, &am, &checkout_alert("firing")).await.ok(200);
    let now = time::OffsetDateTime::now_utc();
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let hour = time::Duration::hours(1);
    let recent = s
        .audit(&format!("since={}", urlencode(&rfc(now - hour))))
        .await;
    assert!(recent.iter().any(|e| e["action"] == "flag.kill"));
    let window = format!(
        "since={}&until={}",
        urlencode(&rfc(now - 2 * hour)),
        urlencode(&rfc(now - hour))
    );
    assert!(s.audit(&window).await.is_empty());
    for (query, field) in [("since=2h", "since"), ("until=2026-12-01", "until")] {
        let r = s.get(&format!("/api/v1/audit?{query}")).await;
        r.problem(400);
        assert_eq!(r.fields(), [field]);
    }

    let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000).to_string();
    let r = s
        .get(&format!(
            "/api/v1/annotations?from={}&to={}",
            ms(now - hour),
            ms(now + hour)
        ))
        .await;
    let annotations = r.ok(200).as_array().unwrap().clone();
    let kill = annotations
        .iter()
        .find(|a| a["title"] == "flag.kill new-checkout (production)")
        .unwrap_or_else(|| panic!("no kill annotation in {annotations:?}"));
    assert_eq!(
        kill["tags"],
        json!(["new-checkout", "production", "alertmanager:am", "flag.kill"])
    );
    assert!(kill["text"].as_str().unwrap().contains("CheckoutErrors"));
    assert!(kill["time"].as_i64().unwrap() <= ms(now).parse::<i64>().unwrap() + 1);
    assert_eq!(kill["timeEnd"], kill["time"]);
    let earlier = s
        .get(&format!("/api/v1/annotations?from=0&to={}", ms(now - hour)))
        .await;
    assert_eq!(earlier.ok(200), &json!([]));
    let r = s.get("/api/v1/annotations?from=yesterday").await;
    r.problem(400);
    assert_eq!(r.fields(), ["from"]);

    // The gauge of each flag's last change, from the committed log.
    let metrics = s.metrics().await;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("flag_last_change_timestamp_seconds{")
                && l.contains("flag=\"new-checkout\"")
                && l.contains("environment=\"production\"")
        })
        .unwrap_or_else(|| panic!("no gauge for new-checkout in\n{metrics}"));
    let seconds: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        (seconds * 1000.0).round() as i64,
        kill["time"].as_i64().unwrap()
    );
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn a_binding_whose_flag_was_archived_since_acts_on_nothing() {
    let s = TestServer::start().await;
    let am = bound(&s, "restore").await;
    s.delete("/api/v1/flags/new-checkout").await.ok(200);
    let r = notify(&s, &am, &checkout_alert("firing")).await;
    let action = &r.ok(200)["actions"][0];
    assert_eq!(action["outcome"], "unchanged", "{action}");
    assert!(action["detail"].as_str().unwrap().contains("archived"));
    let r = notify(&s, &am, &checkout_alert("resolved")).await;
    assert_eq!(r.ok(200)["actions"][0]["outcome"], "kept");
}

#[tokio::test]
async fn an_alerts_kill_queues_the_flag_changed_webhook() {
    let s = TestServer::start_tuned(|c| c.webhook_allow_private = true).await;
    let am = bound(&s, "nothing").await;
    let hook = s
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "secret": "a-webhook-secret-of-some-length", "events": ["flag.changed"]}),
        )
        .await;
    let id = hook.ok(201)["id"].as_i64().unwrap();
    notify(&s, &am, &checkout_alert("firing")).await.ok(200);
    let log = s.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    let queued = log.ok(200).as_array().unwrap().clone();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["event"], "flag.changed");
    assert_eq!(queued[0]["payload"]["flag"], "new-checkout");
    assert_eq!(queued[0]["payload"]["enabled"], false);
}
