//! Kill and restore: the round trip, idempotence, audit rows, and a kill's hold on a release.

use serde_json::{json, Value};

use crate::common::{rich_config, TestServer};
use crate::releases::{
    flag_serving_off, healthy_counters, plan, release_until, serving, weight_of_on, CONFIG, FLAG,
    RELEASE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_then_restore_puts_back_exactly_the_configuration() {
    let s = TestServer::start().await;
    s.create_flag("checkout").await;
    let live = s
        .put(
            "/api/v1/flags/checkout/environments/production",
            rich_config("checkout"),
            None,
        )
        .await
        .ok(200)
        .clone();

    let r = s
        .post(
            "/api/v1/flags/checkout/environments/production/kill",
            json!({"reason": "errors spiking"}),
        )
        .await;
    let out = r.ok(200);
    assert_eq!(out["changed"], true);
    assert_eq!(out["subscribers"], 0);
    assert_eq!(out["before"], live);
    let mut killed = live.clone();
    killed["enabled"] = json!(false);
    killed["version"] = json!(3);
    assert_eq!(out["flag"], killed);
    assert_eq!(r.headers["etag"], "\"3\"");
    let got = s
        .get("/api/v1/flags/checkout/environments/production")
        .await;
    assert_eq!(got.body, killed);

    // The evaluate endpoint serves the off variation with reason OFF.
    let e = s
        .post(
            "/api/v1/environments/production/evaluate",
            json!({"context": {"key": "user-1"}, "flags": ["checkout"]}),
        )
        .await;
    assert_eq!(
        e.ok(200)["results"]["checkout"]["reason"],
        json!({"kind": "OFF"})
    );

    // A second kill changes nothing (and keeps the restore point).
    let again = s
        .post(
            "/api/v1/flags/checkout/environments/production/kill",
            json!({"reason": "again"}),
        )
        .await;
    assert_eq!(again.ok(200)["changed"], false);
    assert_eq!(again.body["flag"]["version"], 3);

    let r = s
        .post(
            "/api/v1/flags/checkout/environments/production/restore",
            json!({"reason": "fixed"}),
        )
        .await;
    let out = r.ok(200);
    let mut restored = live.clone();
    restored["version"] = json!(4);
    assert_eq!(out["flag"], restored);
    assert_eq!(out["before"], killed);
    assert_eq!(
        s.get("/api/v1/flags/checkout/environments/production")
            .await
            .body,
        restored
    );

    // Not killed any more: restore is a conflict; restore works without a body too.
    s.post(
        "/api/v1/flags/checkout/environments/production/restore",
        json!({}),
    )
    .await
    .problem(409);

    let audit = s.audit("flag=checkout&environment=production").await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["flag.restore", "flag.kill", "flag.config.update"]);
    assert_eq!(audit[1]["reason"], "errors spiking");
    assert_eq!(audit[1]["actor"], "bootstrap");
    assert_eq!(audit[1]["before"], live);
    assert_eq!(audit[1]["after"], killed);
    assert_eq!(audit[0]["reason"], "fixed");
    assert_eq!(audit[0]["after"], restored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_needs_a_reason_and_a_known_flag() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let r = s
        .post("/api/v1/flags/f/environments/production/kill", json!({}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["reason"]);
    s.post(
        "/api/v1/flags/nope/environments/production/kill",
        json!({"reason": "x"}),
    )
    .await
    .problem(404);
    s.post(
        "/api/v1/flags/f/environments/nope/kill",
        json!({"reason": "x"}),
    )
    .await
    .problem(404);
    s.post(
        "/api/v1/flags/f/environments/production/restore",
        json!({"reason": "x"}),
    )
    .await
    .problem(409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_a_kill_ends_the_kill() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    s.post(
        "/api/v1/flags/f/environments/production/kill",
        json!({"reason": "x"}),
    )
    .await
    .ok(200);
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        Some("\"2\""),
    )
    .await
    .ok(200);
    s.post("/api/v1/flags/f/environments/production/restore", json!({}))
        .await
        .problem(409);
}

/// A release with one-second stages and a guard that passes on [`healthy_counters`].
fn quick_plan() -> Value {
    let mut quick = plan("rollback");
    quick["stages"] = json!([1, 50, 100]);
    quick["hold_seconds"] = json!(1);
    quick["guard"]["min_evaluations"] = json!(100);
    quick
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_pauses_the_release_until_restore_and_resume() {
    let s = TestServer::start().await;
    flag_serving_off(&s).await;
    s.post(RELEASE, quick_plan()).await.ok(201);
    // The guard has all it needs: left alone, the stage would advance when its hold ends.
    healthy_counters(&s, FLAG).await;
    let at_1_percent = s.get(CONFIG).await.ok(200).clone();
    assert_eq!(weight_of_on(&at_1_percent), 1000);

    let kill = s
        .post(
            &format!("{CONFIG}/kill"),
            json!({"reason": "errors spiking"}),
        )
        .await;
    let killed = kill.ok(200)["flag"].clone();
    let paused = s.get(RELEASE).await.ok(200).clone();
    assert_eq!(
        paused["state"], "paused",
        "the kill pauses the release: {paused}"
    );
    assert!(paused["next_at"].is_null());
    let audit = s.audit(&format!("flag={FLAG}")).await;
    let (newest, kill_row) = (&audit[0], &audit[1]);
    assert_eq!(kill_row["action"], "flag.kill");
    assert_eq!(
        (&newest["action"], &newest["actor"]),
        (&json!("release.paused"), &json!("bootstrap"))
    );
    assert!(
        newest["reason"]
            .as_str()
            .unwrap()
            .contains("killed: errors spiking"),
        "{newest}"
    );
    assert_eq!(newest["before"]["state"], "running");

    // Another release, started after the kill and due no earlier: once the scheduler has
    // advanced it, it has also looked at everything due before.
    let other = serving(&s, "other", json!({"variation": "off"})).await;
    s.post(&format!("{other}/release"), quick_plan())
        .await
        .ok(201);
    healthy_counters(&s, "other").await;
    release_until(
        &s,
        &format!("{other}/release"),
        "the other release's stage",
        |r| r["percent"] == 50,
    )
    .await;
    assert_eq!(
        s.get(CONFIG).await.ok(200).clone(),
        killed,
        "nothing moved the killed flag"
    );
    assert_eq!(s.get(RELEASE).await.ok(200).clone(), paused);

    // Nor can a person move it while killed; the refusal says what to do.
    for action in ["advance", "resume"] {
        let r = s.post(&format!("{RELEASE}/{action}"), json!({})).await;
        let detail = r.problem(409)["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains("killed") && detail.contains("restore"),
            "{detail}"
        );
    }
    healthy_counters(&s, FLAG).await;
    assert_eq!(
        s.get(RELEASE).await.ok(200).clone(),
        paused,
        "counters of a killed flag count for nothing"
    );

    // Restore gives back exactly the configuration from before the kill; the release stays
    // paused (the stage that came due during the kill does not jump forward).
    let restored = s
        .post(&format!("{CONFIG}/restore"), json!({}))
        .await
        .ok(200)["flag"]
        .clone();
    let mut expected = at_1_percent.clone();
    expected["version"] = json!(at_1_percent["version"].as_u64().unwrap() + 2);
    assert_eq!(restored, expected);
    assert_eq!(s.get(CONFIG).await.ok(200).clone(), expected);
    assert_eq!(s.get(RELEASE).await.ok(200).clone(), paused);

    // Resumed, the stage is held again from the resume, then advances as usual.
    let resumed = s
        .post(&format!("{RELEASE}/resume"), json!({}))
        .await
        .ok(200)
        .clone();
    assert_eq!(
        (&resumed["state"], &resumed["percent"]),
        (&json!("running"), &json!(1))
    );
    release_until(&s, RELEASE, "the next stage", |r| r["percent"] == 50).await;
    let config = s.get(CONFIG).await.ok(200).clone();
    assert_eq!(
        (config["enabled"].clone(), weight_of_on(&config)),
        (json!(true), 50_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_while_killed_keeps_the_kill_and_changes_what_restore_brings_back() {
    let s = TestServer::start().await;
    flag_serving_off(&s).await;
    s.post(RELEASE, plan("rollback")).await.ok(201);
    let killed = s
        .post(
            &format!("{CONFIG}/kill"),
            json!({"reason": "errors spiking"}),
        )
        .await
        .ok(200)["flag"]
        .clone();
    let aborted = s
        .post(&format!("{RELEASE}/abort"), json!({"reason": "bad build"}))
        .await;
    assert_eq!(aborted.ok(200)["state"], "aborted");
    assert_eq!(s.get(CONFIG).await.ok(200).clone(), killed, "still killed");
    let restored = s
        .post(&format!("{CONFIG}/restore"), json!({}))
        .await
        .ok(200)["flag"]
        .clone();
    assert_eq!(restored["enabled"], true);
    assert_eq!(
        restored["fallthrough"],
        json!({"variation": "off"}),
        "the fallthrough from before the release"
    );
}
