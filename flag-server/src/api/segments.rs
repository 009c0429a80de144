//! Segments of an environment: `/api/v1/environments/{env}/segments[/{key}]`.

use actix_web::{web, HttpRequest, HttpResponse};
use flag_sdk::Segment;

use super::change_requests::accepted;
use super::{etag, if_match, method_not_allowed, Body, ReasonQuery};
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::change_requests::{self, ChangeRequest, Gated};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/environments/{env}/segments")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/environments/{env}/segments/{key}")
            .get(get)
            .put(replace)
            .delete(delete)
            .default_service(web::to(method_not_allowed)),
    );
}

fn snapshot(
    state: &AppState,
    env: &str,
) -> Result<std::sync::Arc<flag_sdk::CompiledSnapshot>, ApiError> {
    state
        .snapshots
        .get(env)
        .ok_or_else(|| ApiError::NotFound(format!("no environment `{env}`")))
}

/// Every segment of the environment (contract section 2), by key.
#[utoipa::path(get, operation_id = "list_segments", path = "/api/v1/environments/{env}/segments", tag = "segments",
    params(("env" = String, Path, description = "environment key")),
    responses((status = 200, description = "the segments", body = Vec<Segment>),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
    env: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = snapshot(&state, &env)?;
    let list: Vec<&Segment> = s.snapshot().segments.values().collect();
    Ok(HttpResponse::Ok().json(list))
}

/// Creates a segment (version 1). 409 when the key exists.
#[utoipa::path(post, operation_id = "create_segment", path = "/api/v1/environments/{env}/segments", tag = "segments",
    request_body(content = Segment, description = "the contract section 2 segment"),
    params(("env" = String, Path, description = "environment key"), ReasonQuery),
    responses((status = 201, description = "the stored segment", body = Segment),
              (status = 202, description = "the environment requires approval: held as a change request", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 413, body = Problem),
              (status = 422, body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    env: web::Path<String>,
    reason: web::Query<ReasonQuery>,
    body: Body<Segment>,
) -> Result<HttpResponse, ApiError> {
    let env = env.into_inner();
    let reason = reason.into_inner().into_reason();
    let actor = admin.0.name;
    let segment = body.into_inner();
    let written = state
        .store
        .write(move |ctx| {
            change_requests::put_segment(ctx, &actor, &env, segment, None, reason.as_deref())
        })
        .await?;
    let segment = match written {
        Gated::Done(segment) => segment,
        Gated::Held(request) => return Ok(accepted(&request)),
    };
    Ok(HttpResponse::Created()
        .insert_header(etag(segment.version))
        .json(segment))
}

/// One segment, `ETag: "<version>"`.
#[utoipa::path(get, operation_id = "get_segment", path = "/api/v1/environments/{env}/segments/{key}", tag = "segments",
    params(("env" = String, Path, description = "environment key"),
           ("key" = String, Path, description = "segment key")),
    responses((status = 200, description = "the segment", body = Segment),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminToken,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (env, key) = path.into_inner();
    let s = snapshot(&state, &env)?;
    let segment = s
        .snapshot()
        .segments
        .get(&key)
        .ok_or_else(|| ApiError::NotFound(format!("no segment `{key}` in `{env}`")))?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(segment.version))
        .json(segment))
}

/// Replaces a segment; `If-Match` as for flags.
#[utoipa::path(put, operation_id = "replace_segment", path = "/api/v1/environments/{env}/segments/{key}", tag = "segments",
    request_body(content = Segment, description = "the contract section 2 segment"),
    params(("env" = String, Path, description = "environment key"),
           ("key" = String, Path, description = "segment key"),
           ("If-Match" = Option<String>, Header, description = "\"<version>\" from the ETag"),
           ReasonQuery),
    responses((status = 200, description = "the stored segment", body = Segment),
              (status = 202, description = "the environment requires approval: held as a change request", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 412, body = Problem), (status = 413, body = Problem),
              (status = 422, body = Problem)))]
pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    reason: web::Query<ReasonQuery>,
    body: Body<Segment>,
) -> Result<HttpResponse, ApiError> {
    let (env, key) = path.into_inner();
    let expected = if_match(&req)?;
    let reason = reason.into_inner().into_reason();
    let segment = body.into_inner();
    if segment.key != key {
        return Err(ApiError::invalid(
            "key",
            format!("does not match the segment in the path (`{key}`)"),
        ));
    }
    let actor = admin.0.name;
    let written = state
        .store
        .write(move |ctx| {
            let replace = Some(expected);
            change_requests::put_segment(ctx, &actor, &env, segment, replace, reason.as_deref())
        })
        .await?;
    let segment = match written {
        Gated::Done(segment) => segment,
        Gated::Held(request) => return Ok(accepted(&request)),
    };
    Ok(HttpResponse::Ok()
        .insert_header(etag(segment.version))
        .json(segment))
}

/// Deletes a segment. 409 while a flag or segment names it.
#[utoipa::path(delete, operation_id = "delete_segment", path = "/api/v1/environments/{env}/segments/{key}", tag = "segments",
    params(("env" = String, Path, description = "environment key"),
           ("key" = String, Path, description = "segment key"), ReasonQuery),
    responses((status = 204, description = "deleted"),
              (status = 202, description = "the environment requires approval: held as a change request", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    reason: web::Query<ReasonQuery>,
) -> Result<HttpResponse, ApiError> {
    let (env, key) = path.into_inner();
    let actor = admin.0.name;
    let reason = reason.into_inner().into_reason();
    let written = state
        .store
        .write(move |ctx| {
            change_requests::delete_segment(ctx, &actor, &env, &key, reason.as_deref())
        })
        .await?;
    if let Gated::Held(request) = written {
        return Ok(accepted(&request));
    }
    Ok(HttpResponse::NoContent().finish())
}
