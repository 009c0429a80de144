//! Change requests: an environment that requires approval holds every write as a request;
//! someone else approves it (never its author), and it applies with If-Match on its base
//! version (a flag changed meanwhile: 409, `stale`, nothing applied). Kill and restore are not
//! held unless the environment says so; an approved change can be scheduled.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{Reply, TestServer};
use crate::releases::{CONFIG, FLAG};

const PRODUCTION: &str = "/api/v1/environments/production";

/// A server whose production needs one approval, with a flag, and two people's tokens.
async fn four_eyes() -> (TestServer, String, String) {
    let server = TestServer::start().await;
    server.create_flag(FLAG).await;
    let alice = server.scoped_token("alice", "write", &["production"]).await;
    let bob = server.scoped_token("bob", "write", &["production"]).await;
    let env = server.patch(PRODUCTION, json!({"approvals": 1})).await;
    assert_eq!(
        (
            &env.ok(200)["approvals"],
            &env.ok(200)["approvals_for_kill"]
        ),
        (&json!(1), &json!(false))
    );
    (server, alice, bob)
}

/// `token` PUTs the flag's configuration with `enabled` and a reason.
async fn propose(server: &TestServer, token: &str, enabled: bool, if_match: &str) -> Reply {
    let mut config = server.get(CONFIG).await.ok(200).clone();
    config["enabled"] = json!(enabled);
    server
        .send(
            Method::PUT,
            &format!("{CONFIG}?reason=launch%20day"),
            Some(token),
            Some(&config),
            &[("If-Match", if_match)],
        )
        .await
}

async fn act(server: &TestServer, token: &str, id: &Value, action: &str) -> Reply {
    let path = format!("/api/v1/change-requests/{id}/{action}");
    server.as_token(token, Method::POST, &path, None).await
}

#[tokio::test]
async fn a_write_waits_for_someone_else_to_approve_it_then_applies_as_its_authors() {
    let (server, alice, bob) = four_eyes().await;
    let held = propose(&server, &alice, true, "\"1\"").await;
    let request = held.ok(202).clone();
    assert_eq!(request["state"], "pending");
    let id = request["id"].clone();
    assert_eq!(
        held.headers["location"],
        format!("/api/v1/change-requests/{id}").as_str()
    );
    assert_eq!(server.get(CONFIG).await.ok(200)["enabled"], false, "held");

    let shown = server
        .get(&format!("/api/v1/change-requests/{id}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(
        (
            &shown["kind"],
            &shown["author"],
            &shown["base_version"],
            &shown["reason"]
        ),
        (
            &json!("flag_config"),
            &json!("alice"),
            &json!(1),
            &json!("launch day")
        )
    );
    assert_eq!(
        shown["diff"],
        json!([{"path": "enabled", "before": false, "after": true}])
    );
    assert_eq!(shown["proposed"]["enabled"], true);

    let own = act(&server, &alice, &id, "approve").await;
    own.problem(403);
    assert_eq!(server.get(CONFIG).await.ok(200)["enabled"], false);
    let approved = act(&server, &bob, &id, "approve").await;
    let approved = approved.ok(200).clone();
    assert_eq!(approved["state"], "applied");
    assert_eq!(approved["approvals"][0]["by"], "bob");
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(
        (config["enabled"].clone(), config["version"].clone()),
        (json!(true), json!(2))
    );
    act(&server, &bob, &id, "approve").await.problem(409);

    let audit = server.audit("flag=new-checkout").await;
    let rows: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        &rows[..3],
        [
            ("change_request.applied", "bob"),
            ("flag.config.update", "alice"),
            ("change_request.created", "alice")
        ]
    );
    let listed = server
        .get("/api/v1/change-requests?state=applied&environment=production")
        .await
        .ok(200)
        .clone();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let none = server.get("/api/v1/change-requests?state=pending").await;
    assert_eq!(none.ok(200), &json!([]));
    server
        .get("/api/v1/change-requests?colour=red")
        .await
        .problem(400);
    server
        .get("/api/v1/change-requests?state=maybe")
        .await
        .problem(400);
}

