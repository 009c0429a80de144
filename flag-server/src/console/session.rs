//! The console's session: a second way to present an admin token, for a browser.
//!
//! Signing in with an admin token sets the cookie `flag_session` (HttpOnly, SameSite=Strict,
//! Secure over https, 12 hours): `<token id>.<expires, Unix seconds>.<csrf>.<mac>`, where
//! `mac` is HMAC-SHA256 keyed with the stored hash of the token's secret (kept in the
//! database) over the rest. It needs no state of its own, holds on every replica and across
//! restarts, never shows the secret, and dies with the token (revoke it to end its sessions
//! everywhere). The token itself never reaches the page's storage.
//!
//! CSRF: every request that changes something with the cookie must carry the session's
//! `csrf` value in `X-CSRF-Token` (the page learns it from `GET /console/session`; a page of
//! another origin cannot read it), come from this origin (`Origin`, or `Sec-Fetch-Site`),
//! and SameSite=Strict keeps the cookie off cross-site requests anyway.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::Method;
use actix_web::HttpRequest;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::{Principal, Tokens};
use crate::error::ApiError;
use crate::store::tokens::{TokenKind, TokenRecord};

/// The cookie's name.
pub const COOKIE: &str = "flag_session";
/// The header that carries the session's CSRF value.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts, in seconds.
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The admin token it stands for.
    pub token_id: i64,
    /// When it ends, Unix seconds.
    pub expires: i64,
    /// The value state-changing requests must echo in `X-CSRF-Token`.
    pub csrf: String,
}

fn mac(record: &TokenRecord, signed: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(&record.hash).expect("HMAC takes any key");
    mac.update(b"console-session\0");
    mac.update(signed.as_bytes());
    mac.finalize().into_bytes().into()
}

/// A new session's cookie value for `record`, from `now` (Unix seconds).
pub fn issue(record: &TokenRecord, now: i64) -> (String, Session) {
    let session = Session {
        token_id: record.id,
        expires: now + LIFETIME_SECS,
        csrf: crate::auth::new_secret()[..32].to_owned(),
    };
    let signed = format!("{}.{}.{}", session.token_id, session.expires, session.csrf);
    let value = format!("{signed}.{}", hex::encode(mac(record, &signed)));
    (value, session)
}

/// The session a cookie value stands for, when its token is an active admin token, the MAC
/// holds and it has not expired at `now` (Unix seconds).
pub fn check(tokens: &Tokens, value: &str, now: i64) -> Option<(TokenRecord, Session)> {
    let (signed, presented) = value.rsplit_once('.')?;
    let mut parts = signed.splitn(3, '.');
    let token_id: i64 = parts.next()?.parse().ok()?;
    let expires: i64 = parts.next()?.parse().ok()?;
    let csrf = parts.next()?.to_owned();
    let record = tokens.by_id(token_id)?;
    let presented = hex::decode(presented).ok()?;
    let valid = bool::from(presented.ct_eq(&mac(&record, signed)));
    (valid && expires > now && record.kind == TokenKind::Admin).then_some((
        record,
        Session {
            token_id,
            expires,
            csrf,
        },
    ))
}

/// Now, Unix seconds.
pub fn now_secs() -> i64 {
    crate::clock::now_millis() / 1000
}

/// The session cookie of a request, checked (`None`: no cookie, or not a valid one).
pub fn of_request(req: &HttpRequest, tokens: &Tokens) -> Option<(TokenRecord, Session)> {
    let cookie = req.cookie(COOKIE)?;
    check(tokens, cookie.value(), now_secs())
}

/// The principal of a request that presents no token but a session cookie; a request that
/// changes something must pass the CSRF checks (403 naming what is missing).
pub fn principal(req: &HttpRequest, tokens: &Tokens) -> Result<Principal, ApiError> {
    let (record, session) = of_request(req, tokens).ok_or(ApiError::Unauthorized)?;
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        same_origin(req)?;
        let presented = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(presented.ct_eq(session.csrf.as_bytes())) {
            return Err(ApiError::Forbidden(
                "a change made with the console's session needs its X-CSRF-Token header".into(),
            ));
        }
    }
    Ok(Principal::from(&record))
}

/// Refuses a request from another origin: `Origin` must be this server's own, and
/// `Sec-Fetch-Site`, when the browser sends it, `same-origin`.
pub fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    let cross = |what: &str| {
        ApiError::Forbidden(format!(
            "{what}: the console's session only changes things from its own pages"
        ))
    };
    if let Some(origin) = header("origin") {
        if origin != own {
            return Err(cross("another origin"));
        }
    }
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" {
            return Err(cross("a cross-site request"));
        }
    }
    Ok(())
}

/// The cookie that holds `value` (Secure when the request came over https).
pub fn cookie(req: &HttpRequest, value: String, max_age_secs: i64) -> Cookie<'static> {
    let secure = req.connection_info().scheme() == "https";
    Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieAge::seconds(max_age_secs))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, kind: TokenKind, secret: &str) -> TokenRecord {
        TokenRecord {
            id,
            name: "ops".into(),
            kind,
            environment: None,
            origins: Vec::new(),
            scope: crate::store::tokens::Scope::Admin,
            scope_environments: Vec::new(),
            hash: crate::auth::hash(secret),
        }
    }

    #[test]
    fn a_session_stands_for_its_admin_token_until_it_expires_or_the_token_goes() {
        let tokens = Tokens::default();
        tokens.replace(vec![
            record(1, TokenKind::Admin, "a"),
            record(2, TokenKind::Admin, "b"),
        ]);
        let (value, session) = issue(&record(1, TokenKind::Admin, "a"), 1_000);
        let (found, checked) = check(&tokens, &value, 1_001).unwrap();
        assert_eq!((found.id, &checked), (1, &session));
        assert!(
            check(&tokens, &value, 1_000 + LIFETIME_SECS).is_none(),
            "expired"
        );
        let forged = value.replacen("1.", "2.", 1);
        assert!(
            check(&tokens, &forged, 1_001).is_none(),
            "another token's id"
        );
        let longer = value.replacen(
            &format!(".{}.", session.expires),
            &format!(".{}.", session.expires + 1),
            1,
        );
        assert!(check(&tokens, &longer, 1_001).is_none(), "a longer life");
        assert!(check(&tokens, "garbage", 1_001).is_none());
        tokens.replace(vec![record(2, TokenKind::Admin, "b")]);
        assert!(check(&tokens, &value, 1_001).is_none(), "a revoked token");
    }

    #[test]
    fn only_admin_tokens_have_sessions() {
        let tokens = Tokens::default();
        let sdk = record(3, TokenKind::Sdk, "s");
        tokens.replace(vec![sdk.clone()]);
        let (value, _) = issue(&sdk, 1_000);
        assert!(check(&tokens, &value, 1_001).is_none());
    }
}
