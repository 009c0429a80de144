//! Scheduled changes of a flag in one environment:
//! `GET, POST /api/v1/flags/{key}/environments/{env}/schedules`,
//! `DELETE .../schedules/{id}` (cancel) and `POST .../schedules/{id}/resume` (after a kill).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::change_requests::accepted;
use super::{method_not_allowed, Body};
use crate::auth::AdminToken;
use crate::clock;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::change_requests::{self, ChangeRequest, Gated};
use crate::store::schedules::{self, Change, NewSchedule, Schedule};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/flags/{key}/environments/{env}/schedules")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/environments/{env}/schedules/{id}")
            .delete(cancel)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/environments/{env}/schedules/{id}/resume")
            .post(resume)
            .default_service(web::to(method_not_allowed)),
    );
}

/// `POST .../schedules`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// When, RFC 3339 (`2026-12-24T08:00:00Z`; seconds may be left out). In the future.
    #[schema(example = "2026-12-24T08:00Z")]
    pub at: String,
    /// Exactly one of `{"enabled": bool}`, `{"percent": N}`, `{"config": {...}}`.
    pub change: Change,
    /// Why (in the audit rows it writes).
    pub reason: Option<String>,
}

/// The flag's scheduled changes in the environment, by time, with their state.
#[utoipa::path(get, operation_id = "list_schedules", path = "/api/v1/flags/{key}/environments/{env}/schedules", tag = "schedules",
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 200, body = Vec<Schedule>),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = path.into_inner();
    let list = state
        .store
        .read(move |conn| schedules::list(conn, &key, &env))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Plans a change for a time; applied then as a write by its author (a whole configuration
/// only if the flag is still at the version it was planned on). In an environment that
/// requires approvals it becomes a change request (202): approving it plans it.
#[utoipa::path(post, operation_id = "create_schedule", path = "/api/v1/flags/{key}/environments/{env}/schedules", tag = "schedules",
    request_body = ScheduleBody,
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 201, body = Schedule),
              (status = 202, description = "held for approval", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    body: Body<ScheduleBody>,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = path.into_inner();
    let ScheduleBody { at, change, reason } = body.into_inner();
    let at = clock::parse_rfc3339(&at).ok_or_else(|| {
        ApiError::invalid("at", "must be an RFC 3339 time, e.g. 2026-12-24T08:00:00Z")
    })?;
    let new = NewSchedule { at, change, reason };
    let actor = admin.0.name;
    let now = state.scheduler.now();
    let gated = state
        .store
        .write(move |ctx| change_requests::schedule(ctx, &actor, &key, &env, new, now))
        .await?;
    state.scheduler.wake();
    Ok(match gated {
        Gated::Done(schedule) => HttpResponse::Created().json(schedule),
        Gated::Held(request) => accepted(&request),
    })
}

/// Cancels a pending or paused schedule (409 once it ran).
#[utoipa::path(delete, operation_id = "cancel_schedule", path = "/api/v1/flags/{key}/environments/{env}/schedules/{id}", tag = "schedules",
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key"),
           ("id" = i64, Path, description = "schedule id")),
    responses((status = 200, description = "cancelled", body = Schedule),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (key, env, id) = path.into_inner();
    let actor = admin.0.name;
    let schedule = state
        .store
        .write(move |ctx| schedules::cancel(ctx, &actor, &key, &env, id))
        .await?;
    Ok(HttpResponse::Ok().json(schedule))
}

/// Resumes a schedule a kill paused (409 while the flag is killed). One whose time has
/// passed runs at once, late, and says how late.
#[utoipa::path(post, operation_id = "resume_schedule", path = "/api/v1/flags/{key}/environments/{env}/schedules/{id}/resume", tag = "schedules",
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key"),
           ("id" = i64, Path, description = "schedule id")),
    responses((status = 200, body = Schedule),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resume(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (key, env, id) = path.into_inner();
    let actor = admin.0.name;
    let schedule = state
        .store
        .write(move |ctx| schedules::resume(ctx, &actor, &key, &env, id))
        .await?;
    state.scheduler.wake();
    Ok(HttpResponse::Ok().json(schedule))
}