#[tokio::test]
async fn a_request_on_a_flag_changed_since_is_stale_and_applies_nothing() {
    let (server, alice, bob) = four_eyes().await;
    let first = propose(&server, &alice, true, "\"1\"")
        .await
        .ok(202)
        .clone();
    let second = propose(&server, &bob, true, "\"1\"").await.ok(202).clone();
    act(&server, &bob, &first["id"], "approve").await.ok(200);
    let applied = server.get(CONFIG).await.ok(200).clone();

    let stale = act(&server, &alice, &second["id"], "approve").await;
    stale.problem(409);
    assert!(stale.body["detail"]
        .as_str()
        .unwrap()
        .contains("changed since"));
    assert_eq!(
        server.get(CONFIG).await.ok(200).clone(),
        applied,
        "nothing applied"
    );
    let shown = server
        .get(&format!("/api/v1/change-requests/{}", second["id"]))
        .await
        .ok(200)
        .clone();
    assert_eq!(shown["state"], "stale");
    let audit = server.audit("flag=new-checkout").await;
    assert_eq!(audit[0]["action"], "change_request.stale");
    // A stale If-Match is refused when the request is made, as a direct write would be.
    propose(&server, &alice, false, "\"1\"").await.problem(412);
}

#[tokio::test]
async fn a_request_can_be_rejected_or_withdrawn_by_the_right_person_only() {
    let (server, alice, bob) = four_eyes().await;
    let one = propose(&server, &alice, true, "*").await.ok(202).clone();
    act(&server, &bob, &one["id"], "withdraw")
        .await
        .problem(403);
    act(&server, &alice, &one["id"], "reject")
        .await
        .problem(403);
    let withdrawn = act(&server, &alice, &one["id"], "withdraw").await;
    assert_eq!(withdrawn.ok(200)["state"], "withdrawn");
    act(&server, &bob, &one["id"], "approve").await.problem(409);

    let two = propose(&server, &alice, true, "*").await.ok(202).clone();
    let path = format!("/api/v1/change-requests/{}/reject", two["id"]);
    let rejected = server
        .as_token(
            &bob,
            Method::POST,
            &path,
            Some(json!({"reason": "not this week"})),
        )
        .await;
    let rejected = rejected.ok(200).clone();
    assert_eq!(rejected["state"], "rejected");
    assert!(rejected["detail"]
        .as_str()
        .unwrap()
        .contains("not this week"));
    assert_eq!(server.get(CONFIG).await.ok(200)["enabled"], false);

    // Someone who may not change production cannot approve there.
    let carol = server.scoped_token("carol", "write", &["production"]).await;
    let staging = server
        .post("/api/v1/environments", json!({"key": "staging"}))
        .await;
    staging.ok(201);
    let dave = server.scoped_token("dave", "write", &["staging"]).await;
    let three = propose(&server, &carol, true, "*").await.ok(202).clone();
    let refused = act(&server, &dave, &three["id"], "approve").await;
    assert_eq!(refused.problem(403)["required_scope"], "write");
    act(&server, &alice, &three["id"], "approve").await.ok(200);
    let audit = server.audit("flag=new-checkout").await;
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"change_request.rejected"));
    assert!(actions.contains(&"change_request.withdrawn"));
}

#[tokio::test]
async fn kill_and_restore_are_not_held_unless_the_environment_says_so() {
    let (server, alice, bob) = four_eyes().await;
    let kill = "/api/v1/flags/new-checkout/environments/production/kill";
    let restore = "/api/v1/flags/new-checkout/environments/production/restore";
    let killed = server
        .as_token(&alice, Method::POST, kill, Some(json!({"reason": "INC-1"})))
        .await;
    assert_eq!(killed.ok(200)["changed"], true, "a responder never waits");
    server
        .patch(PRODUCTION, json!({"approvals_for_kill": true}))
        .await
        .ok(200);
    let held = server.as_token(&alice, Method::POST, restore, None).await;
    let request = held.ok(202).clone();
    assert_eq!(request["kind"], "restore");
    act(&server, &bob, &request["id"], "approve").await.ok(200);
    let config = server.get(CONFIG).await.ok(200).clone();
    assert_eq!(config["version"], 3, "restored");
    let held = server
        .as_token(&alice, Method::POST, kill, Some(json!({"reason": "INC-2"})))
        .await;
    assert_eq!(held.ok(202)["kind"], "kill");
    assert_eq!(server.get(CONFIG).await.ok(200)["version"], 3);

    server
        .patch(PRODUCTION, json!({"approvals": 11}))
        .await
        .problem(422);
    server
        .patch("/api/v1/environments/nope", json!({"approvals": 1}))
        .await
        .problem(404);
    server
        .patch(PRODUCTION, json!({"approval": 1}))
        .await
        .problem(422);
}

