//! `GET, POST /api/v1/environments`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::method_not_allowed;
use super::Body;
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::environments::{self, Environment, EnvironmentPatch};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/environments")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/environments/{env}")
            .patch(update)
            .default_service(web::to(method_not_allowed)),
    );
}

/// `POST /environments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    /// The key, `^[a-z0-9][a-z0-9._-]{0,99}$`.
    pub key: String,
}

/// Every environment.
#[utoipa::path(get, operation_id = "list_environments", path = "/api/v1/environments", tag = "environments",
    responses((status = 200, body = Vec<Environment>),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
) -> Result<HttpResponse, ApiError> {
    let envs = state.store.read(environments::list).await?;
    Ok(HttpResponse::Ok().json(envs))
}

/// Creates an environment; every live flag gets its default (disabled) configuration in it.
#[utoipa::path(post, operation_id = "create_environment", path = "/api/v1/environments", tag = "environments",
    request_body = NewEnvironment,
    responses((status = 201, body = Environment),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, description = "exists", body = Problem),
              (status = 422, description = "bad key", body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    body: Body<NewEnvironment>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.0.name;
    let key = body.into_inner().key;
    let env = state
        .store
        .write(move |ctx| environments::create(ctx, &actor, &key))
        .await?;
    Ok(HttpResponse::Created().json(env))
}

/// Changes an environment's settings: `approvals` (a write here then creates a change request
/// that needs this many approvals from other people; 0 turns that off) and
/// `approvals_for_kill` (kill and restore wait for approvals too; off by default so a
/// responder never waits). Needs an `admin` token.
#[utoipa::path(patch, operation_id = "update_environment", path = "/api/v1/environments/{env}", tag = "environments",
    request_body = EnvironmentPatch,
    params(("env" = String, Path, description = "environment key")),
    responses((status = 200, body = Environment),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(
    state: web::Data<AppState>,
    admin: AdminToken,
    env: web::Path<String>,
    body: Body<EnvironmentPatch>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.0.name;
    let env = env.into_inner();
    let patch = body.into_inner();
    let env = state
        .store
        .write(move |ctx| environments::configure(ctx, &actor, &env, patch))
        .await?;
    Ok(HttpResponse::Ok().json(env))
}
