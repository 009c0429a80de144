//! The README's "Using the SDK" example, built by `cargo test` and `cargo build --examples`;
//! `tests/readme.rs` checks the README shows exactly the code between the markers. Run it
//! against a server: `FLAG_SDK_TOKEN=... cargo run -p flag-sdk --example quickstart`.

// README begin
use std::time::Duration;

use flag_sdk::{Client, Context};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sdk_token = std::env::var("FLAG_SDK_TOKEN")?; // `flag token create --kind sdk --name app`
    let client = Client::builder("http://127.0.0.1:8080", sdk_token)
        .init_timeout(Duration::from_secs(5))
        .cache_file("cache/flags.json") // last good snapshot, for a cold start while the server is down
        .build()
        .await?; // fails at once on a token the server refuses, or a cache file it cannot write
    let ctx = Context::new("user-42")
        .with("country", "NL")
        .with("plan", "pro");
    if client.bool_variation("new-checkout", &ctx, false) { /* new path */ }
    let detail = client.bool_variation_detail("new-checkout", &ctx, false); // value, variation, reason
    println!("{:?}: {detail:?}", client.status());
    client.track_error(&ctx); // where you already handle errors
    client.close().await; // flushes counters
    Ok(())
}
// README end
