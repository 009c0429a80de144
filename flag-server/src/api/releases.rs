//! Releases (contract section 7): `/api/v1/flags/{key}/environments/{env}/release` to start one
//! and read its status, and `.../release/{pause|resume|advance|abort}` for a person's moves.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{method_not_allowed, optional_json, Body};
use crate::auth::AdminToken;
use crate::clock;
use crate::error::{ApiError, Problem};
use crate::release::guard::{Counts, GuardConfig};
use crate::release::plan::{OnRegression, Release, ReleasePlan, ReleaseState};
use crate::release::prometheus::Reading;
use crate::state::AppState;
use crate::store::releases::{self, Command};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/flags/{key}/environments/{env}/release")
            .get(status)
            .post(start)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/flags/{key}/environments/{env}/release/{action}")
            .post(act)
            .default_service(web::to(method_not_allowed)),
    );
}

/// A release as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseView {
    /// The flag.
    pub flag: String,
    /// The environment.
    pub environment: String,
    /// The variation being released.
    pub variation: String,
    /// Where it stands.
    pub state: ReleaseState,
    /// Index of the current stage in `stages`.
    pub stage: usize,
    /// The share of the current stage, in percent.
    pub percent: u32,
    /// Every stage, in percent.
    pub stages: Vec<u32>,
    /// How long each stage is held.
    pub hold_seconds: u64,
    /// The context attribute the stages bucket by (the flag's salt is kept).
    #[schema(example = "org")]
    pub bucket_by: String,
    /// When the scheduler next looks (RFC 3339), while running.
    pub next_at: Option<String>,
    /// The guard.
    pub guard: GuardConfig,
    /// What a regression does.
    pub on_regression: OnRegression,
    /// Counts per variation since the release began.
    pub observed: BTreeMap<String, Observed>,
    /// Figures of each guarded metric per variation since the release began.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, BTreeMap<String, MetricFigures>>,
    /// The last look at the Prometheus guard's queries (with why there was no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Reading>,
    /// Why it is in its state (the guard's figures or a person's reason).
    pub reason: Option<String>,
}

/// One variation's values of a tracked metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricFigures {
    /// Values received.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their 95th percentile (to a bucket: within 6.25% above).
    pub p95: Option<f64>,
}

/// One variation's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct Observed {
    /// Evaluations that served it.
    pub evaluations: u64,
    /// Tracked errors of contexts served it.
    pub errors: u64,
    /// `errors / evaluations`.
    pub error_rate: f64,
}

impl ReleaseView {
    fn new(flag: String, environment: String, r: Release) -> Self {
        let next_at = r.next_at().and_then(clock::rfc3339);
        let observed = r
            .observed
            .iter()
            .map(|(v, c): (&String, &Counts)| {
                let view = Observed {
                    evaluations: c.evaluations,
                    errors: c.errors,
                    error_rate: c.error_rate(),
                };
                (v.clone(), view)
            })
            .collect();
        let metrics = r
            .measured
            .iter()
            .map(|(metric, by_variation)| {
                let figures = by_variation
                    .iter()
                    .map(|(v, h)| {
                        let figures = MetricFigures {
                            count: h.count,
                            mean: h.mean(),
                            p95: h.quantile(0.95),
                        };
                        (v.clone(), figures)
                    })
                    .collect();
                (metric.clone(), figures)
            })
            .collect();
        ReleaseView {
            metrics,
            prometheus: r.prometheus.clone(),
            flag,
            environment,
            bucket_by: r.bucket_by().to_owned(),
            percent: r.percent(),
            next_at,
            observed,
            variation: r.plan.variation,
            state: r.state,
            stage: r.stage,
            stages: r.plan.stages,
            hold_seconds: r.plan.hold_seconds,
            guard: r.plan.guard,
            on_regression: r.plan.on_regression,
            reason: r.reason,
        }
    }
}

/// A person's move: `{"reason"}` (optional; recorded in the audit log).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// Why.
    pub reason: Option<String>,
}

