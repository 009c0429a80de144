//! Starting the real binary: one server per database, a busy port, the first admin token
//! whatever goes wrong, boolean environment variables.

use std::process::Stdio;

use serde_json::json;

use crate::common::process::{
    printed_token, run_to_exit, server_command, wait_for_exit, ServerProcess,
};

/// Whether `token` is accepted by the admin API of the server at `base`.
async fn admin_accepts(base: &str, token: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.status() == 200
}

/// A start without `FLAG_ADMIN_TOKEN` that listens; returns it and the token it printed.
fn first_start(db: &std::path::Path) -> (ServerProcess, String) {
    let mut command = server_command(db);
    command
        .env_remove("FLAG_ADMIN_TOKEN")
        .stdout(Stdio::piped());
    let mut server = ServerProcess::spawn(&mut command);
    let line = server.stdout_line();
    let token = printed_token(&line)
        .unwrap_or_else(|| panic!("no admin token in {line:?}"))
        .to_owned();
    (server, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    let mut first = ServerProcess::spawn(&mut server_command(&db));

    let second = run_to_exit(&mut server_command(&db));
    assert!(!second.status.success(), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains("another --db"), "{stderr}");
    // The first one carries on.
    assert!(admin_accepts(&first.base, crate::common::ADMIN).await);

    // A killed server's lock dies with it: the next start is not blocked.
    first.kill();
    let again = ServerProcess::spawn(&mut server_command(&db));
    assert!(admin_accepts(&again.base, crate::common::ADMIN).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_fails_before_anything_is_created_and_the_next_start_shows_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();

    let mut command = server_command(&db);
    command
        .env_remove("FLAG_ADMIN_TOKEN")
        .args(["--listen", &addr]);
    let out = run_to_exit(&mut command);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(stderr.contains("FLAG_SERVER_LISTEN"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(files.is_empty(), "created {files:?}");

    let (server, token) = first_start(&db);
    assert!(admin_accepts(&server.base, &token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_show_its_admin_token_leaves_the_next_start_to_show_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flags.db");
    // Stdout is a pipe nobody reads: printing the token fails (EPIPE).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = server_command(&db);
    command.env_remove("FLAG_ADMIN_TOKEN");
    let child = command
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_for_exit(child);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot print the new admin token"),
        "{stderr}"
    );

    let (server, token) = first_start(&db);
    assert!(admin_accepts(&server.base, &token).await);
    // Only the token that was shown is an admin token.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/tokens", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let tokens: serde_json::Value = r.json().await.unwrap();
    assert_eq!(tokens.as_array().map(Vec::len), Some(1), "{tokens}");

    // Once shown, it is kept: a restart prints none and the token still works.
    drop(server);
    let mut command = server_command(&db);
    command
        .env_remove("FLAG_ADMIN_TOKEN")
        .stdout(Stdio::piped());
    let mut again = ServerProcess::spawn(&mut command);
    assert!(admin_accepts(&again.base, &token).await);
    assert_eq!(again.kill_and_read_stdout().trim(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boolean_variables_take_1_0_yes_no() {
    let dir = tempfile::tempdir().unwrap();
    for (value, allowed) in [("1", true), ("yes", true), ("no", false), ("0", false)] {
        let db = dir.path().join(format!("flags-{value}.db"));
        let mut command = server_command(&db);
        command.env("FLAG_WEBHOOK_ALLOW_PRIVATE", value);
        let server = ServerProcess::spawn(&mut command);
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/webhooks", server.base))
            .bearer_auth(crate::common::ADMIN)
            .json(
                &json!({"url": "http://127.0.0.1:9/hook", "secret": "sixteen-chars-or-more",
                          "events": ["flag.changed"]}),
            )
            .send()
            .await
            .unwrap();
        let reply = crate::common::read(r).await;
        if allowed {
            reply.ok(201);
        } else {
            reply.problem(422);
            assert_eq!(
                reply.fields(),
                ["url"],
                "FLAG_WEBHOOK_ALLOW_PRIVATE={value}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_outlives_the_reader_of_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        ServerProcess::spawn_then_close_stderr(&mut server_command(dir.path().join("flags.db")));
    // Every request writes a log line to the closed pipe.
    for _ in 0..5 {
        assert!(admin_accepts(&server.base, crate::common::ADMIN).await);
    }
    assert!(server.child.try_wait().unwrap().is_none(), "it exited");
}
