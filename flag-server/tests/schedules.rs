//! Scheduled changes: applied at their time by the scheduler as their author's write (on the
//! scheduler's simulated clock where the wait is long, and once on real time), against the
//! version they were planned on, paused by a kill until resumed, and applied late after a
//! restart that missed their time.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::live::WAIT;
use crate::common::{self, TestServer};
use crate::releases::{serving, webhook_receiver, weight_of_on, CONFIG, FLAG};

const SCHEDULES: &str = "/api/v1/flags/new-checkout/environments/production/schedules";

/// `now + by` as RFC 3339 on the server's scheduler clock.
fn at(server: &TestServer, by: Duration) -> String {
    let millis = server.running.state.scheduler.now() + by.as_millis() as i64;
    flag_server::clock::rfc3339(millis).unwrap()
}

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// Polls `GET path` until `check` holds for what `pick` takes from the answer (at most
/// [`WAIT`]); returns that.
async fn get_until(
    server: &TestServer,
    path: &str,
    what: &str,
    pick: impl Fn(Value) -> Value,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = pick(server.get(path).await.ok(200).clone());
        if check(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {found}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls schedule `id` until `check` holds (at most [`WAIT`]); returns it.
async fn schedule_until(
    server: &TestServer,
    id: &Value,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let pick = |list: Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == *id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    get_until(server, SCHEDULES, what, pick, check).await
}

/// Waits until the flag's configuration is `enabled`: a schedule's change is committed with
/// its `applied` state, and the configuration's snapshot is installed right after the commit.
async fn enabled_soon(server: &TestServer) {
    get_until(
        server,
        CONFIG,
        "the flag enabled",
        |c| c,
        |c| c["enabled"] == true,
    )
    .await;
}

async fn off_flag(server: &TestServer) {
    server.create_flag(FLAG).await;
}

#[tokio::test]
async fn a_change_planned_for_next_week_is_applied_then_as_a_write_by_its_author() {
    let server = TestServer::start().await;
    off_flag(&server).await;
    let alice = server.scoped_token("alice", "write", &["production"]).await;
    let body = json!({"at": at(&server, WEEK), "change": {"enabled": true},
                      "reason": "launch on Monday"});
    let created = server
        .as_token(&alice, reqwest::Method::POST, SCHEDULES, Some(body))
        .await;
    let created = created.ok(201).clone();
    assert_eq!(
        (
            &created["state"],
            &created["author"],
            &created["base_version"]
        ),
        (&json!("pending"), &json!("alice"), &json!(1))
    );
    let listed = server.get(SCHEDULES).await.ok(200).clone();
    assert_eq!(listed, json!([created.clone()]));

    // A day before, nothing happens.
    server
        .running
        .state
        .scheduler
        .advance(WEEK - Duration::from_secs(86400));
    assert_eq!(server.get(CONFIG).await.ok(200)["enabled"], false);
    server
        .running
        .state
        .scheduler
        .advance(Duration::from_secs(86400));
    let applied = schedule_until(&server, &created["id"], "the schedule to apply", |s| {
        s["state"] == "applied"
    })
    .await;
    assert!(applied["late_ms"].as_i64().unwrap() >= 0, "{applied}");
    enabled_soon(&server).await;

    let audit = server.audit("flag=new-checkout").await;
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        &actions[..3],
        [
            ("schedule.applied", "alice"),
            ("flag.config.update", "alice"),
            ("schedule.created", "alice")
        ]
    );
    assert!(audit[0]["reason"]
        .as_str()
        .unwrap()
        .contains("launch on Monday"));
}

#[tokio::test]
async fn a_whole_configuration_on_a_flag_changed_since_fails_visibly_a_percentage_applies() {
    let server = TestServer::start_tuned(|c| c.webhook_allow_private = true).await;
    serving(&server, FLAG, json!({"variation": "off"})).await;
    let (url, mut received) = webhook_receiver().await;
    server
        .post(
            "/api/v1/webhooks",
            json!({"url": url, "secret": "s3cret-s3cret-s3cret", "events": ["schedule.failed"]}),
        )
        .await
        .ok(201);
    let mut planned = server.get(CONFIG).await.ok(200).clone();
    planned["fallthrough"] = json!({"variation": "on"});
    let whole = server
        .post(
            SCHEDULES,
            json!({"at": at(&server, WEEK), "change": {"config": planned}}),
        )
        .await
        .ok(201)
        .clone();
    let percent = server
        .post(
            SCHEDULES,
            json!({"at": at(&server, WEEK), "change": {"percent": 25}}),
        )
        .await
        .ok(201)
        .clone();

    // Someone changes the flag meanwhile.
    let mut changed = server.get(CONFIG).await.ok(200).clone();
    changed["rules"] = json!([{"id": "nl", "clauses": [{"attribute": "country", "op": "in",
        "values": ["NL"]}], "serve": {"variation": "on"}}]);
    server.put(CONFIG, changed, None).await.ok(200);

    server.running.state.scheduler.advance(WEEK);
    let failed = schedule_until(&server, &whole["id"], "the failure", |s| {
        s["state"] != "pending"
    })
    .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("changed since this was planned"),
        "{failed}"
    );
    schedule_until(&server, &percent["id"], "the percentage", |s| {
        s["state"] == "applied"
    })
    .await;
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(weight_of_on(&config), 25_000, "{config}");
    assert_eq!(config["rules"][0]["id"], "nl", "the other change stays");

    let (_, body) = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("the webhook arrives")
        .unwrap();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "schedule.failed");
    assert_eq!(event["schedule"]["id"], whole["id"]);
    let audit = server.audit("flag=new-checkout").await;
    assert!(audit.iter().any(|e| e["action"] == "schedule.failed"));
}