#[tokio::test]
async fn an_approved_change_can_be_scheduled() {
    let (server, alice, bob) = four_eyes().await;
    let schedules = "/api/v1/flags/new-checkout/environments/production/schedules";
    let week = Duration::from_secs(7 * 24 * 3600);
    let at = server.running.state.scheduler.now() + week.as_millis() as i64;
    let body = json!({"at": flag_server::clock::rfc3339(at).unwrap(),
                      "change": {"enabled": true}, "reason": "Monday"});
    let held = server
        .as_token(&alice, Method::POST, schedules, Some(body))
        .await;
    let request = held.ok(202).clone();
    assert_eq!(request["kind"], "schedule");
    assert_eq!(server.get(schedules).await.ok(200), &json!([]));
    let approved = act(&server, &bob, &request["id"], "approve")
        .await
        .ok(200)
        .clone();
    assert!(approved["detail"].as_str().unwrap().contains("scheduled"));
    let planned = server.get(schedules).await.ok(200)[0].clone();
    assert_eq!(
        (
            &planned["state"],
            &planned["author"],
            &planned["change_request"]
        ),
        (&json!("pending"), &json!("alice"), &request["id"])
    );
    server.running.state.scheduler.advance(week);
    let deadline = std::time::Instant::now() + crate::common::live::WAIT;
    while server.get(CONFIG).await.ok(200)["enabled"] != true {
        assert!(std::time::Instant::now() < deadline, "the schedule applies");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(server.get(schedules).await.ok(200)[0]["state"], "applied");
}

#[tokio::test]
async fn segment_writes_are_held_too() {
    let (server, alice, bob) = four_eyes().await;
    let segments = "/api/v1/environments/production/segments";
    let beta = json!({"key": "beta", "rules": [{"clauses": [
        {"attribute": "plan", "op": "in", "values": ["pro"]}]}]});
    let create = format!("{segments}?reason=beta%20users");
    let held = server
        .as_token(&alice, Method::POST, &create, Some(beta.clone()))
        .await;
    let created = held.ok(202).clone();
    assert_eq!(
        (
            &created["kind"],
            &created["segment"],
            &created["flag"],
            &created["base"]
        ),
        (
            &json!("segment"),
            &json!("beta"),
            &json!(null),
            &json!(null)
        )
    );
    assert_eq!(created["reason"], "beta users");
    assert_eq!(server.get(segments).await.ok(200), &json!([]));
    act(&server, &bob, &created["id"], "approve").await.ok(200);
    let path = format!("{segments}/beta");
    assert_eq!(server.get(&path).await.ok(200)["version"], 1);

    let mut wider = beta.clone();
    wider["rules"][0]["clauses"][0]["values"] = json!(["pro", "team"]);
    let held = server
        .as_token(&alice, Method::PUT, &path, Some(wider))
        .await;
    let replaced = held.ok(202).clone();
    assert_eq!(replaced["base_version"], 1);
    assert_eq!(replaced["diff"][0]["path"], "rules[0].clauses[0].values");
    let deleted = server.as_token(&bob, Method::DELETE, &path, None).await;
    let deleted = deleted.ok(202).clone();
    assert_eq!(deleted["kind"], "segment_delete");
    act(&server, &alice, &deleted["id"], "approve")
        .await
        .ok(200);
    server.get(&path).await.problem(404);
    act(&server, &bob, &replaced["id"], "approve")
        .await
        .problem(409);
    let audit = server.audit("").await;
    assert_eq!(audit[0]["action"], "change_request.stale");
    assert_eq!(audit[0]["segment"], "beta");
}
