//! Releases end to end: start, the guard rolling back on SDK counters, the audit row, the
//! signed webhook, the moves a person makes, and a restart mid-release.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::live::WAIT;
use crate::common::{self, TestServer};

pub(crate) const FLAG: &str = "new-checkout";
pub(crate) const CONFIG: &str = "/api/v1/flags/new-checkout/environments/production";
pub(crate) const RELEASE: &str = "/api/v1/flags/new-checkout/environments/production/release";

/// A server that may send webhooks to loopback (the receiver runs on 127.0.0.1).
async fn server_allowing_loopback_webhooks() -> TestServer {
    TestServer::start_tuned(|c| c.webhook_allow_private = true).await
}

/// A flag serving `off` to everyone, enabled: the starting point of a release of `on`.
pub(crate) async fn flag_serving_off(server: &TestServer) {
    serving(server, FLAG, json!({"variation": "off"})).await;
}

/// Creates `flag`, enabled, with this fallthrough; returns its configuration path.
pub(crate) async fn serving(server: &TestServer, flag: &str, fallthrough: Value) -> String {
    server.create_flag(flag).await;
    let path = format!("/api/v1/flags/{flag}/environments/production");
    let mut config = server.get(&path).await.ok(200).clone();
    config["enabled"] = json!(true);
    config["fallthrough"] = fallthrough;
    server.put(&path, config, None).await.ok(200);
    path
}

/// Reports healthy SDK counters for `flag`: enough for a guard with `min_evaluations` 100.
pub(crate) async fn healthy_counters(server: &TestServer, flag: &str) {
    let counters = json!({"counters": [
        {"flag": flag, "variation": "off", "evaluations": 1000, "errors": 10},
        {"flag": flag, "variation": "on", "evaluations": 100, "errors": 1}]});
    report_counters(server, &counters).await;
}

/// Posts SDK counters (`{"counters": [...]}`) to production, as an SDK does.
async fn report_counters(server: &TestServer, counters: &Value) {
    let sdk = server.sdk_token("production").await;
    server
        .send(
            reqwest::Method::POST,
            "/sdk/v1/events",
            Some(&sdk),
            Some(counters),
            &[],
        )
        .await
        .ok(202);
}

/// Polls the release at `path` until `check` holds (at most [`WAIT`]); returns it.
pub(crate) async fn release_until(
    server: &TestServer,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let release = server.get(path).await.ok(200).clone();
        if check(&release) {
            return release;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {release}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) fn plan(on_regression: &str) -> Value {
    json!({"variation": "on", "stages": [1, 5, 25, 50, 100], "hold_seconds": 600,
           "guard": {"max_error_rate_increase": 0.02, "min_evaluations": 200},
           "on_regression": on_regression})
}

pub(crate) fn weight_of_on(config: &Value) -> u64 {
    config["fallthrough"]["rollout"]["weights"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter(|w| w["variation"] == "on")
                .map(|w| w["weight"].as_u64().unwrap())
                .sum()
        })
        .unwrap_or(0)
}

