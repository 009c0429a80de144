//! `GET /api/v1/audit`: the audit log, newest first, a page at a time.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::method_not_allowed;
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry};

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/audit")
            .get(list)
            .default_service(web::to(method_not_allowed)),
    );
}

/// Filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only entries about this flag.
    pub flag: Option<String>,
    /// Only entries in this environment.
    pub environment: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only entries at or after this time, RFC 3339 (`2026-12-01T02:30:00Z`).
    pub since: Option<String>,
    /// Only entries at or before this time, RFC 3339.
    pub until: Option<String>,
}

/// An RFC 3339 query parameter as Unix milliseconds; 400 naming it otherwise.
pub(crate) fn rfc3339_param(field: &str, value: Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            crate::clock::parse_rfc3339(&text).ok_or_else(|| {
                ApiError::bad_field(
                    field,
                    format!("`{text}` is not an RFC 3339 date-time, e.g. 2026-12-01T03:00:00Z"),
                )
            })
        })
        .transpose()
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Who changed what, when, before/after and why; newest first. `since` and `until` (RFC
/// 3339, both inclusive) bound the time; a value that is not RFC 3339 is a 400 naming it.
#[utoipa::path(get, operation_id = "list_audit", path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let AuditQuery {
        flag,
        environment,
        limit,
        cursor,
        since,
        until,
    } = query.into_inner();
    let filter = audit::AuditFilter {
        flag,
        environment,
        since: rfc3339_param("since", since)?,
        until: rfc3339_param("until", until)?,
    };
    let cursor = cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_field("cursor", "not a cursor from `next_cursor`"))
        })
        .transpose()?;
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > audit::MAX_LIMIT {
        return Err(ApiError::bad_field(
            "limit",
            format!("must be 1 to {}", audit::MAX_LIMIT),
        ));
    }
    let (entries, next_cursor) = state
        .store
        .read(move |conn| audit::list(conn, &filter, limit, cursor))
        .await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        entries,
        next_cursor,
    }))
}