#[tokio::test]
async fn a_kill_pauses_the_flags_schedules_until_a_person_resumes_them() {
    let server = TestServer::start().await;
    off_flag(&server).await;
    let planned = server
        .post(
            SCHEDULES,
            json!({"at": at(&server, WEEK), "change": {"enabled": true}}),
        )
        .await
        .ok(201)
        .clone();
    let id = planned["id"].clone();
    let kill = "/api/v1/flags/new-checkout/environments/production/kill";
    let killed = server.post(kill, json!({"reason": "INC-7"})).await;
    assert_eq!(killed.ok(200)["schedules_paused"], 1);
    let restore = "/api/v1/flags/new-checkout/environments/production/restore";
    let restored = server.post(restore, json!({})).await;
    assert_eq!(
        restored.ok(200)["schedules_paused"],
        1,
        "restore leaves them"
    );

    server.running.state.scheduler.advance(WEEK * 2);
    let paused = schedule_until(&server, &id, "paused", |s| s["state"] == "paused").await;
    assert!(paused["detail"].as_str().unwrap().contains("INC-7"));
    // Let the scheduler look: a paused schedule is not due.
    server.running.state.scheduler.wake();
    assert_eq!(server.get(CONFIG).await.ok(200)["enabled"], false);

    let resume = format!("{SCHEDULES}/{id}/resume");
    server.post(&resume, json!({})).await.ok(200);
    let applied = schedule_until(&server, &id, "applied after resume", |s| {
        s["state"] == "applied"
    })
    .await;
    assert!(applied["late_ms"].as_i64().unwrap() >= WEEK.as_millis() as i64);
    assert!(applied["detail"].as_str().unwrap().contains("late"));
    enabled_soon(&server).await;
    server.post(&resume, json!({})).await.problem(409);
    let audit = server.audit("flag=new-checkout").await;
    let paused_rows = audit.iter().filter(|e| e["action"] == "schedule.paused");
    assert_eq!(paused_rows.count(), 1);
}