/// A loopback HTTP receiver: every request's headers (lower-cased) and body, answered 200.
pub(crate) async fn webhook_receiver() -> (String, mpsc::Receiver<(Vec<(String, String)>, Vec<u8>)>)
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (headers, body_start) = loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    break (headers, end + 4);
                }
            };
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < body_start + length {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[body_start..(body_start + length).min(buf.len())].to_vec();
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            let _ = tx.send((headers, body)).await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn a_regression_rolls_the_release_back_with_audit_and_signed_webhook() {
    let server = server_allowing_loopback_webhooks().await;
    flag_serving_off(&server).await;
    let (url, mut received) = webhook_receiver().await;
    let secret = "s3cret-s3cret-s3cret";
    server
        .post(
            "/api/v1/webhooks",
            json!({"url": url, "secret": secret, "events": ["release.rolled_back"]}),
        )
        .await
        .ok(201);

    let started = server.post(RELEASE, plan("rollback")).await;
    let view = started.ok(201);
    assert_eq!(
        (view["state"].clone(), view["percent"].clone()),
        (json!("running"), json!(1))
    );
    assert!(view["next_at"].is_string());
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(
        weight_of_on(&config),
        1000,
        "1% of contexts get the new variation"
    );
    assert_eq!(
        config["fallthrough"]["rollout"]["weights"][0]["variation"],
        "on"
    );

    // The SDKs report: the new variation errors 10% of the time, the old one 1%.
    let counters = json!({"counters": [
        {"flag": FLAG, "variation": "off", "evaluations": 20000, "errors": 200},
        {"flag": FLAG, "variation": "on", "evaluations": 400, "errors": 40}]});
    report_counters(&server, &counters).await;

    let status = server.get(RELEASE).await.ok(200).clone();
    assert_eq!(status["state"], "rolled_back", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("10.00% (40 of 400)"),
        "{status}"
    );
    assert_eq!(status["observed"]["on"]["error_rate"], json!(0.1));
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(
        config["fallthrough"],
        json!({"variation": "off"}),
        "the baseline is back"
    );

    let audit = server.audit(&format!("flag={FLAG}")).await;
    let row = audit
        .iter()
        .find(|e| e["action"] == "release.rolled_back")
        .expect("an audit row for the rollback");
    assert_eq!(row["actor"], "release-scheduler");
    assert!(
        row["reason"].as_str().unwrap().contains("+9.00 points"),
        "{row}"
    );
    assert_eq!(row["before"]["state"], "running");
    assert_eq!(row["after"]["state"], "rolled_back");

    let (headers, body) = tokio::time::timeout(Duration::from_secs(20), received.recv())
        .await
        .expect("the webhook arrives within 20 s")
        .expect("receiver alive");
    let signature = headers
        .iter()
        .find(|(k, _)| k == "x-flag-signature")
        .map(|(_, v)| v.clone())
        .expect("signed");
    assert_eq!(signature, flag_server::webhooks::signature(secret, &body));
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], "release.rolled_back");
    assert_eq!(payload["flag"], FLAG);
    let hooks = server.get("/api/v1/webhooks").await.ok(200).clone();
    let id = hooks[0]["id"].as_i64().unwrap();
    assert!(
        hooks[0].get("secret").is_none(),
        "the secret is never shown again"
    );
    // The delivery log records the success (give the task a moment to write it).
    let mut delivered = false;
    for _ in 0..100 {
        let log = server
            .get(&format!("/api/v1/webhooks/{id}/deliveries"))
            .await
            .ok(200)
            .clone();
        if log[0]["status"] == "delivered" {
            assert_eq!(log[0]["response_status"], 200);
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the delivery log shows the delivery");
}

#[tokio::test]
async fn healthy_counters_do_not_roll_back() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    server.post(RELEASE, plan("rollback")).await.ok(201);
    let counters = json!({"counters": [
        {"flag": FLAG, "variation": "off", "evaluations": 20000, "errors": 200},
        {"flag": FLAG, "variation": "on", "evaluations": 400, "errors": 5}]});
    report_counters(&server, &counters).await;
    let status = server.get(RELEASE).await.ok(200).clone();
    assert_eq!(status["state"], "running");
    assert_eq!(status["observed"]["on"]["evaluations"], 400);
}

#[tokio::test]
async fn kill_on_regression_kills_the_flag() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    server.post(RELEASE, plan("kill")).await.ok(201);
    let counters = json!({"counters": [
        {"flag": FLAG, "variation": "off", "evaluations": 20000, "errors": 0},
        {"flag": FLAG, "variation": "on", "evaluations": 500, "errors": 100}]});
    report_counters(&server, &counters).await;
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(config["enabled"], false, "{config}");
}

