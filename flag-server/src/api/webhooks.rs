//! Webhooks (contract section 7): `/api/v1/webhooks` to register, list and delete them, and
//! `/api/v1/webhooks/{id}/deliveries` for the delivery log.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::method_not_allowed;
use super::Body;
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::webhooks::{self, DeliveryRecord, NewWebhook, Webhook};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/webhooks")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/webhooks/{id}")
            .delete(delete)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/webhooks/{id}/deliveries")
            .get(deliveries)
            .default_service(web::to(method_not_allowed)),
    );
}

/// Registers a webhook. Its URL must resolve to allowed addresses: never link-local or
/// metadata; loopback and private ranges only with `--webhook-allow-private`.
#[utoipa::path(post, operation_id = "create_webhook", path = "/api/v1/webhooks", tag = "webhooks",
    request_body = NewWebhook,
    responses((status = 201, body = Webhook),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    body: Body<NewWebhook>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner();
    crate::webhooks::check_url(&new.url, state.webhook_allow_private)
        .await
        .map_err(|why| ApiError::invalid("url", why))?;
    let actor = admin.0.name;
    let hook = state
        .store
        .write(move |ctx| webhooks::create(ctx, &actor, new))
        .await?;
    Ok(HttpResponse::Created().json(hook))
}

/// Every webhook (secrets are never shown again).
#[utoipa::path(get, operation_id = "list_webhooks", path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Webhook>),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
) -> Result<HttpResponse, ApiError> {
    let hooks = state.store.read(webhooks::list).await?;
    Ok(HttpResponse::Ok().json(hooks))
}

/// Deletes a webhook; its pending deliveries are dropped.
#[utoipa::path(delete, operation_id = "delete_webhook", path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "webhook id")),
    responses((status = 204, description = "deleted"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminToken,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (id, actor) = (id.into_inner(), admin.0.name);
    state
        .store
        .write(move |ctx| webhooks::delete(ctx, &actor, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET .../deliveries` paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// At most this many, newest first (default 50, at most 500).
    pub limit: Option<u32>,
}

/// A webhook's delivery log, newest first: status, attempts, last error, the body sent.
#[utoipa::path(get, operation_id = "webhook_deliveries", path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "webhook id"), DeliveriesQuery),
    responses((status = 200, body = Vec<DeliveryRecord>),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn deliveries(
    state: web::Data<AppState>,
    _admin: AdminToken,
    id: web::Path<i64>,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let log = state
        .store
        .read(move |conn| webhooks::deliveries(conn, id, limit))
        .await?;
    Ok(HttpResponse::Ok().json(log))
}
