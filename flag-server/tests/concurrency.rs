//! Writers racing: If-Match lets exactly one of two win; concurrent writers all commit.

use std::sync::Arc;

use serde_json::json;

use crate::common::{rich_config, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_with_the_same_if_match_exactly_one_wins() {
    let s = TestServer::start().await;
    s.create_flag("f").await;
    let path = "/api/v1/flags/f/environments/production";
    for round in 0..20u64 {
        let version = format!("\"{}\"", round + 1);
        let mut a = rich_config("f");
        a["targets"][0]["keys"] = json!([format!("a-{round}")]);
        let mut b = rich_config("f");
        b["targets"][0]["keys"] = json!([format!("b-{round}")]);
        let (ra, rb) = tokio::join!(
            s.put(path, a.clone(), Some(&version)),
            s.put(path, b.clone(), Some(&version))
        );
        let mut statuses = [ra.status.as_u16(), rb.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}");
        let winner = if ra.status == 200 { &ra } else { &rb };
        let loser = if ra.status == 200 { &rb } else { &ra };
        loser.problem(412);
        let stored = s.get(path).await;
        assert_eq!(stored.body, winner.body);
        assert_eq!(stored.body["version"], round + 2);
    }
    // One audit row per winner (plus the flag's creation).
    assert_eq!(s.audit("flag=f").await.len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_commit_in_order() {
    let s = Arc::new(TestServer::start().await);
    const CLIENTS: usize = 8;
    const WRITES: u64 = 25;
    for c in 0..CLIENTS {
        s.create_flag(&format!("flag-{c}")).await;
    }
    let start_revision = s.revision().await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("flag-{c}");
            let path = format!("/api/v1/flags/{key}/environments/production");
            for i in 0..WRITES {
                let r = s
                    .put(&path, rich_config(&key), Some(&format!("\"{}\"", i + 1)))
                    .await;
                r.ok(200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end_revision = s.revision().await;
    assert_eq!(end_revision, start_revision + CLIENTS as u64 * WRITES);
    for c in 0..CLIENTS {
        let r = s
            .get(&format!("/api/v1/flags/flag-{c}/environments/production"))
            .await;
        assert_eq!(r.body["version"], WRITES + 1);
    }
    // The live snapshot's revision is the committed one.
    let e = s
        .post(
            "/api/v1/environments/production/evaluate",
            json!({"context": {"key": "a"}}),
        )
        .await;
    assert_eq!(e.body["revision"], end_revision);
}

/// Good and bad writes racing in the same groups: every good one commits; each bad one (a
/// stale `If-Match`, an invalid configuration) gets its 4xx and leaves nothing, no version,
/// no revision, no audit row, no change for the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_writes_in_a_group_change_nothing_and_fail_no_one_else() {
    let s = Arc::new(TestServer::start().await);
    const CLIENTS: usize = 6;
    const WRITES: u64 = 15;
    for c in 0..CLIENTS {
        s.create_flag(&format!("flag-{c}")).await;
    }
    let start_revision = s.revision().await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("flag-{c}");
            let path = format!("/api/v1/flags/{key}/environments/production");
            for i in 0..WRITES {
                let mut good = rich_config(&key);
                good["targets"][0]["keys"] = json!([format!("good-{i}")]);
                let mut invalid = rich_config(&key);
                invalid["fallthrough"] = json!({"variation": "missing"});
                let version = format!("\"{}\"", i + 1);
                let (good, stale, invalid) = tokio::join!(
                    s.put(&path, good, Some(&version)),
                    s.put(&path, rich_config(&key), Some("\"999\"")),
                    s.put(&path, invalid, Some(&version)),
                );
                good.ok(200);
                stale.problem(412);
                assert!(invalid.status.is_client_error(), "{:?}", invalid.body);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.revision().await, start_revision + CLIENTS as u64 * WRITES);
    for c in 0..CLIENTS {
        let key = format!("flag-{c}");
        let r = s
            .get(&format!("/api/v1/flags/{key}/environments/production"))
            .await;
        assert_eq!(r.body["version"], WRITES + 1);
        assert_eq!(
            r.body["targets"][0]["keys"],
            json!([format!("good-{}", WRITES - 1)])
        );
        // The creation and one row per good write.
        assert_eq!(
            s.audit(&format!("flag={key}")).await.len() as u64,
            WRITES + 1
        );
    }
}
