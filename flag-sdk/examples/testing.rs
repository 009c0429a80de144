//! Testing code that reads flags, without a server: `TestData` drives the flags, and the
//! client made from it sees each update as it would see a stream update. Run it:
//! `cargo run -p flag-sdk --example testing`.

use flag_sdk::{Client, Context, TestData};

/// The code under test: a price that depends on a flag.
fn price(client: &Client, ctx: &Context) -> u32 {
    if client.bool_variation("discount", ctx, false) {
        90
    } else {
        100
    }
}

fn main() {
    let td = TestData::new();
    let client = td.client();
    let ann = Context::new("ann");
    let bob = Context::new("bob");

    assert_eq!(
        price(&client, &ann),
        100,
        "an unknown flag serves the default"
    );
    td.update(td.flag("discount").serve(true));
    assert_eq!(price(&client, &ann), 90);
    td.update(td.flag("discount").serve(false).target("bob", "on"));
    assert_eq!((price(&client, &ann), price(&client, &bob)), (100, 90));
    td.update(td.flag("discount").serve(true).on(false)); // the kill switch: serves `off`
    assert_eq!(price(&client, &bob), 100);
    println!("all flag states tested");
}
