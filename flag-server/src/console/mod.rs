//! The web console: static pages and scripts served at `/` from files embedded at compile
//! time (`flag-server/console/`), plus sign-in and sign-out (`/console/session`). Everything
//! else the pages do goes through the REST API under `/api/v1`, with the session cookie
//! (`session`). No handler here reads or writes flags.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, nothing inline, no framing), `X-Content-Type-Options: nosniff` and no
//! referrer; the files are compressed (gzip/brotli as the browser asks) and revalidated by
//! `ETag`.

mod assets;
pub mod session;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Compress, DefaultHeaders};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::tokens::TokenKind;

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every console answer carries.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
}

/// Registers the console's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .wrap(Compress::default())
            .wrap(security_headers())
            .get(page),
    )
    .service(
        web::resource("/assets/{name:.+}")
            .wrap(Compress::default())
            .wrap(security_headers())
            .get(asset),
    )
    .service(
        web::resource("/console/session")
            .wrap(security_headers())
            .get(current)
            .post(sign_in)
            .delete(sign_out)
            .default_service(web::to(crate::api::method_not_allowed)),
    );
}

/// Every path the console serves a file at (the shell at `/`, then `/assets/...`).
pub fn files() -> Vec<String> {
    let assets = assets::ASSETS.iter().map(|a| format!("/assets/{}", a.name));
    std::iter::once("/".to_owned()).chain(assets).collect()
}

/// The page shell.
async fn page(req: HttpRequest) -> HttpResponse {
    serve(&req, &assets::INDEX)
}

/// A script, style sheet or icon.
async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let asset = assets::find(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no console file `{name}`")))?;
    Ok(serve(&req, asset))
}

/// `asset`, or `304` when the browser holds this version.
fn serve(req: &HttpRequest, asset: &assets::Asset) -> HttpResponse {
    let etag = asset.etag();
    let held = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut answer = if held {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    answer
        .insert_header((header::ETAG, HeaderValue::from_str(etag).expect("hex")))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if held {
        return answer.finish();
    }
    answer.content_type(asset.content_type).body(asset.body)
}

/// `POST /console/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    /// An admin token's secret.
    token: String,
}

/// Who is signed in, and the value changes must echo in `X-CSRF-Token`.
#[derive(Debug, Serialize)]
struct SessionInfo {
    /// The admin token's name (what the audit log shows for this person's changes).
    name: String,
    /// Echo in `X-CSRF-Token` on every change.
    csrf: String,
    /// When the session ends (RFC 3339).
    expires_at: String,
}

impl SessionInfo {
    fn new(name: String, session: session::Session) -> Self {
        SessionInfo {
            name,
            csrf: session.csrf,
            expires_at: crate::clock::rfc3339(session.expires * 1000).unwrap_or_default(),
        }
    }
}

/// The current session; `204` when signed out (the page then shows the sign-in form).
async fn current(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match session::of_request(&req, &state.tokens) {
        Some((record, session)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(SessionInfo::new(record.name, session)),
        None => HttpResponse::NoContent()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
    }
}

/// Signs in with an admin token: sets the session cookie.
async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: crate::api::Body<SignIn>,
) -> Result<HttpResponse, ApiError> {
    session::same_origin(&req)?;
    let principal = state
        .tokens
        .authenticate(body.into_inner().token.trim())
        .ok_or(ApiError::Unauthorized)?;
    if principal.kind != TokenKind::Admin {
        return Err(ApiError::Forbidden(
            "the console takes an admin token; SDK and client tokens cannot sign in".into(),
        ));
    }
    let record = state
        .tokens
        .by_id(principal.id)
        .ok_or(ApiError::Unauthorized)?;
    let (value, session) = session::issue(&record, session::now_secs());
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(session::cookie(&req, value, session::LIFETIME_SECS))
        .json(SessionInfo::new(record.name, session)))
}

/// Signs out: the browser drops the cookie.
async fn sign_out(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    session::same_origin(&req)?;
    Ok(HttpResponse::NoContent()
        .cookie(session::cookie(&req, String::new(), 0))
        .finish())
}
