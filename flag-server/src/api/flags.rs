//! Flags: definitions (`/api/v1/flags[/{key}]`) and their configuration per environment
//! (`/api/v1/flags/{key}/environments/{env}`, with `kill` and `restore`).

use actix_web::{web, HttpRequest, HttpResponse};
use flag_sdk::Flag;
use serde::Deserialize;
use utoipa::ToSchema;

use super::change_requests::accepted;
use super::{etag, if_match, method_not_allowed, optional_json, Body, ReasonQuery};
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::flag_list::{self, ListQuery, Marks};
use crate::state::AppState;
use crate::store::change_requests::{self, ChangeRequest, Gated};
use crate::store::flag_configs::{self, KillOutcome};
use crate::store::flags::{self, FlagMeta, FlagPatch, NewFlag, Summary};
use crate::store::{releases, WriteCtx};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/flags")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}")
            .get(get)
            .patch(update)
            .delete(archive)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/unarchive")
            .post(unarchive)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/environments/{env}")
            .get(get_config)
            .put(put_config)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/environments/{env}/kill")
            .post(kill)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/environments/{env}/restore")
            .post(restore)
            .default_service(web::to(method_not_allowed)),
    );
}

/// `POST .../kill` and `POST .../restore`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (written to the audit log). Required for a kill.
    pub reason: Option<String>,
}

/// The killed and releasing sets, and (with `archived`) what the list filters on, in one read.
async fn read_list(
    state: &AppState,
    archived: Option<bool>,
) -> Result<(Marks, Vec<Summary>), ApiError> {
    state
        .store
        .read(move |conn| {
            let marks = Marks {
                killed: flag_configs::all_killed(conn)?.into_iter().collect(),
                releasing: releases::all_running(conn)?.into_iter().collect(),
            };
            let summaries = match archived {
                Some(archived) => flags::summaries(conn, archived)?,
                None => Vec::new(),
            };
            Ok((marks, summaries))
        })
        .await
}

/// `meta` with its state in every environment.
async fn with_states(state: &AppState, meta: FlagMeta) -> Result<FlagMeta, ApiError> {
    let (marks, _) = read_list(state, None).await?;
    Ok(flag_list::with_states(&state.snapshots, &marks, meta))
}

/// The flags (with their state per environment), ordered by key: the ones matching every
/// filter given, a page at a time with `limit` (the next page's cursor in `X-Next-Cursor`,
/// the number of matching flags in `X-Total-Count`). An unknown parameter is a 400.
#[utoipa::path(get, operation_id = "list_flags", path = "/api/v1/flags", tag = "flags", params(ListQuery),
    responses((status = 200, body = Vec<FlagMeta>,
               headers(("X-Total-Count" = u64, description = "how many flags match"),
                       ("X-Next-Cursor" = String, description = "the `cursor` of the next page; absent on the last"))),
              (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::parse(query.into_inner())?;
    let (marks, summaries) = read_list(&state, Some(query.archived.unwrap_or(false))).await?;
    let page = flag_list::page(&state.snapshots, &marks, summaries, &query)?;
    let keys = page.keys;
    let metas = state
        .store
        .read(move |conn| flags::get_many(conn, &keys))
        .await?;
    let metas: Vec<FlagMeta> = metas
        .into_iter()
        .map(|m| flag_list::with_states(&state.snapshots, &marks, m))
        .collect();
    let mut res = HttpResponse::Ok();
    res.insert_header(("X-Total-Count", page.total.to_string()));
    if let Some(cursor) = page.next_cursor {
        res.insert_header(("X-Next-Cursor", cursor));
    }
    Ok(res.json(metas))
}

/// Creates a flag in every environment: disabled, `off_variation` = its last variation,
/// `fallthrough` = its first. A boolean flag's variations default to `on` = true, `off` = false.
#[utoipa::path(post, operation_id = "create_flag", path = "/api/v1/flags", tag = "flags", request_body = NewFlag,
    params(ReasonQuery),
    responses((status = 201, body = FlagMeta),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem),
              (status = 409, description = "the key exists (maybe archived)", body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    reason: web::Query<ReasonQuery>,
    body: Body<NewFlag>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.0.name;
    let new = body.into_inner();
    let reason = reason.into_inner().into_reason();
    let meta = state
        .store
        .write(move |ctx| flags::create(ctx, &actor, new, reason.as_deref()))
        .await?;
    Ok(HttpResponse::Created().json(with_states(&state, meta).await?))
}

/// One flag's definition and its state per environment.
#[utoipa::path(get, operation_id = "get_flag", path = "/api/v1/flags/{key}", tag = "flags",
    params(("key" = String, Path, description = "flag key")),
    responses((status = 200, body = FlagMeta),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get(
    state: web::Data<AppState>,
    _admin: AdminToken,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = key.into_inner();
    let meta = state.store.read(move |conn| flags::get(conn, &key)).await?;
    Ok(HttpResponse::Ok().json(with_states(&state, meta).await?))
}

/// Replaces the name, description or tags given.
#[utoipa::path(patch, operation_id = "update_flag", path = "/api/v1/flags/{key}", tag = "flags", request_body = FlagPatch,
    params(("key" = String, Path, description = "flag key"), ReasonQuery),
    responses((status = 200, body = FlagMeta),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)))]
