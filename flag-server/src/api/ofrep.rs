//! OFREP's endpoints (the OpenFeature Remote Evaluation Protocol, v0.3.0), for an SDK token
//! or a client token bound to one environment, sent as `Authorization: Bearer` or
//! `X-API-Key`:
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: one flag for the body's context;
//! - `POST /ofrep/v1/evaluate/flags`: every flag, with `ETag` / `If-None-Match` → `304`, and
//!   the event stream advertised in `eventStreams`;
//! - `GET /ofrep/v1/events?ticket=...`: that stream, a `refetchEvaluation` event per change.
//!
//! Thin: the evaluation, limits, CORS rules and tally live in `crate::ofrep`.

use actix_web::dev::Service;
use actix_web::http::{header, Method};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use super::method_not_allowed;
use crate::auth::{EnvironmentToken, Principal};
use crate::error::ApiError;
use crate::ofrep::wire::{BulkEvaluation, ErrorBody, ErrorCode, EvaluationSuccess};
use crate::ofrep::{cors, request, ticket, Bulk, OfrepError, Refusal};
use crate::state::AppState;

/// Registers the routes, their preflights and the CORS headers of every answer.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let preflighted = |path: &str| {
        web::resource(path)
            .route(web::method(Method::OPTIONS).to(preflight))
            .default_service(web::to(method_not_allowed))
    };
    cfg.service(
        web::scope("/ofrep/v1")
            .wrap_fn(|req, srv| {
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    if let Some(state) = res.request().app_data::<web::Data<AppState>>().cloned() {
                        let req = res.request().clone();
                        cors::decorate(&req, &state.tokens, res.headers_mut());
                    }
                    Ok(res)
                }
            })
            .service(preflighted("/evaluate/flags/{key}").route(web::post().to(single)))
            .service(preflighted("/evaluate/flags").route(web::post().to(bulk)))
            .service(preflighted("/events").route(web::get().to(events))),
    );
}

/// The token, from an origin it may answer, within its rate.
fn admit(
    req: &HttpRequest,
    state: &AppState,
    token: Result<EnvironmentToken, ApiError>,
) -> Result<EnvironmentToken, OfrepError> {
    let token = token?;
    cors::check_origin(req, &token.principal)?;
    state.ofrep.rate.check(token.principal.id)?;
    Ok(token)
}

/// Evaluates one flag for the request's context.
#[utoipa::path(post, operation_id = "ofrep_evaluate_flag", path = "/ofrep/v1/evaluate/flags/{key}", tag = "ofrep",
    params(("key" = String, Path, description = "the flag's key")),
    request_body(content = Object, description = "`{\"context\": {\"targetingKey\": \"user-1\", ...}}`, at most 64 KiB and 1,000 attributes"),
    responses(
        (status = 200, body = EvaluationSuccess),
        (status = 400, description = "PARSE_ERROR, TARGETING_KEY_MISSING or INVALID_CONTEXT (a limit named)", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an SDK or client token, or an origin the client token does not list", body = ErrorBody),
        (status = 404, description = "FLAG_NOT_FOUND", body = ErrorBody),
        (status = 429, description = "over the token's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 500, body = ErrorBody)))]
pub async fn single(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Result<EnvironmentToken, ApiError>,
    key: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, OfrepError> {
    let key = key.into_inner();
    let token = admit(&req, &state, token).map_err(|e| e.for_flag(&key))?;
    let body = request::read_body(payload)
        .await
        .map_err(|e| e.for_flag(&key))?;
    let json = state.ofrep.single(&token.environment, &key, &body)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}

/// Evaluates every flag of the token's environment for the request's context.
#[utoipa::path(post, operation_id = "ofrep_evaluate_flags", path = "/ofrep/v1/evaluate/flags", tag = "ofrep",
    params(("If-None-Match" = Option<String>, Header, description = "the ETag of an earlier answer for the same context")),
    request_body(content = Object, description = "`{\"context\": {\"targetingKey\": \"user-1\", ...}}`, at most 64 KiB and 1,000 attributes"),
    responses(
        (status = 200, body = BulkEvaluation, headers(("ETag" = String, description = "revision and context"))),
        (status = 304, description = "unchanged since the ETag given", headers(("ETag" = String))),
        (status = 400, description = "PARSE_ERROR, TARGETING_KEY_MISSING or INVALID_CONTEXT (a limit named)", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 403, description = "not an SDK or client token, or an origin the client token does not list", body = ErrorBody),
        (status = 429, description = "over the token's rate limit", body = ErrorBody,
            headers(("Retry-After" = u64, description = "seconds to wait"))),
        (status = 500, body = ErrorBody)))]
pub async fn bulk(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: Result<EnvironmentToken, ApiError>,
    payload: web::Payload,
) -> Result<HttpResponse, OfrepError> {
    let token = admit(&req, &state, token)?;
    let body = request::read_body(payload).await?;
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let stream_url = |revision: u64| {
        let info = req.connection_info();
        let ticket = state
            .tokens
            .by_id(token.principal.id)
            .map(|record| ticket::issue(&record))
            .unwrap_or_default();
        format!(
            "{}://{}/ofrep/v1/events?ticket={ticket}&revision={revision}",
            info.scheme(),
            info.host()
        )
    };
    match state
        .ofrep
        .bulk(&token.environment, &body, if_none_match, stream_url)?
    {
        Bulk::Fresh { etag, body } => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(body)),
        Bulk::NotModified { etag } => Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish()),
    }
}

