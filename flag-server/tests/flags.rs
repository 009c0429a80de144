//! Flags: create, list, get, patch, archive, and the configuration per environment.

use serde_json::{json, Value};

use crate::common::{rich_config, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_flag_exists_in_every_environment_disabled() {
    let s = TestServer::start().await;
    s.post("/api/v1/environments", json!({"key": "staging"}))
        .await
        .ok(201);
    let meta = s.create_flag("new-checkout").await;
    assert_eq!(meta["kind"], "boolean");
    assert_eq!(meta["archived"], false);
    for env in ["production", "staging"] {
        let r = s
            .get(&format!("/api/v1/flags/new-checkout/environments/{env}"))
            .await;
        let config = r.ok(200);
        assert_eq!(r.headers["etag"], "\"1\"");
        assert_eq!(config["enabled"], false);
        assert_eq!(config["version"], 1);
        assert_eq!(config["off_variation"], "off");
        assert_eq!(config["fallthrough"], json!({"variation": "on"}));
        assert_eq!(
            meta["environments"][env],
            json!({"enabled": false, "version": 1, "killed": false, "rollout": false, "release": false})
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_flags_take_their_variations() {
    let s = TestServer::start().await;
    let r = s
        .post(
            "/api/v1/flags",
            json!({"key": "banner", "kind": "string", "name": "Banner", "tags": ["ui"],
                   "variations": [{"key": "a", "value": "A"}, {"key": "b", "value": "B"}, {"key": "none", "value": ""}]}),
        )
        .await;
    assert_eq!(r.ok(201)["name"], "Banner");
    let config = s.get("/api/v1/flags/banner/environments/production").await;
    assert_eq!(config.body["off_variation"], "none");
    assert_eq!(config.body["fallthrough"], json!({"variation": "a"}));

    // A string flag without variations, and a variation of the wrong type, name the field.
    let r = s
        .post("/api/v1/flags", json!({"key": "x", "kind": "string"}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["variations"]);
    let r = s
        .post(
            "/api/v1/flags",
            json!({"key": "y", "kind": "number", "variations": [{"key": "a", "value": "1"}]}),
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["variations[0].value"]);
    let r = s
        .post("/api/v1/flags", json!({"key": "Bad Key", "kind": "colour"}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["key", "kind"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_get_patch_and_archive() {
    let s = TestServer::start().await;
    s.create_flag("b-flag").await;
    s.create_flag("a-flag").await;
    let list = s.get("/api/v1/flags").await;
    let keys: Vec<&str> = list
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a-flag", "b-flag"]);

    let r = s
        .patch(
            "/api/v1/flags/a-flag",
            json!({"name": "A", "description": "the a", "tags": ["x"]}),
        )
        .await;
    assert_eq!(r.ok(200)["description"], "the a");
    let r = s.get("/api/v1/flags/a-flag").await;
    assert_eq!(r.ok(200)["name"], "A");
    assert_eq!(r.body["tags"], json!(["x"]));
    s.get("/api/v1/flags/nope").await.problem(404);
    s.patch("/api/v1/flags/nope", json!({"name": "x"}))
        .await
        .problem(404);

    let r = s.delete("/api/v1/flags/a-flag").await;
    assert_eq!(r.ok(200)["archived"], true);
    s.delete("/api/v1/flags/a-flag").await.problem(409);
    s.delete("/api/v1/flags/nope").await.problem(404);
    let list = s.get("/api/v1/flags").await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let list = s.get("/api/v1/flags?archived=true").await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    // Archived: gone from the environment, and the key stays taken.
    s.get("/api/v1/flags/a-flag/environments/production")
        .await
        .problem(404);
    s.post("/api/v1/flags", json!({"key": "a-flag", "kind": "boolean"}))
        .await
        .problem(409);
    let r = s
        .put(
            "/api/v1/flags/a-flag/environments/production",
            rich_config("a-flag"),
            None,
        )
        .await;
    r.problem(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_the_configuration_and_bumps_versions() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let before = s.revision().await;
    let r = s
        .put(
            "/api/v1/flags/f/environments/production",
            rich_config("f"),
            Some("\"1\""),
        )
        .await;
    let stored = r.ok(200);
    assert_eq!(r.headers["etag"], "\"2\"");
    assert_eq!(stored["version"], 2);
    let mut expected = rich_config("f");
    expected["version"] = json!(2);
    assert_eq!(stored, &expected);
    let got = s.get("/api/v1/flags/f/environments/production").await;
    assert_eq!(got.body, expected);
    let after = s.revision().await;
    assert_eq!(after, before + 1);

    // Without If-Match: accepted (last writer wins, as the client chose).
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        None,
    )
    .await
    .ok(200);
    // Stale If-Match: 412.
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        Some("\"2\""),
    )
    .await
    .problem(412);
    // Unknown flag and environment: 404.
    s.put(
        "/api/v1/flags/nope/environments/production",
        rich_config("nope"),
        None,
    )
    .await
    .problem(404);
    s.put("/api/v1/flags/f/environments/nope", rich_config("f"), None)
        .await
        .problem(404);
    s.get("/api/v1/flags/f/environments/nope")
        .await
        .problem(404);
    // The key in the body must be the path's, the kind the flag's.
    let r = s
        .put(
            "/api/v1/flags/f/environments/production",
            rich_config("g"),
            None,
        )
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["key"]);
    let mut config = rich_config("f");
    config["kind"] = json!("json");
    let r = s
        .put("/api/v1/flags/f/environments/production", config, None)
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["kind"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_changes_nothing() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        None,
    )
    .await
    .ok(200);
    let config_before = s.get("/api/v1/flags/f/environments/production").await.body;
    let audit_before = s.audit("").await;
    let envs_before = s.get("/api/v1/environments").await.body;

    let mut bad = rich_config("f");
    bad["rules"][0]["clauses"][0]["op"] = json!("matches");
    bad["rules"][0]["clauses"][0]["values"] = json!(["(unclosed"]);
    bad["fallthrough"]["rollout"]["weights"][0]["weight"] = json!(1);
    let r = s
        .put(
            "/api/v1/flags/f/environments/production",
            bad,
            Some("\"2\""),
        )
        .await;
    r.problem(422);
    let fields = r.fields();
    assert!(
        fields.contains(&"rules[0].clauses[0].values[0]".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("fallthrough.rollout.weights")),
        "{fields:?}"
    );

    // A prerequisite that does not exist; a cycle.
    let mut bad = rich_config("f");
    bad["prerequisites"] = json!([{"flag": "ghost", "variation": "on"}]);
    let r = s
        .put("/api/v1/flags/f/environments/production", bad, None)
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["prerequisites[0].flag"]);
    let mut bad = rich_config("f");
    bad["prerequisites"] = json!([{"flag": "f", "variation": "on"}]);
    s.put("/api/v1/flags/f/environments/production", bad, None)
        .await
        .problem(422);

    // Unknown and missing fields.
    let mut bad = rich_config("f");
    bad["colour"] = json!("red");
    let r = s
        .put("/api/v1/flags/f/environments/production", bad, None)
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["colour"]);
    let mut bad = rich_config("f");
    bad.as_object_mut().unwrap().remove("off_variation");
    let r = s
        .put("/api/v1/flags/f/environments/production", bad, None)
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["off_variation"]);

    // Nested: a wrong type, an unknown operator, a missing field are named by their path.
    let mut bad = rich_config("f");
    bad["rules"][0]["clauses"][0]["negate"] = json!("yes");
    let r = s
        .put("/api/v1/flags/f/environments/production", bad, None)
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["rules[0].clauses[0].negate"]);
    let mut bad = rich_config("f");
    bad["rules"][0]["clauses"][0]["op"] = json!("near");
    let r = s
        .put("/api/v1/flags/f/environments/production", bad, None)
        .await;
    assert_eq!(r.fields(), ["rules[0].clauses[0].op"]);
    let mut bad = rich_config("f");
    bad["targets"][0].as_object_mut().unwrap().remove("keys");
    let r = s
        .put("/api/v1/flags/f/environments/production", bad, None)
        .await;
    assert_eq!(r.fields(), ["targets[0].keys"]);

    // Stale If-Match.
    s.put(
        "/api/v1/flags/f/environments/production",
        rich_config("f"),
        Some("\"1\""),
    )
    .await
    .problem(412);

    assert_eq!(
        s.get("/api/v1/flags/f/environments/production").await.body,
        config_before
    );
    assert_eq!(s.audit("").await, audit_before);
    assert_eq!(s.get("/api/v1/environments").await.body, envs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prerequisites_pin_the_flags_they_name() {
    let s = TestServer::start().await;
    s.create_flag("base").await;
    s.create_flag("child").await;
    let mut config = rich_config("child");
    config["prerequisites"] = json!([{"flag": "base", "variation": "on"}]);
    s.put("/api/v1/flags/child/environments/production", config, None)
        .await
        .ok(200);
    let r = s.delete("/api/v1/flags/base").await;
    r.problem(409);
    assert!(r.body["detail"].as_str().unwrap().contains("child"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regexes_are_compiled_at_write_time_with_a_size_limit() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let mut config = rich_config("f");
    config["rules"][0]["clauses"][0] =
        json!({"attribute": "email", "op": "matches", "values": ["^(a|b){1000}{1000}$"]});
    let r = s
        .put("/api/v1/flags/f/environments/production", config, None)
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["rules[0].clauses[0].values[0]"]);
    let mut config = rich_config("f");
    config["rules"][0]["clauses"][0] =
        json!({"attribute": "email", "op": "matches", "values": ["@example\\.com$"]});
    s.put("/api/v1/flags/f/environments/production", config, None)
        .await
        .ok(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_cannot_redefine_the_flags_variations() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let path = "/api/v1/flags/f/environments/production";
    let before = s.put(path, rich_config("f"), None).await.ok(200).clone();
    let with_variations = |variations: Value| {
        let mut config = rich_config("f");
        config["variations"] = variations;
        config
    };
    let on = json!({"key": "on", "value": true});
    let off = json!({"key": "off", "value": false});
    let cases = [
        (
            json!([{"key": "on", "value": false}, off.clone()]),
            "variations[0].value",
        ),
        (
            json!([on.clone(), {"key": "of", "value": false}]),
            "variations[1].key",
        ),
        (
            json!([on.clone(), off.clone(), {"key": "maybe", "value": true}]),
            "variations",
        ),
        (json!([on.clone()]), "variations"),
    ];
    for (variations, field) in cases {
        let r = s.put(path, with_variations(variations), None).await;
        r.problem(422);
        assert_eq!(r.fields(), [field]);
        let detail = r.body["errors"][0]["message"].as_str().unwrap();
        assert!(detail.contains("`on` = true, `off` = false"), "{detail}");
    }
    // `variations` stays required, and the flag's own ones are accepted as before.
    let mut without = rich_config("f");
    without.as_object_mut().unwrap().remove("variations");
    s.put(path, without, None).await.problem(422);
    assert_eq!(s.get(path).await.ok(200).clone(), before, "nothing changed");
    s.put(path, with_variations(json!([on, off])), None)
        .await
        .ok(200);
}
