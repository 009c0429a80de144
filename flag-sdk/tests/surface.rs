//! The public surface users program against: the typed getters and their `_detail` forms on
//! the client and the snapshot, `all_flags`, the offline client that reloads its file, and
//! the builder's settings.

use std::time::Duration;

use flag_sdk::{
    Client, ClientError, CompiledSnapshot, Context, ErrorKind, Reason, Snapshot, TestData,
};
use serde_json::{json, Value};

use crate::common::sse_server::snapshot;

const WAIT: Duration = Duration::from_secs(10);

/// Flags of every kind, each serving one value to everyone.
fn typed_snapshot() -> Snapshot {
    let flag = |key: &str, kind: &str, value: Value| {
        json!({"key": key, "kind": kind, "version": 1, "enabled": true,
            "variations": [{"key": "v", "value": value}, {"key": "w", "value": value}],
            "off_variation": "w", "fallthrough": {"variation": "v"}})
    };
    serde_json::from_value(json!({"environment": "e", "revision": 3, "flags": {
        "b": flag("b", "boolean", json!(true)),
        "s": flag("s", "string", json!("blue")),
        "i": flag("i", "number", json!(42)),
        "f": flag("f", "number", json!(2.5)),
        "j": flag("j", "json", json!({"a": [1, 2]})),
    }}))
    .unwrap()
}

#[test]
fn client_and_snapshot_getters_agree_and_integers_are_not_floats() {
    let client = Client::offline(typed_snapshot());
    let flags = CompiledSnapshot::new(typed_snapshot());
    let ctx = Context::new("u");

    assert!(client.bool_variation("b", &ctx, false));
    assert!(flags.bool_variation("b", &ctx, false));
    assert_eq!(client.string_variation("s", &ctx, "x"), "blue");
    assert_eq!(flags.string_variation("s", &ctx, "x"), "blue");
    assert_eq!(client.int_variation("i", &ctx, 0), 42);
    assert_eq!(flags.int_variation("i", &ctx, 0), 42);
    assert_eq!(client.float_variation("i", &ctx, 0.0), 42.0);
    assert_eq!(client.float_variation("f", &ctx, 0.0), 2.5);
    assert_eq!(flags.float_variation("f", &ctx, 0.0), 2.5);
    // 2.5 is not an integer: the default, and the detail says why.
    assert_eq!(client.int_variation("f", &ctx, -1), -1);
    let detail = client.int_variation_detail("f", &ctx, -1);
    assert_eq!((detail.value, detail.is_default()), (-1, true));
    assert_eq!(
        detail.reason,
        Reason::Error {
            error: ErrorKind::WrongType
        }
    );
    assert_eq!(
        client.json_variation("j", &ctx, json!(null)),
        json!({"a": [1, 2]})
    );
    assert_eq!(
        flags.json_variation("j", &ctx, &json!(null)),
        &json!({"a": [1, 2]})
    );
    // JSON reads a flag of any kind; the others only their own.
    assert_eq!(client.json_variation("s", &ctx, json!(null)), json!("blue"));
    assert!(!client.bool_variation("s", &ctx, false));

    let detail = client.string_variation_detail("s", &ctx, "x");
    assert_eq!(detail.value, "blue");
    assert_eq!(detail.variation.as_deref(), Some("v"));
    assert_eq!(detail.variation_index, Some(0));
    assert_eq!(detail.reason, Reason::Fallthrough { in_rollout: false });
    assert_eq!(
        flags
            .string_variation_detail("s", &ctx, "x")
            .map(str::to_owned),
        detail
    );
    let missing = client.bool_variation_detail("nope", &ctx, true);
    assert!(missing.value && missing.is_default());
    assert_eq!(
        missing.reason,
        Reason::Error {
            error: ErrorKind::FlagNotFound
        }
    );
}

#[test]
fn all_flags_gives_every_flag_from_one_revision() {
    let client = Client::offline(typed_snapshot());
    let ctx = Context::new("u");
    let all = client.all_flags(&ctx);
    assert_eq!((all.len(), all.revision()), (5, Some(3)));
    let keys: Vec<&str> = all.iter().map(|(key, _)| key).collect();
    assert_eq!(keys, ["b", "f", "i", "j", "s"]);
    assert_eq!(all.get("i").unwrap().value, Some(&json!(42)));
    assert!(all.get("nope").is_none());
    assert_eq!(
        serde_json::to_value(&all).unwrap()["s"],
        json!({"value": "blue", "variation": "v", "reason": {"kind": "FALLTHROUGH", "in_rollout": false}})
    );
    let flags = client.snapshot().unwrap();
    assert_eq!(flags.all_flags(&ctx).len(), 5);

    // Without data: nothing, and no revision.
    let td = TestData::new();
    assert!(td.client().all_flags(&ctx).is_empty());
}

#[tokio::test]
async fn an_offline_client_reloads_its_file_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    std::fs::write(&path, snapshot(1, true).to_string()).unwrap();
    let client = Client::offline_reloading(&path, Duration::from_millis(10)).unwrap();
    let ctx = Context::new("u");
    assert!(client.bool_variation("checkout", &ctx, false));

    let mut changes = client.subscribe();
    // A half-written file is skipped; the complete one after it is loaded.
    std::fs::write(&path, "{\"environment\":").unwrap();
    std::fs::write(&path, snapshot(2, false).to_string()).unwrap();
    let change = tokio::time::timeout(WAIT, changes.recv())
        .await
        .expect("the change is seen in time")
        .unwrap();
    assert_eq!(change.revision, 2);
    assert_eq!(change.flags, ["checkout"]);
    assert!(!client.bool_variation("checkout", &ctx, true));
    client.close().await;

    let missing = Client::offline_reloading(dir.path().join("none.json"), Duration::from_secs(1));
    assert!(matches!(missing, Err(ClientError::ReadSnapshot { .. })));
}

#[tokio::test]
async fn a_root_certificate_that_does_not_parse_is_a_build_error() {
    let built = Client::builder("https://127.0.0.1:1", "sdk-token")
        .root_certificate_pem(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(60))
        .init_timeout(Duration::ZERO)
        .build()
        .await;
    let Err(ClientError::Certificate(cause)) = &built else {
        panic!("{built:?}");
    };
    // The HTTP layer's message is kept, and the chain goes on below the SDK's own error.
    let chain = std::iter::successors(Some(cause as &dyn std::error::Error), |e| e.source());
    let messages: Vec<String> = chain.map(ToString::to_string).collect();
    assert!(!messages[0].is_empty(), "{messages:?}");
    let outer = built.as_ref().unwrap_err();
    assert!(std::error::Error::source(outer).is_some(), "{outer:?}");
}