/// The event stream's query. Read by hand from its pairs so that every bad query is an
/// OFREP error naming the parameter; unknown parameters are ignored.
#[derive(Debug, Default)]
struct StreamQuery {
    /// The ticket from the bulk answer's `eventStreams[0].url`.
    ticket: Option<String>,
    /// The revision that bulk answer was at (also in its URL): a change committed since
    /// (before the stream opened) is announced as soon as it opens.
    revision: Option<u64>,
}

impl StreamQuery {
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, OfrepError> {
        let bad = |what: String| OfrepError::new(ErrorCode::ParseError, what);
        let mut query = StreamQuery::default();
        for (name, value) in pairs {
            match name.as_str() {
                "ticket" if query.ticket.is_none() => query.ticket = Some(value),
                "revision" if query.revision.is_none() => {
                    let revision = value.parse().map_err(|_| {
                        bad(format!(
                            "revision: {value:?} is not a revision (a whole number of 0 or \
                             more, as in the bulk answer's eventStreams URL)"
                        ))
                    })?;
                    query.revision = Some(revision);
                }
                "ticket" | "revision" => return Err(bad(format!("{name}: given more than once"))),
                _ => {}
            }
        }
        Ok(query)
    }
}

/// The change notification stream (ADR-0008): `retry:`, then an SSE `message` with data
/// `{"type": "refetchEvaluation", "etag": "<revision>"}` after every change of the
/// environment, and heartbeat comments. The URL comes from a bulk answer and names its
/// revision: when the environment has changed since (between the answer and the stream's
/// opening, or while a hidden tab had it closed), the first event is a `refetchEvaluation`.
#[utoipa::path(get, operation_id = "ofrep_events", path = "/ofrep/v1/events", tag = "ofrep",
    params(("ticket" = String, Query, description = "from the bulk answer's eventStreams"),
           ("revision" = Option<u64>, Query, minimum = 0, description = "the revision of that bulk answer (in the same URL)")),
    security(()),
    responses(
        (status = 200, description = "server-sent events", content_type = "text/event-stream", body = String),
        (status = 400, description = "`revision` is not a whole number of 0 or more, or a parameter is given twice (`PARSE_ERROR`)", body = ErrorBody),
        (status = 401, description = "no valid ticket", body = ErrorBody),
        (status = 403, description = "an origin the client token does not list", body = ErrorBody)))]
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, OfrepError> {
    let query = StreamQuery::parse(query.into_inner())?;
    let record = query
        .ticket
        .as_deref()
        .and_then(|t| ticket::check(&state.tokens, t))
        .ok_or_else(|| OfrepError::refused(Refusal::Unauthorized, "no valid ticket"))?;
    let principal = Principal::from(&record);
    req.extensions_mut().insert(principal.clone());
    cors::check_origin(&req, &principal)?;
    let environment = record.environment.unwrap_or_default();
    let tokens = state.tokens.clone();
    let alive = move || tokens.is_active(record.id);
    let snapshots = state.snapshots.clone();
    let body = state
        .broadcaster
        .notifications(
            &environment,
            &|| snapshots.get(&environment),
            query.revision,
            alive,
        )
        .ok_or_else(|| {
            OfrepError::refused(Refusal::Forbidden, "the token's environment is gone")
        })?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

async fn preflight(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OfrepError> {
    cors::preflight(&req, &state.tokens)
}
