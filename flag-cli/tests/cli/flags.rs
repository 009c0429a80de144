//! kill, restore, on, off, rollout, list, get, create.

use std::io::Read;

use serde_json::json;

use super::common::*;

#[test]
fn create_list_get() {
    let s = Server::start();
    let out = s.flag(&[
        "create",
        "new-checkout",
        "--name",
        "New checkout",
        "--tag",
        "web",
    ]);
    assert!(out.ok().contains("CREATED new-checkout"), "{}", out.stdout);
    s.flag(&[
        "create",
        "theme",
        "--kind",
        "string",
        "--variation",
        "light=\"light\"",
        "--variation",
        "dark=\"dark\"",
    ])
    .ok();

    let out = s.flag(&["list"]);
    let text = out.ok();
    assert!(text.starts_with("KEY"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("new-checkout"))
        .unwrap();
    assert!(
        row.contains("boolean") && row.contains("off") && row.contains("New checkout"),
        "{row}"
    );

    let list = s.flag(&["list", "--json"]).json();
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"new-checkout") && keys.contains(&"theme"));

    let get = s.flag(&["get", "theme", "--json"]).json();
    assert_eq!(get["enabled"], false);
    assert_eq!(get["off_variation"], "dark");
    assert_eq!(get["fallthrough"], json!({"variation": "light"}));
    let text = s.flag(&["get", "new-checkout"]).ok().to_owned();
    assert!(
        text.contains("new-checkout (boolean) in production") && text.contains("OFF"),
        "{text}"
    );
}

#[test]
fn on_and_off_are_idempotent() {
    let s = Server::start();
    s.create("f");
    let out = s.flag(&["on", "f"]);
    assert!(out.ok().contains("ON f in production"), "{}", out.stdout);
    assert_eq!(s.config("f")["enabled"], true);
    let out = s.flag(&["on", "f"]);
    assert!(out.ok().contains("nothing changed"), "{}", out.stdout);
    let after = s.flag(&["off", "f", "--json"]).json();
    assert_eq!(after["changed"], true);
    assert_eq!(after["flag"]["enabled"], false);
    assert_eq!(s.config("f")["enabled"], false);
}

