//! env, token, status, profiles, completions, release.

use serde_json::json;

use super::common::*;

#[test]
fn environments() {
    let s = Server::start();
    s.create("f");
    s.flag(&["env", "create", "staging"]).ok();
    let text = s.flag(&["env", "list"]).ok().to_owned();
    assert!(
        text.contains("production") && text.contains("staging"),
        "{text}"
    );
    let list = s.flag(&["env", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    s.flag(&["env", "create", "staging"]).fails(5);
    // The new environment has the flag: turn it on there only.
    s.flag(&["--env", "staging", "on", "f"]).ok();
    assert_eq!(s.config("f")["enabled"], false);
    let staging = s.flag(&["--env", "staging", "get", "f", "--json"]).json();
    assert_eq!(staging["enabled"], true);
    // The audit log of one environment only.
    let log = s
        .flag(&["--env", "staging", "log", "--this-env", "--json"])
        .json();
    let entries = log["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["environment"] == "staging"),
        "{log}"
    );
}

#[test]
fn tokens_create_list_revoke() {
    let s = Server::start();
    let created = s
        .flag(&[
            "token", "create", "--kind", "admin", "--name", "alice", "--json",
        ])
        .json();
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].to_string();
    let text = s.flag(&["token", "list"]).ok().to_owned();
    assert!(text.contains("alice") && !text.contains(&secret), "{text}");
    // The new token works, and the audit log names it.
    s.bare(&[
        "--server", &s.base, "--token", &secret, "create", "by-alice",
    ])
    .ok();
    let log = s.flag(&["log", "--json"]).json();
    assert_eq!(log["entries"][0]["actor"], "alice");
    let out = s.flag(&["token", "create", "--kind", "sdk", "--name", "svc"]);
    assert!(
        out.ok().contains("sdk token") && out.stdout.contains("for production"),
        "{}",
        out.stdout
    );

    s.flag(&["token", "revoke", &id]).ok();
    s.bare(&["--server", &s.base, "--token", &secret, "list"])
        .fails(4);
    let list = s.flag(&["token", "list", "--json"]).json();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["name"] != "alice"));
    s.flag(&["token", "revoke", "9999"]).fails(3);
}

#[test]
fn status_reports_health_revision_and_streams() {
    let s = Server::start();
    s.create("f");
    s.flag(&["on", "f"]).ok();
    let text = s.flag(&["status"]).ok().to_owned();
    assert!(
        text.contains("alive, ready") && text.contains("1 on") && text.contains("SDK streams:  0"),
        "{text}"
    );
    let st = s.flag(&["status", "--json"]).json();
    assert_eq!(st["healthy"], true);
    assert_eq!(st["flags_on"], 1);
    assert_eq!(st["sdk_connections"], 0);
    assert!(st["revision"].as_u64().unwrap() >= 2);
    s.bare(&["--server", &dead_url(), "status"]).fails(6);
}

#[test]
fn profiles_fill_in_and_explicit_options_win() {
    let s = Server::start();
    s.create("f");
    let dir = s.home.path().join(".config/flag");
    std::fs::create_dir_all(&dir).unwrap();
    let config = json!({"default_profile": "local", "profiles": {
        "local": {"server": s.base, "token": ADMIN, "env": "production"},
        "dead": {"server": dead_url(), "token": ADMIN}}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    // The default profile, then a named one.
    assert!(s.bare(&["list"]).ok().contains("f"));
    assert!(s
        .bare(&["--profile", "local", "get", "f"])
        .ok()
        .contains("f (boolean)"));
    s.bare(&["--profile", "dead", "list"]).fails(6);
    // Explicit options override the profile.
    s.bare(&["--profile", "dead", "--server", &s.base, "list"])
        .ok();
    s.bare(&["--profile", "local", "--token", "wrong", "list"])
        .fails(4);
    let err = s.bare(&["--profile", "nope", "list"]).fails(2).to_owned();
    assert!(err.contains("dead, local"), "{err}");
    let text = s.bare(&["profiles"]).ok().to_owned();
    assert!(text.contains("local*") && !text.contains(ADMIN), "{text}");
    // An explicit config file that is missing is an error.
    s.bare(&["--config", "/nonexistent/flag.json", "list"])
        .fails(1);
}

#[test]
fn completions_for_each_shell() {
    let s = Server::start();
    for shell in ["bash", "zsh", "fish"] {
        let out = s.bare(&["completions", shell]);
        assert!(out.ok().contains("kill"), "{shell}");
    }
    assert_eq!(s.bare(&["completions", "tcsh"]).code, 2);
}

#[test]
fn release_start_status_pause_resume_abort() {
    let s = Server::start();
    s.create("f");
    // A release needs the flag on.
    s.flag(&["release", "start", "f"]).fails(5);
    s.flag(&["on", "f"]).ok();
    let out = s.flag(&[
        "release",
        "start",
        "f",
        "--stages",
        "10,50,100",
        "--hold",
        "1h",
        "--max-error-increase",
        "3%",
    ]);
    assert!(out.ok().contains("RUNNING at 10%"), "{}", out.stdout);
    let fallthrough = &s.config("f")["fallthrough"]["rollout"]["weights"][0];
    assert_eq!(fallthrough["weight"], 10_000);
    let st = s.flag(&["release", "status", "f", "--json"]).json();
    assert_eq!(st["state"], "running");
    assert_eq!(st["hold_seconds"], 3600);
    assert_eq!(st["guard"]["max_error_rate_increase"], 0.03);
    assert!(s
        .flag(&["release", "pause", "f", "--reason", "looking"])
        .ok()
        .contains("PAUSED"));
    assert!(s.flag(&["release", "resume", "f"]).ok().contains("RUNNING"));
    assert!(s.flag(&["release", "advance", "f"]).ok().contains("at 50%"));
    assert!(s
        .flag(&["release", "abort", "f", "--reason", "enough"])
        .ok()
        .contains("ABORTED"));
    assert_eq!(s.config("f")["fallthrough"], json!({"variation": "on"}));
    // `--watch` returns by itself once the release is no longer running.
    assert!(s
        .flag(&["release", "status", "f", "--watch"])
        .ok()
        .contains("ABORTED"));
    let err = s.flag(&["release", "status", "g"]).fails(3).to_owned();
    assert!(err.contains("`g`"), "{err}");
}
