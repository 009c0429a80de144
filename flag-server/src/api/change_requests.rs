//! Change requests: `GET /api/v1/change-requests[?state=&environment=]`,
//! `GET /api/v1/change-requests/{id}` (with the diff), and `POST .../{id}/approve`,
//! `.../reject`, `.../withdraw`. A write held for approval answers `accepted` (202).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{method_not_allowed, optional_json};
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::change_requests::{self, ChangeRequest};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/change-requests")
            .get(list)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/change-requests/{id}")
            .get(get)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/change-requests/{id}/approve")
            .post(approve)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/change-requests/{id}/reject")
            .post(reject)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/change-requests/{id}/withdraw")
            .post(withdraw)
            .default_service(web::to(method_not_allowed)),
    );
}

/// The answer to a write held for approval: 202, `Location` of the request, the request.
pub(crate) fn accepted(request: &ChangeRequest) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/change-requests/{}", request.id),
        ))
        .json(request)
}

/// `GET /change-requests` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `pending`, `applied`, `stale`, `rejected` or `withdrawn`.
    pub state: Option<String>,
    /// Only this environment's.
    pub environment: Option<String>,
}

/// `POST .../reject` (and, optionally, `approve` and `withdraw`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why (in the audit log).
    pub reason: Option<String>,
}

/// Change requests, newest first.
#[utoipa::path(get, operation_id = "list_change_requests", path = "/api/v1/change-requests", tag = "change-requests",
    params(ListQuery),
    responses((status = 200, body = Vec<ChangeRequest>),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let ListQuery {
        state: wanted,
        environment,
    } = query.into_inner();
    let wanted = wanted
        .map(|s| {
            change_requests::parse_state(&s).ok_or_else(|| {
                ApiError::bad_field(
                    "state",
                    "must be `pending`, `applied`, `stale`, `rejected` or `withdrawn`",
                )
            })
        })
        .transpose()?;
    let list = state
        .store
        .read(move |conn| change_requests::list(conn, wanted, environment.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// One change request, with the proposed change, its base and the diff between them.
#[utoipa::path(get, operation_id = "get_change_request", path = "/api/v1/change-requests/{id}", tag = "change-requests",
    params(("id" = i64, Path, description = "change request id")),
    responses((status = 200, body = ChangeRequest),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminToken,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let request = state
        .store
        .read(move |conn| change_requests::get(conn, id))
        .await?;
    Ok(HttpResponse::Ok().json(request))
}

/// A decision's body (optional) and who decides, once the token is known to be allowed to
/// change the request's environment.
async fn decision(
    state: &AppState,
    admin: AdminToken,
    id: i64,
    body: &[u8],
) -> Result<(String, Decision), ApiError> {
    let decision: Decision = optional_json(body)?;
    let request = state
        .store
        .read(move |conn| change_requests::get(conn, id))
        .await?;
    admin.0.may_write(&request.environment)?;
    Ok((admin.0.name, decision))
}

/// Approves a request; the author cannot (403). With enough approvals it is applied with
/// If-Match on its base version: a flag changed meanwhile answers 409, the request is then
/// `stale`, and nothing is applied.
#[utoipa::path(post, operation_id = "approve_change_request", path = "/api/v1/change-requests/{id}/approve", tag = "change-requests",
    request_body(content = Option<Decision>, description = "optional"),
    params(("id" = i64, Path, description = "change request id")),
    responses((status = 200, description = "approved (and applied when enough approvals are in)", body = ChangeRequest),
              (status = 401, body = Problem),
              (status = 403, description = "the author's own request, or a token that may not change the environment", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "not pending, or stale: the flag changed since", body = Problem)))]
pub async fn approve(
    state: web::Data<AppState>,
    admin: AdminToken,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (actor, _) = decision(&state, admin, id, &body).await?;
    let now = state.scheduler.now();
    let approved = state
        .store
        .write(move |ctx| change_requests::approve(ctx, &actor, id, now))
        .await?;
    if approved.stale {
        return Err(ApiError::Conflict(
            approved.request.detail.unwrap_or_default(),
        ));
    }
    state.scheduler.wake();
    Ok(HttpResponse::Ok().json(approved.request))
}

/// Rejects a request (not its author: they withdraw).
#[utoipa::path(post, operation_id = "reject_change_request", path = "/api/v1/change-requests/{id}/reject", tag = "change-requests",
    request_body(content = Option<Decision>, description = "optional"),
    params(("id" = i64, Path, description = "change request id")),
    responses((status = 200, body = ChangeRequest),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, description = "not pending", body = Problem)))]
pub async fn reject(
    state: web::Data<AppState>,
    admin: AdminToken,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (actor, decision) = decision(&state, admin, id, &body).await?;
    let request = state
        .store
        .write(move |ctx| change_requests::reject(ctx, &actor, id, decision.reason.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(request))
}

/// Withdraws a request (its author only).
#[utoipa::path(post, operation_id = "withdraw_change_request", path = "/api/v1/change-requests/{id}/withdraw", tag = "change-requests",
    request_body(content = Option<Decision>, description = "optional"),
    params(("id" = i64, Path, description = "change request id")),
    responses((status = 200, body = ChangeRequest),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, description = "not pending", body = Problem)))]
pub async fn withdraw(
    state: web::Data<AppState>,
    admin: AdminToken,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (actor, _) = decision(&state, admin, id, &body).await?;
    let request = state
        .store
        .write(move |ctx| change_requests::withdraw(ctx, &actor, id))
        .await?;
    Ok(HttpResponse::Ok().json(request))
}