#[tokio::test]
async fn a_person_pauses_resumes_advances_and_aborts() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    server.post(RELEASE, plan("rollback")).await.ok(201);
    server.post(RELEASE, plan("rollback")).await.problem(409);

    let paused = server
        .post(&format!("{RELEASE}/pause"), json!({"reason": "dashboards"}))
        .await;
    assert_eq!(paused.ok(200)["state"], "paused");
    assert!(paused.body["next_at"].is_null());
    server
        .post(&format!("{RELEASE}/pause"), json!({}))
        .await
        .problem(409);
    assert_eq!(
        server
            .post(&format!("{RELEASE}/resume"), json!({}))
            .await
            .ok(200)["state"],
        "running"
    );
    let advanced = server.post(&format!("{RELEASE}/advance"), json!({})).await;
    assert_eq!(advanced.ok(200)["percent"], 5);
    assert_eq!(weight_of_on(server.get(CONFIG).await.ok(200)), 5000);
    let aborted = server
        .post(
            &format!("{RELEASE}/abort"),
            json!({"reason": "wrong build"}),
        )
        .await;
    assert_eq!(aborted.ok(200)["state"], "aborted");
    assert_eq!(
        server.get(CONFIG).await.ok(200)["fallthrough"],
        json!({"variation": "off"})
    );
    server
        .post(&format!("{RELEASE}/resume"), json!({}))
        .await
        .problem(409);
    server
        .post(&format!("{RELEASE}/jump"), json!({}))
        .await
        .problem(404);

    let actions: Vec<String> = server
        .audit(&format!("flag={FLAG}"))
        .await
        .iter()
        .filter_map(|e| {
            e["action"]
                .as_str()
                .filter(|a| a.starts_with("release."))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        actions,
        [
            "release.aborted",
            "release.advanced",
            "release.resumed",
            "release.paused",
            "release.started"
        ]
    );
    // A new release may start once the old one is over.
    server.post(RELEASE, plan("rollback")).await.ok(201);
}

#[tokio::test]
async fn bad_plans_name_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    let before = server.get(CONFIG).await.ok(200).clone();
    let mut bad = plan("rollback");
    bad["stages"] = json!([5, 1]);
    bad["variation"] = json!("maybe");
    let r = server.post(RELEASE, bad).await;
    r.problem(422);
    assert_eq!(r.fields(), ["variation", "stages"]);
    let mut unknown = plan("rollback");
    unknown["on_regression"] = json!("panic");
    let r = server.post(RELEASE, unknown).await;
    r.problem(422);
    assert_eq!(r.fields(), ["on_regression"]);
    assert_eq!(server.get(CONFIG).await.ok(200).clone(), before);
    server.get(RELEASE).await.problem(404);
    let missing = "/api/v1/flags/nope/environments/production/release";
    server.post(missing, plan("rollback")).await.problem(404);
}

#[tokio::test]
async fn a_release_survives_a_restart_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(&dir);
    {
        let server = TestServer::on(db.clone(), tempfile::tempdir().unwrap(), |_| {}).await;
        flag_serving_off(&server).await;
        server.post(RELEASE, plan("rollback")).await.ok(201);
        server
            .post(&format!("{RELEASE}/advance"), json!({}))
            .await
            .ok(200);
        server.running.handle.stop(true).await;
    }
    let server = TestServer::on(db, dir, |_| {}).await;
    let status = server.get(RELEASE).await.ok(200).clone();
    assert_eq!(
        (status["state"].clone(), status["percent"].clone()),
        (json!("running"), json!(5))
    );
    assert_eq!(
        server
            .post(&format!("{RELEASE}/advance"), json!({}))
            .await
            .ok(200)["percent"],
        25
    );
}

