//! The README's OpenFeature example (feature `openfeature`), built by `cargo test
//! --all-features`; `tests/readme.rs` checks the README shows exactly the code between the
//! markers. Run it: `FLAG_SDK_TOKEN=... cargo run -p flag-sdk --features openfeature
//! --example openfeature`.

// README begin
use flag_sdk::openfeature::FlagProvider;
use flag_sdk::Client;
use open_feature::{EvaluationContext, OpenFeature};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sdk_token = std::env::var("FLAG_SDK_TOKEN")?;
    let client = Client::builder("http://127.0.0.1:8080", sdk_token)
        .build()
        .await?;
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(FlagProvider::new(client.clone())).await;
    let flags = api.create_client();
    let ctx = EvaluationContext::default()
        .with_targeting_key("user-42")
        .with_custom_field("country", "NL");
    let on = flags
        .get_bool_value("new-checkout", Some(&ctx), None)
        .await
        .unwrap_or(false);
    println!("new-checkout: {on}");
    client.close().await;
    Ok(())
}
// README end
