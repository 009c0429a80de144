//! OFREP with clients nobody here wrote: the OpenFeature SDKs and OFREP providers of Python
//! (PyPI) and Node (npm), installed by `.ci/ofrep-clients.sh` under the target directory, run
//! as processes against the real server on a loopback port. Each script checks boolean,
//! string, number and object flags, targeting, FLAG_NOT_FOUND, a type mismatch and a missing
//! targeting key, and prints the variant 200 contexts got from a rollout: those must be what
//! the server's own evaluator gives them. A missing client fails the test, naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::common::target_dir;
use crate::common::{rich_config, TestServer};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ofrep_clients");

/// Creates flag `key` of `kind` with these variations, serving `serve` to everyone.
async fn flag(s: &TestServer, key: &str, kind: &str, variations: Value, serve: &str) {
    s.post(
        "/api/v1/flags",
        json!({"key": key, "kind": kind, "variations": variations}),
    )
    .await
    .ok(201);
    let path = format!("/api/v1/flags/{key}/environments/production");
    let mut config = s.get(&path).await.ok(200).clone();
    config["enabled"] = json!(true);
    config["fallthrough"] = json!({ "variation": serve });
    s.put(&path, config, None).await.ok(200);
}

/// The server the scripts expect, and an SDK token for it.
async fn server() -> (TestServer, String) {
    let s = TestServer::start().await;
    s.create_flag("checkout").await;
    s.put(
        "/api/v1/flags/checkout/environments/production",
        rich_config("checkout"),
        None,
    )
    .await
    .ok(200);
    let two = |a: Value, b: Value| json!([{"key": "a", "value": a}, {"key": "b", "value": b}]);
    flag(
        &s,
        "theme",
        "string",
        json!([{"key": "red", "value": "red"}, {"key": "blue", "value": "blue"}]),
        "red",
    )
    .await;
    flag(&s, "limit", "number", two(json!(42), json!(7)), "a").await;
    flag(&s, "ratio", "number", two(json!(0.25), json!(0.5)), "a").await;
    flag(
        &s,
        "layout",
        "json",
        two(json!({"columns": 3, "dense": true}), json!({})),
        "a",
    )
    .await;
    let sdk = s.sdk_token("production").await;
    (s, sdk)
}

/// Runs `program args` with `env`, off the async threads; panics with its stderr on failure;
/// returns the last line it printed, as JSON.
async fn run(program: PathBuf, args: Vec<String>, env: Vec<(&'static str, PathBuf)>) -> Value {
    let shown = program.display().to_string();
    let output =
        tokio::task::spawn_blocking(move || Command::new(&program).args(&args).envs(env).output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{shown} printed no JSON ({e}): {stdout}"))
}

/// The server's own variants for the contexts a script evaluated.
async fn server_variants(s: &TestServer, split: &Value) -> BTreeMap<String, Value> {
    let mut expected = BTreeMap::new();
    for key in split.as_object().expect("an object of variants").keys() {
        let r = s
            .post(
                "/api/v1/environments/production/evaluate",
                json!({"context": {"key": key}, "flags": ["checkout"]}),
            )
            .await;
        expected.insert(
            key.clone(),
            r.ok(200)["results"]["checkout"]["variation"].clone(),
        );
    }
    expected
}

async fn assert_split_matches(s: &TestServer, split: Value) {
    let got: BTreeMap<String, Value> = serde_json::from_value(split.clone()).unwrap();
    assert_eq!(got.len(), 200);
    assert_eq!(got, server_variants(s, &split).await);
    let on = got.values().filter(|v| *v == "on").count();
    assert!((20..=80).contains(&on), "a 25% rollout gave {on} of 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_openfeature_sdk_with_the_ofrep_provider() {
    let python = target_dir().join("ofrep-python-venv/bin/python");
    assert!(
        python.exists(),
        "the Python OFREP client is missing ({}): `bash .ci/ofrep-clients.sh` installs \
         openfeature-sdk and openfeature-provider-ofrep there",
        python.display()
    );
    let (s, sdk) = server().await;
    let script = Path::new(SCRIPTS).join("client.py").display().to_string();
    let split = run(python, vec![script, s.base.clone(), sdk], Vec::new()).await;
    assert_split_matches(&s, split).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_server_sdk_with_the_ofrep_provider() {
    let modules = target_dir().join("ofrep-node/node_modules");
    assert!(
        modules.join("@openfeature/ofrep-provider").exists(),
        "the Node OFREP client is missing ({}): `bash .ci/ofrep-clients.sh` installs \
         @openfeature/server-sdk and @openfeature/ofrep-provider there (it needs node and npm)",
        modules.display()
    );
    let (s, sdk) = server().await;
    let script = Path::new(SCRIPTS).join("client.cjs").display().to_string();
    let split = run(
        PathBuf::from("node"),
        vec![script, s.base.clone(), sdk],
        vec![("NODE_PATH", modules)],
    )
    .await;
    assert_split_matches(&s, split).await;
}
