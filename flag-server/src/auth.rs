//! Tokens: generation, hashing, and the extractors that check them.
//!
//! A secret is 256 random bits (OS RNG) as 64 hex characters. Only its SHA-256 is stored;
//! a presented secret is hashed and compared with every active token's hash in constant time
//! (no early exit). Secrets are never logged: the request log names the token's `name`.
//!
//! [`AdminToken`] guards `/api/v1`: no or an unknown token → 401, an SDK token → 403.
//! [`SdkToken`] guards `/sdk/v1` and yields the token's environment: an admin token → 403
//! (an SDK endpoint serves exactly one environment, which only an SDK token names).

use std::future::{ready, Ready};
use std::sync::{Arc, RwLock};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::tokens::{TokenKind, TokenRecord};

/// A fresh secret: 32 bytes from the OS RNG, hex-encoded.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a secret, as stored.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The active tokens, as the writer thread last loaded them.
#[derive(Default)]
pub struct Tokens {
    active: RwLock<Arc<Vec<TokenRecord>>>,
}

impl Tokens {
    /// Replaces the active set (called after a commit that changed tokens).
    pub(crate) fn replace(&self, list: Vec<TokenRecord>) {
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }

    /// The token whose secret this is, compared in constant time against every active token.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        let presented = hash(secret);
        let active = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut found: Option<&TokenRecord> = None;
        for record in active.iter() {
            if bool::from(record.hash.ct_eq(&presented)) {
                found = Some(record);
            }
        }
        found.map(|r| Principal {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind,
            environment: r.environment.clone(),
        })
    }

    /// Whether the token with this id is still active (the check of an open SSE stream at
    /// every heartbeat: no secret kept, no hashing).
    pub fn is_active(&self, id: i64) -> bool {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active.iter().any(|record| record.id == id)
    }
}

/// Who is calling: the token's id, name, kind and (SDK) environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id.
    pub id: i64,
    /// The token's name, as the audit log and the request log show it.
    pub name: String,
    /// Admin or SDK.
    pub kind: TokenKind,
    /// The environment of an SDK token.
    pub environment: Option<String>,
}

/// The bearer token of a request, authenticated; also recorded in the request's extensions
/// so the request log can name it.
pub fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("no app state".into()))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?
        .trim();
    let principal = state
        .tokens
        .authenticate(secret)
        .ok_or(ApiError::Unauthorized)?;
    req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

/// An admin token (extractor for `/api/v1`).
#[derive(Debug, Clone)]
pub struct AdminToken(pub Principal);

impl FromRequest for AdminToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|p| match p.kind {
            TokenKind::Admin => Ok(AdminToken(p)),
            TokenKind::Sdk => Err(ApiError::Forbidden(
                "an SDK token can only read the SDK endpoints".into(),
            )),
        }))
    }
}

/// An SDK token and the environment it is bound to (extractor for `/sdk/v1`).
#[derive(Debug, Clone)]
pub struct SdkToken {
    /// The token.
    pub principal: Principal,
    /// The environment it reads.
    pub environment: String,
}

impl FromRequest for SdkToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authenticate(req).and_then(|p| match (&p.kind, p.environment.clone()) {
                (TokenKind::Sdk, Some(environment)) => Ok(SdkToken {
                    principal: p,
                    environment,
                }),
                _ => Err(ApiError::Forbidden(
                    "the SDK endpoints take an SDK token (bound to one environment)".into(),
                )),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_256_bit_hex_and_unique() {
        let a = new_secret();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_secret());
    }

    #[test]
    fn authenticates_by_hash() {
        let tokens = Tokens::default();
        tokens.replace(vec![TokenRecord {
            id: 1,
            name: "ops".into(),
            kind: TokenKind::Admin,
            environment: None,
            hash: hash("s3cret"),
        }]);
        assert_eq!(tokens.authenticate("s3cret").unwrap().name, "ops");
        assert!(tokens.authenticate("s3cre").is_none());
    }
}