#[tokio::test]
async fn a_schedule_due_while_the_server_was_down_is_applied_at_start_and_says_how_late() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(&dir);
    let id = {
        let server = TestServer::on(db.clone(), tempfile::tempdir().unwrap(), |_| {}).await;
        off_flag(&server).await;
        let planned = server
            .post(
                SCHEDULES,
                json!({"at": at(&server, Duration::from_secs(3600)), "change": {"enabled": true}}),
            )
            .await
            .ok(201)
            .clone();
        server.running.handle.stop(true).await;
        planned["id"].clone()
    };
    // The server stays down past the schedule's time: two hours, as the row sees it.
    common::execute(&db, "UPDATE schedules SET at = at - 7200000".into()).await;
    let server = TestServer::on(db, dir, |_| {}).await;
    let applied = schedule_until(&server, &id, "applied at start", |s| {
        s["state"] == "applied"
    })
    .await;
    let late = applied["late_ms"].as_i64().unwrap();
    assert!((3_600_000..3_700_000).contains(&late), "{applied}");
    assert!(
        applied["detail"].as_str().unwrap().contains("1h"),
        "{applied}"
    );
    enabled_soon(&server).await;
    let audit = server.audit("flag=new-checkout").await;
    assert_eq!(audit[0]["action"], "schedule.applied");
    assert!(audit[0]["reason"].as_str().unwrap().contains("late"));
}

#[tokio::test]
async fn a_schedule_a_few_seconds_ahead_is_applied_on_real_time() {
    let server = TestServer::start().await;
    off_flag(&server).await;
    let planned = server
        .post(
            SCHEDULES,
            json!({"at": at(&server, Duration::from_secs(2)), "change": {"enabled": true}}),
        )
        .await
        .ok(201)
        .clone();
    let applied = schedule_until(&server, &planned["id"], "applied", |s| {
        s["state"] == "applied"
    })
    .await;
    assert_eq!(applied["change"], json!({"enabled": true}));
    enabled_soon(&server).await;
}

#[tokio::test]
async fn bad_schedules_are_refused_naming_the_field_and_one_can_be_cancelled() {
    let server = TestServer::start().await;
    off_flag(&server).await;
    let future = at(&server, WEEK);
    for (body, field) in [
        (
            json!({"at": "next tuesday", "change": {"enabled": true}}),
            "at",
        ),
        (
            json!({"at": at(&server, Duration::ZERO), "change": {"enabled": true}}),
            "at",
        ),
        (json!({"at": future, "change": {}}), "change"),
        (
            json!({"at": future, "change": {"enabled": true, "percent": 5}}),
            "change",
        ),
        (
            json!({"at": future, "change": {"percent": 101}}),
            "change.percent",
        ),
        (
            json!({"at": future, "change": {"colour": "red"}}),
            "change.colour",
        ),
    ] {
        let r = server.post(SCHEDULES, body.clone()).await;
        r.problem(422);
        assert_eq!(r.fields(), [field], "{body}");
    }
    let other = "/api/v1/flags/nope/environments/production/schedules";
    let r = server
        .post(other, json!({"at": future, "change": {"enabled": true}}))
        .await;
    r.problem(404);
    assert_eq!(server.get(SCHEDULES).await.ok(200), &json!([]));

    let planned = server
        .post(
            SCHEDULES,
            json!({"at": future, "change": {"enabled": true}}),
        )
        .await
        .ok(201)
        .clone();
    let one = format!("{SCHEDULES}/{}", planned["id"]);
    assert_eq!(server.delete(&one).await.ok(200)["state"], "cancelled");
    server.delete(&one).await.problem(409);
    server.running.state.scheduler.advance(WEEK * 2);
    server.running.state.scheduler.wake();
    assert_eq!(server.get(CONFIG).await.ok(200)["enabled"], false);
    server
        .delete(&format!("{SCHEDULES}/999"))
        .await
        .problem(404);
}