#[tokio::test]
async fn real_sdk_clients_report_errors_and_see_the_rollback() {
    let server = TestServer::start().await;
    flag_serving_off(&server).await;
    let mut half = plan("rollback");
    half["stages"] = json!([50, 100]);
    server.post(RELEASE, half).await.ok(201);

    let token = server.sdk_token("production").await;
    let mut clients = Vec::new();
    for _ in 0..2 {
        let client = flag_sdk::Client::builder(&server.base, &token)
            .events_interval(Duration::from_millis(50))
            .build()
            .await
            .expect("client builds");
        assert_eq!(client.status(), flag_sdk::Status::Valid);
        clients.push(client);
    }
    // The application: the new code path fails for 1 in 5 users, the old one for 1 in 100.
    let mut served_new = 0;
    for i in 0..1200u32 {
        let client = &clients[(i % 2) as usize];
        let ctx = flag_sdk::Context::new(format!("user-{i}"));
        let new_path = client.bool_variation(FLAG, &ctx, false);
        served_new += u32::from(new_path);
        let fails = if new_path { i % 5 == 0 } else { i % 100 == 0 };
        if fails {
            client.track_error(&ctx);
        }
    }
    assert!(
        (450..750).contains(&served_new),
        "about half got the new path: {served_new}"
    );

    let state = release_until(&server, RELEASE, "the guard's verdict", |r| {
        r["state"] != "running"
    })
    .await;
    assert_eq!(state["state"], "rolled_back", "{state}");
    assert!(
        state["observed"]["on"]["evaluations"].as_u64().unwrap() >= 200,
        "{state}"
    );

    // Every client serves the old path again, pushed over the stream.
    for client in &clients {
        let mut all_old = false;
        for _ in 0..200 {
            let ctx = |i: u32| flag_sdk::Context::new(format!("user-{i}"));
            all_old = (0..200).all(|i| !client.bool_variation(FLAG, &ctx(i), true));
            if all_old {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(all_old, "the client sees the rollback");
        client.close().await;
        assert_eq!(client.events_dropped(), 0);
    }
}

#[tokio::test]
async fn a_release_keeps_the_flags_bucket_by_and_salt_or_takes_the_one_given() {
    let server = TestServer::start().await;
    let by_org = json!({"rollout": {"bucket_by": "org", "salt": "s1",
        "weights": [{"variation": "off", "weight": 100000}]}});
    serving(&server, FLAG, by_org).await;
    let view = server.post(RELEASE, plan("rollback")).await.ok(201).clone();
    assert_eq!(view["bucket_by"], "org");
    let rollout = |config: &Value| config["fallthrough"]["rollout"].clone();
    for percent in [1, 5] {
        let r = rollout(server.get(CONFIG).await.ok(200));
        assert_eq!(
            (&r["bucket_by"], &r["salt"]),
            (&json!("org"), &json!("s1")),
            "{r}"
        );
        assert_eq!(
            weight_of_on(server.get(CONFIG).await.ok(200)),
            percent * 1000
        );
        server
            .post(&format!("{RELEASE}/advance"), json!({}))
            .await
            .ok(200);
    }
    server
        .post(&format!("{RELEASE}/abort"), json!({}))
        .await
        .ok(200);

    let mut by_device = plan("rollback");
    by_device["bucket_by"] = json!("device");
    let view = server.post(RELEASE, by_device).await.ok(201).clone();
    assert_eq!(view["bucket_by"], "device");
    let r = rollout(server.get(CONFIG).await.ok(200));
    assert_eq!(
        (&r["bucket_by"], &r["salt"]),
        (&json!("device"), &json!("s1")),
        "{r}"
    );
    server
        .post(&format!("{RELEASE}/abort"), json!({}))
        .await
        .ok(200);

    let before = server.get(CONFIG).await.ok(200).clone();
    let mut blank = plan("rollback");
    blank["bucket_by"] = json!(" ");
    let r = server.post(RELEASE, blank).await;
    r.problem(422);
    assert_eq!(r.fields(), ["bucket_by"]);
    assert_eq!(server.get(CONFIG).await.ok(200).clone(), before);
}

/// The group commits the server has made so far (`/metrics`).
async fn group_commits(server: &TestServer) -> u64 {
    server
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("flag_server_sqlite_write_seconds_count "))
        .expect("the group-commit counter in /metrics")
        .parse()
        .unwrap()
}

/// Every SDK posts its counters for every flag it evaluates, a thousand of them at the same
/// moment: those of flags without a release are accepted and cost the writer nothing (no
/// group commit to wait behind for the kill that comes next); those of a flag under a
/// release still reach its guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_of_flags_without_a_release_never_reach_the_writer() {
    let s = TestServer::start().await;
    serving(&s, "plain", json!({"variation": "on"})).await;
    flag_serving_off(&s).await;
    s.post(RELEASE, plan("rollback")).await.ok(201);
    let sdk = s.sdk_token("production").await;
    let post = |flag: &str| {
        let counters = json!({"counters": [
            {"flag": flag, "variation": "off", "evaluations": 1000, "errors": 10},
            {"flag": flag, "variation": "on", "evaluations": 100, "errors": 1}]});
        let (s, sdk) = (&s, &sdk);
        async move {
            s.send(
                reqwest::Method::POST,
                "/sdk/v1/events",
                Some(sdk),
                Some(&counters),
                &[],
            )
            .await
            .ok(202);
        }
    };
    let before = group_commits(&s).await;
    for _ in 0..5 {
        post("plain").await;
    }
    assert_eq!(group_commits(&s).await, before);
    post(FLAG).await;
    assert_eq!(group_commits(&s).await, before + 1);
    let release = s.get(RELEASE).await.ok(200).clone();
    assert_eq!(release["observed"]["on"]["evaluations"], 100, "{release}");
}
