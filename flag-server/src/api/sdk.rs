//! The SDK endpoints (contract section 5), all behind an SDK token bound to one environment:
//! the SSE stream, the snapshot (polling fallback, `ETag`/`304`) and the events intake. Also
//! the admin view of SDK connections (subscriber counts). Thin: the stream's logic lives in
//! `crate::stream`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use flag_sdk::events::{EventBatch, MetricEvent};
use flag_sdk::validate::{FieldError, ValidationErrors};

use super::Body;
use crate::auth::{AdminToken, EnvironmentToken, SdkToken};
use crate::error::ApiError;
use crate::release::guard::Counts;
use crate::state::AppState;
use crate::store::releases::{self, Observations};

/// Registers the SDK routes and the subscriber-count route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sdk/v1/stream", web::get().to(stream))
        .route("/sdk/v1/snapshot", web::get().to(snapshot))
        .route("/sdk/v1/events", web::post().to(events))
        .route(
            "/api/v1/environments/{env}/subscribers",
            web::get().to(subscribers),
        );
}

/// One event of `/sdk/v1/stream` as an SSE parser reads it (the OpenAPI document's schema
/// of each event; the server writes the frames in `crate::stream`).
#[derive(Debug, ToSchema)]
pub struct StreamEvent {
    /// `put` (the whole snapshot), `patch` (one flag or segment) or `delete`.
    #[schema(pattern = "^(put|patch|delete)$")]
    pub event: String,
    /// The revision the event brings the environment to.
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    /// JSON: the section 2 snapshot for `put`; `{revision, kind, key, data}` for `patch`;
    /// `{revision, kind, key}` for `delete`.
    pub data: String,
}

/// The SSE stream: `retry:`, then a `put` of the snapshot (or, with `Last-Event-ID`, the
/// changes missed, from memory or from the change log, when still kept), then `patch`/`delete` events with `id:` = revision, and
/// heartbeat comments. A subscriber too slow to keep up is cut off and resyncs; the stream of
/// a revoked token ends at once (on every replica).
#[utoipa::path(get, path = "/sdk/v1/stream", tag = "sdk",
    params(("Last-Event-ID" = Option<u64>, Header, description = "the last revision received")),
    responses(
        (status = 200, description = "server-sent events", body = StreamEvent, content_type = "text/event-stream"),
        (status = 401, description = "no valid token", body = crate::error::Problem),
        (status = 403, description = "not an SDK token", body = crate::error::Problem),
        (status = 404, description = "the token's environment is gone", body = crate::error::Problem)))]
pub async fn stream(
    req: HttpRequest,
    token: SdkToken,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let last_event_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let tokens = state.tokens.clone();
    let id = token.principal.id;
    let alive = move || tokens.is_active(id);
    let snapshots = state.snapshots.clone();
    let environment = token.environment;
    let joining = state
        .broadcaster
        .subscribe(
            &environment,
            &|| snapshots.get(&environment),
            last_event_id,
            alive,
        )
        .ok_or_else(|| ApiError::NotFound(format!("no environment `{environment}`")))?;
    // Missed changes this replica does not hold come from the change log; when the log no
    // longer has them all either, the stream starts with a `put`.
    let from_log = match joining.missing() {
        Some((after, upto)) => state
            .store
            .changes(environment, after, upto)
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read the change log; starting with a put");
                None
            }),
        None => None,
    };
    let body = joining.start(from_log);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The environment's snapshot; `ETag` is the revision, `If-None-Match` with it gives `304`.
#[utoipa::path(get, path = "/sdk/v1/snapshot", tag = "sdk",
    responses(
        (status = 200, description = "the section 2 snapshot", body = flag_sdk::Snapshot),
        (status = 304, description = "unchanged since the ETag given"),
        (status = 401, description = "no valid token", body = crate::error::Problem),
        (status = 403, description = "not an SDK token", body = crate::error::Problem),
        (status = 404, description = "the token's environment is gone", body = crate::error::Problem)))]
pub async fn snapshot(
    req: HttpRequest,
    token: SdkToken,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let current = state
        .snapshots
        .get(&token.environment)
        .ok_or_else(|| ApiError::NotFound(format!("no environment `{}`", token.environment)))?;
    let etag = format!("\"{}\"", current.revision());
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == etag || tag.trim() == "*")
        });
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(state.broadcaster.snapshot_json(&current)))
}