#[test]
fn rollout_grows_the_first_variation() {
    let s = Server::start();
    s.create("f");
    let out = s.flag(&["rollout", "f", "5"]);
    assert!(out.ok().contains("5% on / 95% off"), "{}", out.stdout);
    assert!(out.stdout.contains("the flag is off"), "{}", out.stdout);
    s.flag(&["rollout", "f", "25"]).ok();
    assert_eq!(
        s.config("f")["fallthrough"],
        json!({"rollout": {"bucket_by": "key", "weights": [
            {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}})
    );
    s.flag(&[
        "rollout",
        "f",
        "0.5",
        "--variation",
        "off",
        "--bucket-by",
        "org",
    ])
    .ok();
    assert_eq!(
        s.config("f")["fallthrough"],
        json!({"rollout": {"bucket_by": "org", "weights": [
            {"variation": "off", "weight": 500}, {"variation": "on", "weight": 99500}]}})
    );
    assert_eq!(s.flag(&["rollout", "f", "101"]).code, 2, "clap usage error");
    let err = s
        .flag(&["rollout", "f", "10", "--variation", "nope"])
        .fails(2)
        .to_owned();
    assert!(err.contains("no variation `nope`"), "{err}");
}

#[test]
fn kill_then_restore_puts_back_exactly_the_previous_config() {
    let s = Server::start();
    s.create("new-checkout");
    s.flag(&["on", "new-checkout"]).ok();
    s.flag(&["rollout", "new-checkout", "25"]).ok();
    let mut config = s.config("new-checkout");
    config["rules"] = json!([{"id": "benelux",
        "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
        "serve": {"variation": "on"}}]);
    config["targets"] = json!([{"variation": "on", "keys": ["user-1"]}]);
    s.put_config(&config);
    let before = s.config("new-checkout");

    // An SDK listening on the stream of production.
    let sdk = s
        .flag(&[
            "token",
            "create",
            "--kind",
            "sdk",
            "--name",
            "checkout-svc",
            "--json",
        ])
        .json();
    let mut stream = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .get(format!("{}/sdk/v1/stream", s.base))
        .bearer_auth(sdk["token"].as_str().unwrap())
        .send()
        .unwrap();
    assert!(stream.status().is_success());
    let mut first = [0u8; 16];
    stream.read_exact(&mut first).unwrap(); // the first event is on its way: subscribed

    let out = s.flag(&["kill", "new-checkout", "--reason", "INC-2042"]);
    let text = out.ok();
    assert!(text.contains("KILLED new-checkout in production"), "{text}");
    assert!(
        text.contains("before:    ON, fallthrough 25% on / 75% off (after 1 target list, 1 rule)"),
        "{text}"
    );
    assert!(
        text.contains("now:       OFF, serving off (false) to everyone"),
        "{text}"
    );
    assert!(
        text.contains("reaching:  1 SDK connection(s) in production"),
        "{text}"
    );
    assert_eq!(s.config("new-checkout")["enabled"], false);

    let again = s
        .flag(&["kill", "new-checkout", "--reason", "INC-2042", "--json"])
        .json();
    assert_eq!(again["changed"], false);
    assert_eq!(again["subscribers"], 1);

    let out = s.flag(&["restore", "new-checkout", "--reason", "fixed"]);
    assert!(out.ok().contains("RESTORED new-checkout"), "{}", out.stdout);
    let mut after = s.config("new-checkout");
    assert!(after["version"].as_u64() > before["version"].as_u64());
    after["version"] = before["version"].clone();
    assert_eq!(after, before);

    // Restoring twice is a conflict.
    let err = s.flag(&["restore", "new-checkout"]).fails(5).to_owned();
    assert!(err.contains("409"), "{err}");

    let log = s.flag(&["log", "new-checkout"]);
    let text = log.ok();
    assert!(
        text.contains("INC-2042") && text.contains("fixed"),
        "{text}"
    );
    let log = s
        .flag(&["log", "new-checkout", "--json", "--limit", "2"])
        .json();
    assert_eq!(log["entries"].as_array().unwrap().len(), 2);
}

#[test]
fn a_lost_race_is_retried_once_on_top_of_the_other_change() {
    let s = Server::start();
    s.create("f");
    let base = s.base.clone();
    let racer = move || {
        let url = format!("{base}/api/v1/flags/f/environments/production");
        let client = reqwest::blocking::Client::new();
        let mut config: serde_json::Value = client
            .get(&url)
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let n = config["targets"].as_array().map_or(0, Vec::len);
        config["targets"] = json!([{"variation": "on", "keys": [format!("racer-{n}")]}]);
        let res = client
            .put(&url)
            .bearer_auth(ADMIN)
            .json(&config)
            .send()
            .unwrap();
        assert!(res.status().is_success());
    };
    let proxy = racing_proxy(s.addr, 1, racer.clone());
    let out = s.bare(&["--server", &proxy, "--token", ADMIN, "on", "f"]);
    assert!(out.ok().contains("412"), "{}", out.stdout);
    let config = s.config("f");
    assert_eq!(config["enabled"], true, "our change");
    assert_eq!(
        config["targets"][0]["keys"][0], "racer-0",
        "their change kept"
    );

    let proxy = racing_proxy(s.addr, 2, racer);
    let err = s
        .bare(&["--server", &proxy, "--token", ADMIN, "rollout", "f", "30"])
        .fails(5)
        .to_owned();
    assert!(
        err.contains("412") && err.contains("changed it meanwhile"),
        "{err}"
    );
    assert_eq!(
        s.config("f")["fallthrough"],
        json!({"variation": "on"}),
        "nothing overwritten"
    );
}
