//! Alertmanager: `POST /api/v1/integrations/alertmanager` (its webhook, with an integration
//! token) and the bindings that say what an alert does, `POST, GET
//! /api/v1/integrations/alertmanager/bindings` and `DELETE .../bindings/{id}` (admin).

use actix_web::{web, HttpResponse};

use super::{method_not_allowed, Body};
use crate::alerts::{parse_payload, AlertmanagerPayload, Binding, BindingSpec, Outcome, Receipt};
use crate::auth::{AdminToken, IntegrationToken};
use crate::clock::now_millis;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::alerts;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/integrations/alertmanager")
            .post(receive)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/integrations/alertmanager/bindings")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/integrations/alertmanager/bindings/{id}")
            .delete(delete)
            .default_service(web::to(method_not_allowed)),
    );
}

/// Alertmanager's webhook (payload version 4, `webhook_config` with
/// `http_config.authorization` = an integration token). Each alert that matches a binding
/// acts once per occurrence (fingerprint + `startsAt`): repeats answer `repeat` and change
/// nothing. An alert that matches no binding changes nothing and is listed in `unmatched`
/// (200). Not Alertmanager's format, or an alert that lacks a label a matching binding takes
/// its flag or environment from (or names one that does not exist): 422 naming the field,
/// and nothing of the notification acts.
#[utoipa::path(post, operation_id = "receive_alertmanager", path = "/api/v1/integrations/alertmanager", tag = "alerts",
    request_body = AlertmanagerPayload,
    responses((status = 200, body = Receipt),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "not an integration token", body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)))]
pub async fn receive(
    state: web::Data<AppState>,
    token: IntegrationToken,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let payload = parse_payload(&body)?;
    let actor = format!("alertmanager:{}", token.0.name);
    let now = now_millis();
    let receipt = state
        .store
        .write(move |ctx| alerts::receive(ctx, &actor, &payload, now))
        .await?;
    if receipt.actions.iter().any(|a| a.outcome != Outcome::Repeat) {
        state.scheduler.wake();
        state.outbox.wake();
    }
    Ok(HttpResponse::Ok().json(receipt))
}

/// Creates a binding. A fixed flag or environment must exist; 422 names the field.
#[utoipa::path(post, operation_id = "create_alert_binding", path = "/api/v1/integrations/alertmanager/bindings", tag = "alerts",
    request_body = BindingSpec,
    responses((status = 201, body = Binding),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    body: Body<BindingSpec>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.into_inner();
    let actor = admin.0.name;
    let binding = state
        .store
        .write(move |ctx| alerts::create(ctx, &actor, spec))
        .await?;
    Ok(HttpResponse::Created().json(binding))
}

/// Every binding, by id.
#[utoipa::path(get, operation_id = "list_alert_bindings", path = "/api/v1/integrations/alertmanager/bindings", tag = "alerts",
    responses((status = 200, body = Vec<Binding>),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.store.read(alerts::list).await?))
}

/// Deletes a binding: its alerts no longer act.
#[utoipa::path(delete, operation_id = "delete_alert_binding", path = "/api/v1/integrations/alertmanager/bindings/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "binding id")),
    responses((status = 200, body = Binding),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn delete(
    state: web::Data<AppState>,
    admin: AdminToken,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let actor = admin.0.name;
    let binding = state
        .store
        .write(move |ctx| alerts::delete(ctx, &actor, id))
        .await?;
    Ok(HttpResponse::Ok().json(binding))
}
