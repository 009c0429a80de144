//! CORS for client tokens: a browser page may call OFREP from exactly the origins its client
//! token lists, never `*`. A preflight carries no token, so it is answered for an origin that
//! some active client token lists; the request itself is then answered (and readable) only
//! when its own token lists the origin. SDK tokens are for servers: no CORS for them.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use super::wire::{OfrepError, Refusal};
use crate::auth::{Principal, Tokens};
use crate::store::tokens::TokenKind;

/// The request headers a browser provider sends.
const ALLOW_HEADERS: &str = "authorization, content-type, x-api-key, if-none-match";
/// The response headers a page may read.
const EXPOSE_HEADERS: &str = "etag, retry-after";
/// How long a browser may cache a preflight, in seconds.
const MAX_AGE: &str = "600";

fn origin(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// Refuses a client token's request from an origin it does not list (a request without
/// `Origin`, from a mobile app or a server, is not a browser's and goes through).
pub fn check_origin(req: &HttpRequest, principal: &Principal) -> Result<(), OfrepError> {
    match origin(req) {
        Some(origin)
            if principal.kind == TokenKind::Client
                && !principal.origins.iter().any(|o| o == origin) =>
        {
            Err(OfrepError::refused(
                Refusal::Forbidden,
                format!("origin `{origin}` is not one of this client token's origins"),
            ))
        }
        _ => Ok(()),
    }
}

/// The answer to a preflight (`OPTIONS`): the origin allowed when a client token lists it,
/// else 403.
pub fn preflight(req: &HttpRequest, tokens: &Tokens) -> Result<HttpResponse, OfrepError> {
    let Some(origin) = origin(req).filter(|o| tokens.origin_listed(o)) else {
        return Err(OfrepError::refused(
            Refusal::Forbidden,
            "no client token lists this origin",
        ));
    };
    Ok(HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE))
        .insert_header((header::VARY, "Origin"))
        .finish())
}

/// Adds the CORS headers to an answer (errors included, so a page can read them): for the
/// request's client token when it lists the origin; before any token was read (a 401), when
/// some client token lists it.
pub fn decorate(req: &HttpRequest, tokens: &Tokens, headers: &mut HeaderMap) {
    let Some(origin) = origin(req) else {
        return;
    };
    let allowed = match req.extensions().get::<Principal>() {
        Some(p) => p.kind == TokenKind::Client && p.origins.iter().any(|o| o == origin),
        None => tokens.origin_listed(origin),
    };
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if !allowed {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}