/// How much of a batch was taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Counters received.
    pub counters: usize,
    /// Events received.
    pub events: usize,
}

/// Takes a batch of counters and events, from an SDK token or a client token (a browser
/// reporting errors against the variants OFREP served it). Counters and metric histograms
/// (events of kind `metric`) of flags under a running release feed its guard at once: a
/// regression rolls the release back in the same transaction. Events of other kinds are
/// ignored; a metric event that is not well formed is a 400 naming it.
#[utoipa::path(post, path = "/sdk/v1/events", tag = "sdk", request_body = EventBatch,
    responses(
        (status = 202, description = "accepted", body = Accepted),
        (status = 400, description = "not an event batch", body = crate::error::Problem),
        (status = 401, description = "no valid token", body = crate::error::Problem),
        (status = 403, description = "not an SDK or client token", body = crate::error::Problem),
        (status = 422, description = "a metric event that is not well formed", body = crate::error::Problem)))]
pub async fn events(
    token: EnvironmentToken,
    state: web::Data<AppState>,
    batch: Body<EventBatch>,
) -> Result<HttpResponse, ApiError> {
    let batch = batch.into_inner();
    let accepted = Accepted {
        counters: batch.counters.len(),
        events: batch.events.len(),
    };
    let metrics = metric_events(&batch.events)?;
    let counters: Vec<(String, String, Counts)> = batch
        .counters
        .into_iter()
        .filter(|c| c.evaluations > 0 || c.errors > 0)
        .map(|c| {
            let counts = Counts {
                evaluations: c.evaluations,
                errors: c.errors,
            };
            (c.flag, c.variation, counts)
        })
        .collect();
    let mut observations = Observations { counters, metrics };
    if !observations.is_empty() {
        let env = token.environment.clone();
        let active = state
            .store
            .read(move |conn| releases::active_flags(conn, &env))
            .await?;
        observations = observations.only(&active);
    }
    if !observations.is_empty() {
        let env = token.environment.clone();
        let steps = state
            .store
            .write(move |ctx| releases::observe(ctx, &env, &observations))
            .await?;
        for step in &steps {
            tracing::warn!(
                environment = token.environment,
                event = step.event,
                reason = step.reason,
                "release guard acted"
            );
        }
        if !steps.is_empty() {
            state.outbox.wake();
        }
    }
    Ok(HttpResponse::Accepted().json(accepted))
}

/// The batch's metric events (`"kind": "metric"`), checked; other kinds are skipped.
fn metric_events(events: &[serde_json::Value]) -> Result<Vec<MetricEvent>, ApiError> {
    let mut metrics = Vec::new();
    let mut problems = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if event.get("kind").and_then(|k| k.as_str()) != Some("metric") {
            continue;
        }
        let parsed = serde_json::from_value::<MetricEvent>(event.clone())
            .map_err(|e| e.to_string())
            .and_then(|m| m.histogram.check().map(|()| m).map_err(|e| e.to_string()));
        match parsed {
            Ok(m) if m.histogram.count > 0 => metrics.push(m),
            Ok(_) => {}
            Err(message) => problems.push(FieldError {
                field: format!("events[{i}]"),
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(metrics)
    } else {
        Err(ApiError::Validation(ValidationErrors(problems)))
    }
}

/// How many SDKs are connected to an environment's stream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Subscribers {
    /// The environment.
    pub environment: String,
    /// Open SDK streams.
    pub subscribers: usize,
}

/// Open SDK streams of an environment (what `flag status` shows).
#[utoipa::path(get, path = "/api/v1/environments/{env}/subscribers", tag = "environments",
    params(("env" = String, Path, description = "environment key")),
    responses(
        (status = 200, description = "subscriber count", body = Subscribers),
        (status = 404, description = "no such environment", body = crate::error::Problem)))]
pub async fn subscribers(
    _admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let environment = path.into_inner();
    if state.snapshots.get(&environment).is_none() {
        return Err(ApiError::NotFound(format!(
            "no environment `{environment}`"
        )));
    }
    Ok(HttpResponse::Ok().json(Subscribers {
        subscribers: state.broadcaster.subscribers(&environment),
        environment,
    }))
}
