//! `GET /api/v1/annotations?from=&to=`: every flag change, kill, release move and alert
//! action in a time window, in the shape Grafana's annotation queries read (JSON API /
//! Infinity data sources: epoch milliseconds in, `time`, `title`, `text`, `tags` out), so a
//! graph of errors shows the change that preceded it.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::method_not_allowed;
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry};

/// The most annotations one query answers.
pub const MAX_ANNOTATIONS: u32 = 1000;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/annotations")
            .get(list)
            .default_service(web::to(method_not_allowed)),
    );
}

/// The window, in Unix milliseconds (Grafana's `${__from}` and `${__to}`).
#[derive(Debug, Deserialize, IntoParams)]
pub struct AnnotationQuery {
    /// Start, Unix milliseconds (inclusive).
    pub from: Option<String>,
    /// End, Unix milliseconds (inclusive).
    pub to: Option<String>,
    /// Only this flag.
    pub flag: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// At most this many, 1 to 1000 (default 1000), oldest first.
    pub limit: Option<u32>,
}

/// One annotation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    /// When, Unix milliseconds.
    pub time: i64,
    /// The end of a region; equal to `time` (every change is a moment).
    pub time_end: i64,
    /// E.g. `flag.kill new-checkout (production)`.
    pub title: String,
    /// Who and why: `by alertmanager:am — alert CheckoutErrors firing: ...`.
    pub text: String,
    /// The flag, the environment, the actor and the action.
    pub tags: Vec<String>,
    /// The audit entry's id (`GET /api/v1/audit` has its before and after).
    pub id: i64,
}

impl Annotation {
    fn new(time: i64, e: AuditEntry) -> Self {
        let flag = e.flag.unwrap_or_default();
        let environment = e.environment.unwrap_or_default();
        let mut text = format!("by {}", e.actor);
        if let Some(reason) = e.reason.filter(|r| !r.is_empty()) {
            text.push_str(&format!(" — {reason}"));
        }
        Annotation {
            time,
            time_end: time,
            title: format!("{} {flag} ({environment})", e.action),
            text,
            tags: vec![flag, environment, e.actor, e.action],
            id: e.id,
        }
    }
}

fn millis(field: &str, value: Option<String>, default: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| ApiError::bad_field(field, format!("`{text}` is not Unix milliseconds"))),
    }
}

/// Flag changes, kills, release moves and alert actions from `from` to `to` (Unix ms,
/// default: the last 24 hours), oldest first. A bad `from`, `to` or `limit` is a 400 naming it.
#[utoipa::path(get, operation_id = "list_annotations", path = "/api/v1/annotations", tag = "audit",
    params(AnnotationQuery),
    responses((status = 200, body = Vec<Annotation>),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
    query: web::Query<AnnotationQuery>,
) -> Result<HttpResponse, ApiError> {
    let AnnotationQuery {
        from,
        to,
        flag,
        environment,
        limit,
    } = query.into_inner();
    let now = crate::clock::now_millis();
    let to = millis("to", to, now)?;
    let from = millis("from", from, to - 24 * 3600 * 1000)?;
    if from > to {
        return Err(ApiError::bad_field("from", "must not be after `to`"));
    }
    let limit = limit.unwrap_or(MAX_ANNOTATIONS);
    if limit == 0 || limit > MAX_ANNOTATIONS {
        return Err(ApiError::bad_field(
            "limit",
            format!("must be 1 to {MAX_ANNOTATIONS}"),
        ));
    }
    let filter = audit::AuditFilter {
        flag,
        environment,
        since: Some(from),
        until: Some(to),
    };
    let rows = state
        .store
        .read(move |conn| audit::flag_changes(conn, &filter, limit))
        .await?;
    let annotations: Vec<Annotation> = rows
        .into_iter()
        .map(|(time, e)| Annotation::new(time, e))
        .collect();
    Ok(HttpResponse::Ok().json(annotations))
}