pub async fn update(
    state: web::Data<AppState>,
    admin: AdminToken,
    key: web::Path<String>,
    reason: web::Query<ReasonQuery>,
    body: Body<FlagPatch>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.0.name;
    let key = key.into_inner();
    let patch = body.into_inner();
    let reason = reason.into_inner().into_reason();
    let meta = state
        .store
        .write(move |ctx| flags::update(ctx, &actor, &key, patch, reason.as_deref()))
        .await?;
    Ok(HttpResponse::Ok().json(with_states(&state, meta).await?))
}

/// Archives a flag: it leaves every environment (SDKs get a `delete`). Refused (409) while
/// a live flag names it as a prerequisite.
#[utoipa::path(delete, operation_id = "archive_flag", path = "/api/v1/flags/{key}", tag = "flags",
    params(("key" = String, Path, description = "flag key"), ReasonQuery),
    responses((status = 200, description = "archived", body = FlagMeta),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn archive(
    state: web::Data<AppState>,
    admin: AdminToken,
    key: web::Path<String>,
    reason: web::Query<ReasonQuery>,
) -> Result<HttpResponse, ApiError> {
    let meta = archived(&state, admin, key, reason, flags::archive).await?;
    Ok(HttpResponse::Ok().json(meta))
}

/// Brings an archived flag back into every environment, with the configuration it had when
/// it was archived (disabled in an environment created since). 409 when it is not archived,
/// or while its configuration names a flag or segment that is gone (each one named).
#[utoipa::path(post, operation_id = "unarchive_flag", path = "/api/v1/flags/{key}/unarchive", tag = "flags",
    params(("key" = String, Path, description = "flag key"), ReasonQuery),
    responses((status = 200, description = "back in every environment", body = FlagMeta),
              (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn unarchive(
    state: web::Data<AppState>,
    admin: AdminToken,
    key: web::Path<String>,
    reason: web::Query<ReasonQuery>,
) -> Result<HttpResponse, ApiError> {
    let meta = archived(&state, admin, key, reason, flags::unarchive).await?;
    Ok(HttpResponse::Ok().json(with_states(&state, meta).await?))
}

/// Runs `archive` or `unarchive` of the flag in the path, with the reason of the query.
async fn archived(
    state: &AppState,
    admin: AdminToken,
    key: web::Path<String>,
    reason: web::Query<ReasonQuery>,
    write: fn(&mut WriteCtx<'_>, &str, &str, Option<&str>) -> Result<FlagMeta, ApiError>,
) -> Result<FlagMeta, ApiError> {
    let actor = admin.0.name;
    let key = key.into_inner();
    let reason = reason.into_inner().into_reason();
    state
        .store
        .write(move |ctx| write(ctx, &actor, &key, reason.as_deref()))
        .await
}

/// The flag's configuration in one environment (contract section 2), `ETag: "<version>"`.
#[utoipa::path(get, operation_id = "get_flag_config", path = "/api/v1/flags/{key}/environments/{env}", tag = "flags",
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 200, description = "the contract section 2 flag", body = Flag,
               headers(("ETag" = String, description = "\"<version>\""))),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get_config(
    state: web::Data<AppState>,
    _admin: AdminToken,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = path.into_inner();
    let snapshot = state
        .snapshots
        .get(&env)
        .ok_or_else(|| ApiError::NotFound(format!("no environment `{env}`")))?;
    let flag = snapshot
        .snapshot()
        .flags
        .get(&key)
        .ok_or_else(|| ApiError::NotFound(format!("no flag `{key}` (or it is archived)")))?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(flag.version))
        .json(flag))
}

/// Replaces the configuration. `If-Match: "<version>"` is checked inside the write
/// transaction: a stale version gets 412 and changes nothing. The body's `version` is ignored.
/// `variations` belong to the flag: a body whose variations differ from the flag's gets 422
/// naming the field (`variations`, `variations[1].value`). A replaced configuration is no
/// longer killed (`restore` then answers 409).
#[utoipa::path(put, operation_id = "put_flag_config", path = "/api/v1/flags/{key}/environments/{env}", tag = "flags",
    request_body(content = Flag, description = "the contract section 2 flag"),
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key"),
           ("If-Match" = Option<String>, Header, description = "\"<version>\" from the ETag"),
           ReasonQuery),
    responses((status = 200, description = "the stored flag", body = Flag,
               headers(("ETag" = String, description = "\"<version>\""))),
              (status = 202, description = "the environment requires approval: held as a change request", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 412, description = "stale If-Match", body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn put_config(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    reason: web::Query<ReasonQuery>,
    body: Body<Flag>,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = path.into_inner();
    let expected = if_match(&req)?;
    let reason = reason.into_inner().into_reason();
    let config = body.into_inner();
    if config.key != key {
        return Err(ApiError::invalid(
            "key",
            format!("does not match the flag in the path (`{key}`)"),
        ));
    }
    let actor = admin.0.name;
    let written = state
        .store
        .write(move |ctx| {
            change_requests::put_config(ctx, &actor, &env, config, expected, reason.as_deref())
        })
        .await?;
    let flag = match written {
        Gated::Done(flag) => flag,
        Gated::Held(request) => return Ok(accepted(&request)),
    };
    Ok(HttpResponse::Ok()
        .insert_header(etag(flag.version))
        .json(flag))
}

/// The kill switch: `enabled = false`, everything else kept. Answers the configuration
/// before and after and the number of SDK stream subscribers of the environment. Killing a
/// killed flag changes nothing (`"changed": false`). A running release of the flag in the
/// environment is paused in the same transaction (`"release_paused": true`) and stays paused
/// through `restore` until `POST .../release/resume`.
#[utoipa::path(post, operation_id = "kill_flag", path = "/api/v1/flags/{key}/environments/{env}/kill", tag = "flags",
    request_body = ReasonBody,
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 200, body = KillOutcome),
              (status = 202, description = "held as a change request (only where the environment says `approvals_for_kill`)", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, description = "no reason", body = Problem)))]
