//! Operations endpoints: liveness, readiness (the database answers), Prometheus metrics and
//! the OpenAPI document. None needs a token.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sql::params;

/// Registers the operations routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi));
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok`.
    pub status: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "alive", body = Status)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok".into(),
    })
}

/// How long the writer may take to answer the readiness check's no-op write.
const WRITER_ANSWERS_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Readiness: a reader connection answers a query and the writer thread a no-op write within
/// 5 s. On PostgreSQL that write first reads the change log up to its
/// end, so "ready" also means the replica serves everything committed before the check. After
/// a write failed on a storage fault (disk full, read-only, I/O error), the writer must also
/// write for real (a header rewrite that changes nothing) until it succeeds again.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "ops", security(()),
    responses((status = 200, description = "ready", body = Status),
              (status = 503, description = "the database does not answer or cannot be written, or this replica has not caught up with it", body = crate::error::Problem)))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .store
        .read(|conn| {
            conn.query_one("SELECT count(*) FROM environments", params![])
                .and_then(|r| r.get::<i64>(0))
                .map_err(|e| ApiError::Unavailable(format!("database: {e}")))
        })
        .await?;
    let probe = state.store.write_fault().is_some();
    let written = tokio::time::timeout(
        WRITER_ANSWERS_WITHIN,
        state.store.write(move |ctx| {
            if probe {
                // The last write failed on the storage: ready once a real write succeeds.
                ctx.probe()
            } else {
                // The writer thread answers too (an empty group commit writes nothing).
                Ok(())
            }
        }),
    )
    .await
    .map_err(|_| {
        ApiError::Unavailable(format!(
            "the writer has not caught up with the database within {} s (a long transaction, \
             or a lock held elsewhere); this replica may serve stale flags",
            WRITER_ANSWERS_WITHIN.as_secs()
        ))
    })?;
    written?;
    Ok(HttpResponse::Ok().json(Status {
        status: "ok".into(),
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "ops", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The last change per flag comes from the database, so every replica says the same; a
    // database that does not answer costs this metric only.
    let last_changes = match state
        .store
        .read(crate::store::flag_configs::last_changes)
        .await
    {
        Ok(rows) => crate::metrics::render_last_changes(&rows),
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot read the last change of each flag");
            String::new()
        }
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render() + &state.broadcaster.render_metrics() + &last_changes)
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, operation_id = "openapi", path = "/openapi.json", tag = "ops", security(()),
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(super::openapi_json())
}