/// Starts a release: the flag's fallthrough becomes a rollout of `variation` at the first
/// stage (the variation first in the weights, so the share only ever grows), bucketed by
/// `bucket_by` if given, else by the current fallthrough rollout's attribute (or `key`), with
/// its salt kept. 409 while another release of the flag in the environment is running or
/// paused, or when the flag is off or killed.
#[utoipa::path(post, operation_id = "start_release", path = "/api/v1/flags/{key}/environments/{env}/release", tag = "releases",
    request_body = ReleasePlan,
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 201, body = ReleaseView),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn start(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String)>,
    plan: Body<ReleasePlan>,
) -> Result<HttpResponse, ApiError> {
    let (flag, env) = path.into_inner();
    let actor = admin.0.name;
    let (f, e) = (flag.clone(), env.clone());
    let plan = plan.into_inner();
    if !plan.guard.prometheus.is_empty() && state.prometheus.is_none() {
        return Err(ApiError::invalid(
            "guard.prometheus",
            "this server has no Prometheus to ask: start it with --prometheus-url (FLAG_PROMETHEUS_URL)",
        ));
    }
    let now = state.scheduler.now();
    let release = state
        .store
        .write(move |ctx| releases::start(ctx, &actor, &f, &e, plan, now))
        .await?;
    state.scheduler.wake();
    state.outbox.wake();
    Ok(HttpResponse::Created().json(ReleaseView::new(flag, env, release)))
}

/// The release of the flag in the environment: stage, share, next move, observed error rates.
#[utoipa::path(get, operation_id = "get_release", path = "/api/v1/flags/{key}/environments/{env}/release", tag = "releases",
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key")),
    responses((status = 200, body = ReleaseView),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, description = "no release", body = Problem)))]
pub async fn status(
    state: web::Data<AppState>,
    _admin: AdminToken,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (flag, env) = path.into_inner();
    let (f, e) = (flag.clone(), env.clone());
    let release = state
        .store
        .read(move |conn| releases::get(conn, &f, &e))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flag `{flag}` has no release in `{env}`")))?;
    Ok(HttpResponse::Ok().json(ReleaseView::new(flag, env, release)))
}

/// A person's move: `pause`, `resume` (the stage's hold starts again), `advance` (next stage
/// now) or `abort` (fallthrough back to what it was). A kill pauses the release: `resume` and
/// `advance` answer 409 until the flag is restored; an abort while killed changes what
/// `restore` puts back and leaves the flag killed. 409 when the release's state forbids it.
#[utoipa::path(post, operation_id = "move_release", path = "/api/v1/flags/{key}/environments/{env}/release/{action}", tag = "releases",
    request_body = MoveBody,
    params(("key" = String, Path, description = "flag key"),
           ("env" = String, Path, description = "environment key"),
           ("action" = String, Path, description = "pause | resume | advance | abort")),
    responses((status = 200, body = ReleaseView),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
pub async fn act(
    state: web::Data<AppState>,
    admin: AdminToken,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (flag, env, action) = path.into_inner();
    let body: MoveBody = optional_json(&body)?;
    let reason = body
        .reason
        .unwrap_or_else(|| format!("{action} by {}", admin.0.name));
    let command = match action.as_str() {
        "pause" => Command::Pause(reason),
        "resume" => Command::Resume,
        "advance" => Command::Advance,
        "abort" => Command::Abort(reason),
        other => {
            return Err(ApiError::NotFound(format!(
                "no release action `{other}`; use pause, resume, advance or abort"
            )))
        }
    };
    let actor = admin.0.name;
    let (f, e) = (flag.clone(), env.clone());
    let now = state.scheduler.now();
    let release = state
        .store
        .write(move |ctx| releases::command(ctx, &actor, &f, &e, command, now))
        .await?;
    state.scheduler.wake();
    state.outbox.wake();
    Ok(HttpResponse::Ok().json(ReleaseView::new(flag, env, release)))
}