pub async fn kill(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = path.into_inner();
    let body: ReasonBody = optional_json(&body)?;
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("reason", "a kill needs a reason"))?;
    let actor = admin.0.name;
    let env2 = env.clone();
    let written = state
        .store
        .write(move |ctx| change_requests::kill(ctx, &actor, &key, &env2, &reason))
        .await?;
    let mut outcome = match written {
        Gated::Done(outcome) => outcome,
        Gated::Held(request) => return Ok(accepted(&request)),
    };
    outcome.subscribers = state.broadcaster.subscribers(&env);
    Ok(HttpResponse::Ok()
        .insert_header(etag(outcome.flag.version))
        .json(outcome))
}

/// Puts back exactly the configuration from before the kill (under a new version).
/// 409 when the flag is not killed.
#[utoipa::path(post, operation_id = "restore_flag", path = "/api/v1/flags/{key}/environments/{env}/restore", tag = "flags",
    request_body = ReasonBody,
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 200, body = KillOutcome),
              (status = 202, description = "held as a change request (only where the environment says `approvals_for_kill`)", body = ChangeRequest,
               headers(("Location" = String, description = "the change request"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, description = "not killed", body = Problem),
              (status = 422, body = Problem)))]
pub async fn restore(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = path.into_inner();
    let body: ReasonBody = optional_json(&body)?;
    let actor = admin.0.name;
    let env2 = env.clone();
    let written = state
        .store
        .write(move |ctx| {
            change_requests::restore(ctx, &actor, &key, &env2, body.reason.as_deref())
        })
        .await?;
    let mut outcome = match written {
        Gated::Done(outcome) => outcome,
        Gated::Held(request) => return Ok(accepted(&request)),
    };
    outcome.subscribers = state.broadcaster.subscribers(&env);
    Ok(HttpResponse::Ok()
        .insert_header(etag(outcome.flag.version))
        .json(outcome))
}
