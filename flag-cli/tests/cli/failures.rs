//! One line on stderr and the documented exit status for every class of failure.

use super::common::*;

#[test]
fn unknown_flag_is_3_and_names_the_key() {
    let s = Server::start();
    for args in [
        vec!["get", "no-such-flag"],
        vec!["kill", "no-such-flag", "--reason", "x"],
        vec!["restore", "no-such-flag"],
        vec!["on", "no-such-flag"],
        vec!["rollout", "no-such-flag", "5"],
    ] {
        let err = s.flag(&args).fails(3).to_owned();
        assert!(
            err.contains("no-such-flag") && err.contains("flag list"),
            "{args:?}: {err}"
        );
    }
    let err = s
        .flag(&["--env", "nowhere", "get", "x"])
        .fails(3)
        .to_owned();
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn bad_or_missing_token_is_4() {
    let s = Server::start();
    let err = s
        .bare(&["--server", &s.base, "--token", "wrong", "list"])
        .fails(4)
        .to_owned();
    assert!(err.contains("401") && err.contains("FLAG_TOKEN"), "{err}");
    let err = s
        .bare(&["--server", &s.base, "kill", "x", "--reason", "r"])
        .fails(4)
        .to_owned();
    assert!(err.contains("no token given"), "{err}");
}

#[test]
fn unreachable_server_is_6_and_names_the_url() {
    let s = Server::start();
    let url = dead_url();
    let err = s
        .bare(&[
            "--server", &url, "--token", ADMIN, "kill", "f", "--reason", "r",
        ])
        .fails(6)
        .to_owned();
    assert!(
        err.contains(&url) && err.contains("FLAG_SERVER_URL"),
        "{err}"
    );
    s.bare(&["--server", "not a url", "list"]).fails(6);
}

#[test]
fn conflicts_are_5_and_bad_input_is_1() {
    let s = Server::start();
    s.create("f");
    let err = s.flag(&["create", "f"]).fails(5).to_owned();
    assert!(err.contains("409"), "{err}");
    let err = s.flag(&["create", "Bad Key"]).fails(1).to_owned();
    assert!(err.contains("key"), "{err}");
}

#[test]
fn usage_errors_are_2() {
    let s = Server::start();
    let out = s.bare(&["kill", "f"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = s.bare(&["frobnicate"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let help = s.bare(&["--help"]);
    assert!(
        help.ok().contains("flag kill new-checkout --reason"),
        "{}",
        help.stdout
    );
}
