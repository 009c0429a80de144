//! The product owner's surface: rules, targets, segments, apply, edit (with `$EDITOR` as a
//! script), archive, tags, diff, copy, reasons and the log's diff.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::common::*;

/// An executable shell script in `dir` (an `$EDITOR` stand-in).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn segment_rule(key: &str, segment: &str) -> Value {
    json!({"key": key, "rules": [{"clauses": [{"attribute": "key", "op": "in_segment", "values": [segment]}],
        "serve": {"variation": "on"}}]})
}

#[test]
fn rules_and_targets_are_added_listed_and_removed() {
    let s = Server::start();
    s.create("f");
    s.flag(&[
        "rule",
        "add",
        "f",
        "--id",
        "benelux",
        "--clause",
        "country in NL,BE",
        "--clause",
        "age not lt 18",
        "--serve",
        "on",
        "--reason",
        "JIRA-1",
    ])
    .ok();
    s.flag(&[
        "rule",
        "add",
        "f",
        "--clause",
        "plan in pro",
        "--serve",
        "on=25,off=75",
        "--position",
        "0",
    ])
    .ok();
    let config = s.config("f");
    assert_eq!(
        config["rules"][1],
        json!({"id": "benelux", "clauses": [
            {"attribute": "country", "op": "in", "values": ["NL", "BE"]},
            {"attribute": "age", "op": "lt", "values": [18], "negate": true}],
            "serve": {"variation": "on"}})
    );
    assert_eq!(
        config["rules"][0]["serve"]["rollout"]["weights"],
        json!([{"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}])
    );
    let list = s.flag(&["rule", "list", "f"]).ok().to_owned();
    assert!(
        list.contains("benelux") && list.contains("country in NL, BE AND age not lt 18"),
        "{list}"
    );
    // A bad operator or serve is refused before anything is sent.
    let bad = s.flag(&[
        "rule",
        "add",
        "f",
        "--clause",
        "country equals NL",
        "--serve",
        "on",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let e = bad.stderr;
    assert!(e.contains("semver_gt"), "{e}");
    s.flag(&["rule", "add", "f", "--clause", "a in b", "--serve", "on=50"])
        .fails(2);
    s.flag(&["rule", "remove", "f", "benelux"]).ok();
    s.flag(&["rule", "remove", "f", "0"]).ok();
    assert!(s.config("f").get("rules").is_none());
    s.flag(&["rule", "remove", "f", "nope"]).fails(3);

    s.flag(&["target", "add", "f", "on", "user-1", "user-2"])
        .ok();
    s.flag(&["target", "add", "f", "off", "user-2"]).ok();
    assert_eq!(
        s.config("f")["targets"],
        json!([{"variation": "on", "keys": ["user-1"]}, {"variation": "off", "keys": ["user-2"]}])
    );
    let list = s.flag(&["target", "list", "f"]).ok().to_owned();
    assert!(list.contains("user-2") && list.contains("off"), "{list}");
    s.flag(&["target", "remove", "f", "user-1", "user-2"]).ok();
    assert!(s.config("f").get("targets").is_none());

    // The log shows the reason and what changed.
    let log = s.flag(&["log", "f", "--limit", "20"]).ok().to_owned();
    assert!(log.contains("JIRA-1"), "{log}");
    assert!(log.contains("+ rules: [{"), "{log}");
    assert!(log.contains("- targets: [{"), "{log}");
}

#[test]
fn on_off_and_rollout_carry_a_reason_and_the_log_shows_the_change() {
    let s = Server::start();
    s.create("f");
    s.flag(&["on", "f", "--reason", "launch JIRA-7"]).ok();
    s.flag(&["rollout", "f", "10", "--reason", "canary"]).ok();
    s.flag(&["off", "f", "-r", "rolled back"]).ok();
    let log = s.flag(&["log", "f", "--json"]).json();
    let reasons: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["rolled back", "canary", "launch JIRA-7"]);
    let text = s.flag(&["log", "f"]).ok().to_owned();
    assert!(text.contains("~ enabled: false -> true"), "{text}");
    assert!(text.contains("~ enabled: true -> false"), "{text}");
    assert!(
        text.contains("~ fallthrough.variation: \"on\" -> null")
            || text.contains("+ fallthrough.rollout"),
        "{text}"
    );
    let brief = s.flag(&["log", "f", "--brief"]).ok().to_owned();
    assert!(!brief.contains("~ enabled"), "{brief}");
}

#[test]
fn apply_tells_a_configuration_from_a_segment_and_sends_if_match() {
    let s = Server::start();
    s.create("f");
    let dir = tempfile::tempdir().unwrap();
    let mut config = s.config("f");
    config["enabled"] = json!(true);
    config["targets"] = json!([{"variation": "on", "keys": ["vip"]}]);
    let file = dir.path().join("f.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let out = s.flag(&[
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--reason",
        "from git",
    ]);
    assert!(out.ok().contains("APPLIED flag f"), "{}", out.stdout);
    assert_eq!(s.config("f")["targets"][0]["keys"], json!(["vip"]));
    // The same file again: its version (1) is stale now.
    let e = s
        .flag(&["apply", "-f", file.to_str().unwrap()])
        .fails(5)
        .to_owned();
    assert!(e.contains("412"), "{e}");
    // Without a version it applies on top of the current one.
    config.as_object_mut().unwrap().remove("version");
    config["enabled"] = json!(false);
    std::fs::write(&file, config.to_string()).unwrap();
    s.flag(&["apply", "-f", file.to_str().unwrap()]).ok();
    assert_eq!(s.config("f")["enabled"], false);
    // A field the server does not know is named, not dropped.
    config["enabeld"] = json!(true);
    std::fs::write(&file, config.to_string()).unwrap();
    let e = s
        .flag(&["apply", "-f", file.to_str().unwrap()])
        .fails(1)
        .to_owned();
    assert!(e.contains("enabeld"), "{e}");

    // A segment: created, then replaced.
    let seg = dir.path().join("beta.json");
    std::fs::write(&seg, json!({"key": "beta", "included": ["u1"]}).to_string()).unwrap();
    s.flag(&["apply", "-f", seg.to_str().unwrap()]).ok();
    std::fs::write(
        &seg,
        json!({"key": "beta", "included": ["u1", "u2"]}).to_string(),
    )
    .unwrap();
    let out = s.flag(&["apply", "-f", seg.to_str().unwrap()]);
    assert!(out.ok().contains("APPLIED segment beta"), "{}", out.stdout);
    let got = s.flag(&["segment", "get", "beta", "--json"]).json();
    assert_eq!(got["included"], json!(["u1", "u2"]));
    assert_eq!(got["version"], 2);
}

#[test]
fn edit_opens_the_editor_and_reopens_it_on_a_validation_error() {
    let s = Server::start();
    s.create("f");
    let dir = tempfile::tempdir().unwrap();
    // Turns the flag on.
    let on = script(
        dir.path(),
        "on.sh",
        r#"sed -i 's/"enabled": false/"enabled": true/' "$1""#,
    );
    let out = s.flag_with(&[("EDITOR", on.to_str().unwrap())], &["edit", "f"]);
    assert!(
        out.ok().contains("~ enabled: false -> true"),
        "{}",
        out.stdout
    );
    assert_eq!(s.config("f")["enabled"], true);
    assert_eq!(s.config("f")["version"], 2);

    // First an off variation that does not exist, then (seeing the error) a good one.
    let count = dir.path().join("count");
    let seen = dir.path().join("seen");
    let fixing = script(
        dir.path(),
        "fixing.sh",
        &format!(
            r#"n=$(cat {count} 2>/dev/null || echo 0); echo $((n + 1)) > {count}
if [ "$n" = 0 ]; then
  sed -i 's/"off_variation": "off"/"off_variation": "nope"/' "$1"
else
  grep '^//' "$1" > {seen}
  sed -i 's/"off_variation": "nope"/"off_variation": "on"/' "$1"
fi"#,
            count = count.display(),
            seen = seen.display()
        ),
    );
    let out = s.flag_with(&[("EDITOR", fixing.to_str().unwrap())], &["edit", "f"]);
    out.ok();
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "2");
    let shown = std::fs::read_to_string(&seen).unwrap();
    assert!(shown.contains("off_variation"), "{shown}");
    assert!(out.stderr.contains("opening it again"), "{}", out.stderr);
    assert_eq!(s.config("f")["off_variation"], "on");

    // An editor that keeps the error: nothing is written, and the error says why.
    let stubborn = script(
        dir.path(),
        "stubborn.sh",
        r#"sed -i 's/"off_variation": "on"/"off_variation": "nope"/' "$1""#,
    );
    let out = s.flag_with(&[("EDITOR", stubborn.to_str().unwrap())], &["edit", "f"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let e = out.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(e.starts_with("flag: error: not applied"), "{e}");
    assert!(e.contains("off_variation"), "{e}");
    assert_eq!(s.config("f")["off_variation"], "on");
    // Saved unchanged: nothing is written.
    let out = s.flag_with(&[("EDITOR", "true")], &["edit", "f"]);
    assert!(out.ok().contains("no change"), "{}", out.stdout);
    assert_eq!(s.config("f")["version"], 3);
}

#[test]
fn segments_are_listed_created_edited_and_deleted_and_a_409_names_their_users() {
    let s = Server::start();
    s.flag(&[
        "segment",
        "create",
        "beta",
        "--include",
        "u1",
        "--exclude",
        "u2",
        "--rule",
        "plan in pro,enterprise",
    ])
    .ok();
    let list = s.flag(&["segment", "list"]).ok().to_owned();
    assert!(list.contains("beta"), "{list}");
    let got = s.flag(&["segment", "get", "beta", "--json"]).json();
    assert_eq!(
        got["rules"],
        json!([{"clauses": [{"attribute": "plan", "op": "in", "values": ["pro", "enterprise"]}]}])
    );
    let dir = tempfile::tempdir().unwrap();
    let add = script(dir.path(), "add.sh", r#"sed -i 's/"u1"/"u1", "u3"/' "$1""#);
    s.flag_with(
        &[("EDITOR", add.to_str().unwrap())],
        &["segment", "edit", "beta"],
    )
    .ok();
    let got = s.flag(&["segment", "get", "beta", "--json"]).json();
    assert_eq!(got["included"], json!(["u1", "u3"]));

    for key in ["checkout", "banner"] {
        s.create(key);
        let mut config = s.config(key);
        config["rules"] = segment_rule(key, "beta")["rules"].clone();
        s.put_config(&config);
    }
    let e = s.flag(&["segment", "delete", "beta"]).fails(5).to_owned();
    assert!(
        e.contains("flag `banner`") && e.contains("flag `checkout`"),
        "{e}"
    );
    s.flag(&["rule", "remove", "checkout", "0"]).ok();
    s.flag(&["rule", "remove", "banner", "0"]).ok();
    s.flag(&["segment", "delete", "beta", "--reason", "done"])
        .ok();
    s.flag(&["segment", "get", "beta"]).fails(3);
}

#[test]
fn archive_unarchive_tags_and_list_filters() {
    let s = Server::start();
    s.create("checkout");
    s.create("banner");
    s.flag(&["tag", "checkout", "add", "payments", "q3"]).ok();
    s.flag(&["tag", "checkout", "remove", "q3"]).ok();
    let meta: Value =
        serde_json::from_str(s.flag(&["list", "--json", "--tag", "payments"]).ok()).unwrap();
    assert_eq!(meta.as_array().unwrap().len(), 1);
    assert_eq!(meta[0]["tags"], json!(["payments"]));
    s.flag(&["on", "banner"]).ok();
    let on = s.flag(&["list", "--state", "on"]).ok().to_owned();
    assert!(on.contains("banner") && !on.contains("checkout"), "{on}");
    let found = s.flag(&["list", "--search", "CHECK"]).ok().to_owned();
    assert!(
        found.contains("checkout") && !found.contains("banner"),
        "{found}"
    );

    s.flag(&["archive", "banner", "--reason", "launched"]).ok();
    assert!(!s.flag(&["list"]).ok().contains("banner"));
    s.flag(&["get", "banner"]).fails(3);
    s.flag(&["unarchive", "banner"]).ok();
    assert_eq!(s.config("banner")["enabled"], true);
    let e = s.flag(&["unarchive", "banner"]).fails(5).to_owned();
    assert!(e.contains("not archived"), "{e}");
}

#[test]
fn diff_and_copy_between_environments() {
    let s = Server::start();
    s.create("f");
    s.flag(&["env", "create", "staging"]).ok();
    s.flag(&["--env", "staging", "on", "f"]).ok();
    s.flag(&[
        "--env",
        "staging",
        "rule",
        "add",
        "f",
        "--id",
        "nl",
        "--clause",
        "country in NL",
        "--serve",
        "on",
    ])
    .ok();
    let out = s.flag(&["diff", "f", "--env", "staging", "--env", "production"]);
    let text = out.ok();
    assert!(text.contains("~ enabled: true -> false"), "{text}");
    assert!(text.contains("- rules: [{"), "{text}");
    s.flag(&["diff", "f", "--env", "staging"]).fails(2);
    s.flag(&["on", "f", "--env", "staging", "--env", "production"])
        .fails(2);

    let out = s.flag(&["copy", "f", "--from", "staging", "--to", "production"]);
    assert!(
        out.ok().contains("COPIED f from staging to production"),
        "{}",
        out.stdout
    );
    let production = s.config("f");
    assert_eq!(production["enabled"], true);
    assert_eq!(production["rules"][0]["id"], "nl");
    let same = s.flag(&["diff", "f", "--env", "staging", "--env", "production"]);
    assert!(same.ok().contains("configured the same"), "{}", same.stdout);
    let log = s
        .flag(&["log", "f", "--this-env", "--json", "--limit", "1"])
        .json();
    assert_eq!(log["entries"][0]["reason"], "copied from staging");
    // Copying again changes nothing.
    let again = s.flag(&["copy", "f", "--from", "staging", "--to", "production"]);
    assert!(again.ok().contains("nothing changed"), "{}", again.stdout);
}
