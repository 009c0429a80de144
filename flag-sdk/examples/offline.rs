//! An offline client: no server, flags from a snapshot file (the section 2 JSON, e.g. saved
//! from `GET /sdk/v1/snapshot` or a client's cache file), reloaded when the file changes.
//! Run it: `cargo run -p flag-sdk --example offline` (it writes its own file).

use std::time::Duration;

use flag_sdk::{Client, Context};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("flag-sdk-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("flags.json");
    let snapshot = |enabled: bool, revision: u64| {
        json!({"environment": "production", "revision": revision, "flags": {"new-checkout": {
            "key": "new-checkout", "kind": "boolean", "version": revision, "enabled": enabled,
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "off_variation": "off", "fallthrough": {"variation": "on"}}}})
    };
    std::fs::write(&path, snapshot(true, 1).to_string())?;

    let client = Client::offline_reloading(&path, Duration::from_millis(100))?;
    let ctx = Context::new("user-42");
    println!(
        "new-checkout: {}",
        client.bool_variation("new-checkout", &ctx, false)
    );

    let mut changes = client.subscribe();
    std::fs::write(&path, snapshot(false, 2).to_string())?; // someone edits the file
    let change = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await??;
    println!("revision {}: changed {:?}", change.revision, change.flags);
    println!(
        "new-checkout: {}",
        client.bool_variation("new-checkout", &ctx, false)
    );

    client.close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
