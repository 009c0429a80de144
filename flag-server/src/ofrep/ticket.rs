//! The OFREP event stream's credential. A browser's `EventSource` sends no `Authorization`
//! header, so the stream's URL carries a ticket: the token's id and an HMAC-SHA256, keyed
//! with the stored hash of the token's secret, of the token's environment. It never shows
//! the secret, needs no state of its own, holds across restarts and replicas, and dies with
//! the token.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::Tokens;
use crate::store::tokens::TokenRecord;

fn mac(record: &TokenRecord) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(&record.hash).expect("HMAC takes any key");
    mac.update(b"ofrep-event-stream\0");
    mac.update(record.environment.as_deref().unwrap_or("").as_bytes());
    mac.finalize().into_bytes().into()
}

/// The ticket of `record`: `<id>.<hex mac>`.
pub fn issue(record: &TokenRecord) -> String {
    format!("{}.{}", record.id, hex::encode(mac(record)))
}

/// The active token a ticket stands for.
pub fn check(tokens: &Tokens, ticket: &str) -> Option<TokenRecord> {
    let (id, presented) = ticket.split_once('.')?;
    let record = tokens.by_id(id.parse().ok()?)?;
    let presented = hex::decode(presented).ok()?;
    bool::from(presented.ct_eq(&mac(&record))).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tokens::TokenKind;

    #[test]
    fn a_ticket_stands_for_its_token_only() {
        let record = |id, secret: &str| TokenRecord {
            id,
            name: "web".into(),
            kind: TokenKind::Client,
            environment: Some("production".into()),
            origins: vec!["https://app.example.com".into()],
            scope: crate::store::tokens::Scope::Admin,
            scope_environments: Vec::new(),
            hash: crate::auth::hash(secret),
        };
        let tokens = Tokens::default();
        tokens.replace(vec![record(1, "a"), record(2, "b")]);
        let ticket = issue(&record(1, "a"));
        assert_eq!(check(&tokens, &ticket).unwrap().id, 1);
        let forged = ticket.replacen("1.", "2.", 1);
        assert!(check(&tokens, &forged).is_none());
        assert!(check(&tokens, "1.zz").is_none());
        tokens.replace(vec![record(2, "b")]);
        assert!(
            check(&tokens, &ticket).is_none(),
            "a revoked token's ticket"
        );
    }
}
