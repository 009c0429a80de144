//! Tokens: generation, hashing, and the extractors that check them.
//!
//! A secret is 256 random bits (OS RNG) as 64 hex characters. Only its SHA-256 is stored;
//! a presented secret is hashed and compared with every active token's hash in constant time
//! (no early exit). Secrets are never logged: the request log names the token's `name`.
//!
//! A secret comes as `Authorization: Bearer <secret>` or, as OFREP clients may send it,
//! `X-API-Key: <secret>`. Without either, the console's session cookie presents an admin
//! token (`console::session`, which checks CSRF on changes).
//!
//! [`AdminToken`] guards `/api/v1`: no or an unknown token → 401, an SDK or client token →
//! 403. [`SdkToken`] guards the SDK stream and snapshot and yields the token's environment:
//! any other kind → 403 (they hold rules, segments and targets). [`EnvironmentToken`] guards
//! OFREP and the events intake: an SDK or a client token, bound to one environment.
//! [`IntegrationToken`] guards the Alertmanager webhook, the one thing such a token can do.

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
use crate::store::tokens::{Scope, TokenKind, TokenRecord};

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
        found.map(Principal::from)
    }

    /// The active token with this id (the OFREP event stream's ticket names its token by id).
    pub fn by_id(&self, id: i64) -> Option<TokenRecord> {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active.iter().find(|record| record.id == id).cloned()
    }

    /// Whether any active client token lists `origin` (a CORS preflight carries no token, so
    /// it is answered for the origins client tokens name).
    pub fn origin_listed(&self, origin: &str) -> bool {
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        active.iter().any(|record| {
            record.kind == TokenKind::Client && record.origins.iter().any(|o| o == origin)
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
    /// Admin, SDK or client.
    pub kind: TokenKind,
    /// The environment of an SDK or client token.
    pub environment: Option<String>,
    /// The browser origins of a client token.
    pub origins: Vec<String>,
    /// What an admin token may do (see `scopes`).
    pub scope: Scope,
    /// The environments a `write` admin token may change.
    pub scope_environments: Vec<String>,
}

impl Principal {
    /// Whether this token may change flags and segments of `env` (403 naming the scope).
    pub fn may_write(&self, env: &str) -> Result<(), ApiError> {
        crate::scopes::may_write(self.scope, &self.scope_environments, env)
    }
}

impl From<&TokenRecord> for Principal {
    fn from(r: &TokenRecord) -> Self {
        Principal {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind,
            environment: r.environment.clone(),
            origins: r.origins.clone(),
            scope: r.scope,
            scope_environments: r.scope_environments.clone(),
        }
    }
}

/// The bearer token of a request, authenticated; also recorded in the request's extensions
/// so the request log can name it.
pub fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("no app state".into()))?;
    let principal = match presented_secret(req) {
        Some(secret) => state
            .tokens
            .authenticate(secret)
            .ok_or(ApiError::Unauthorized)?,
        // The console's session cookie presents an admin token too (with CSRF checks).
        None => crate::console::session::principal(req, &state.tokens)?,
    };
    req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

/// The secret a request presents: `Authorization: Bearer`, else `X-API-Key`.
fn presented_secret(req: &HttpRequest) -> Option<&str> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = header(actix_web::http::header::AUTHORIZATION.as_str()) {
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim);
    }
    header("x-api-key").map(str::trim)
}

/// An admin token (extractor for `/api/v1`).
#[derive(Debug, Clone)]
pub struct AdminToken(pub Principal);

impl FromRequest for AdminToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|p| {
            match p.kind {
            TokenKind::Admin => within_scope(req, &p).map(|()| AdminToken(p)),
            TokenKind::Sdk => Err(ApiError::Forbidden(
                "an SDK token can only read the SDK endpoints".into(),
            )),
            TokenKind::Client => Err(ApiError::Forbidden(
                "a client token can only evaluate flags over OFREP".into(),
            )),
            TokenKind::Integration => Err(ApiError::Forbidden(
                "an integration token can only post alerts to /api/v1/integrations/alertmanager"
                    .into(),
            )),
        }
        }))
    }
}

/// An integration token (extractor for `POST /api/v1/integrations/alertmanager`, the only
/// thing it can do): any other kind → 403.
#[derive(Debug, Clone)]
pub struct IntegrationToken(pub Principal);

impl FromRequest for IntegrationToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|p| {
            match p.kind {
                TokenKind::Integration => Ok(IntegrationToken(p)),
                _ => Err(ApiError::Forbidden(
                    "this endpoint takes an integration token (`POST /api/v1/tokens` with \
                 {\"kind\": \"integration\"})"
                        .into(),
                )),
            }
        }))
    }
}

/// Whether the admin token's scope allows the matched route (see `scopes`).
fn within_scope(req: &HttpRequest, p: &Principal) -> Result<(), ApiError> {
    if p.scope == Scope::Admin {
        return Ok(());
    }
    let pattern = req.match_pattern().unwrap_or_default();
    let need = crate::scopes::needed(req.method(), &pattern, req.match_info().get("env"));
    let environments = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.snapshots.environments())
        .unwrap_or_default();
    crate::scopes::check(p.scope, &p.scope_environments, &need, &environments)
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

/// A token bound to one environment, SDK or client (extractor for OFREP and
/// `/sdk/v1/events`).
#[derive(Debug, Clone)]
pub struct EnvironmentToken {
    /// The token.
    pub principal: Principal,
    /// The environment it evaluates.
    pub environment: String,
}

impl FromRequest for EnvironmentToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authenticate(req).and_then(|p| match (&p.kind, p.environment.clone()) {
                (TokenKind::Sdk | TokenKind::Client, Some(environment)) => Ok(EnvironmentToken {
                    principal: p,
                    environment,
                }),
                _ => Err(ApiError::Forbidden(
                    "this endpoint takes an SDK or client token (bound to one environment)".into(),
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
            origins: Vec::new(),
            scope: Scope::Admin,
            scope_environments: Vec::new(),
            hash: hash("s3cret"),
        }]);
        assert_eq!(tokens.authenticate("s3cret").unwrap().name, "ops");
        assert!(tokens.authenticate("s3cre").is_none());
    }
}
