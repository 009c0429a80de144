//! `flag release start|status|pause|resume|advance|abort` (SPEC section 7): thin calls of
//! `/api/v1/flags/{key}/environments/{env}/release[/{action}]`. A server without releases
//! answers 404 for the route, reported as "releases are not available on this server".

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::Ctx;
use crate::api::{config_path, ApiError, What};
use crate::output::{emit, emit_json};

/// `flag release ...`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Start a staged release of a variation (the flag must be on).
    #[command(
        after_help = "Example:\n  flag release start new-checkout --variation on --stages 1,5,25,50,100 --hold-seconds 600"
    )]
    Start {
        /// The flag key.
        key: String,
        /// The variation released.
        #[arg(long, default_value = "on")]
        variation: String,
        /// Percent per stage, ascending, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,5,25,50,100")]
        stages: Vec<u32>,
        /// Seconds each stage is held.
        #[arg(long, default_value_t = 600)]
        hold_seconds: u64,
        /// Regression threshold: the largest accepted error-rate increase (0.02 = 2 points).
        #[arg(long, default_value_t = 0.02)]
        max_error_rate_increase: f64,
        /// Evaluations each side needs before the guard judges.
        #[arg(long, default_value_t = 200)]
        min_evaluations: u64,
        /// What a regression does.
        #[arg(long, default_value = "rollback", value_parser = ["rollback", "kill", "pause"])]
        on_regression: String,
    },
    /// Show a release's state, stage and observed error rates.
    #[command(after_help = "Example:\n  flag release status new-checkout --json")]
    Status {
        /// The flag key.
        key: String,
    },
    /// Hold the current stage.
    Pause(Move),
    /// Continue a paused release.
    Resume(Move),
    /// Go to the next stage now.
    Advance(Move),
    /// Stop the release and put back the configuration from before it.
    Abort(Move),
}

/// A person's move on a release.
#[derive(Debug, Args)]
pub struct Move {
    /// The flag key.
    pub key: String,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// Runs `flag release ...`.
pub fn run(ctx: &Ctx, c: ReleaseCommand) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let base = |key: &str| format!("{}/release", config_path(key, &env));
    let act = |action: &str, m: &Move| {
        let path = format!("{}/{action}", base(&m.key));
        api.post::<_, Value>(&path, &json!({ "reason": m.reason }), What::Release(&m.key))
    };
    let (key, result) = match &c {
        ReleaseCommand::Start {
            key,
            variation,
            stages,
            hold_seconds,
            max_error_rate_increase,
            min_evaluations,
            on_regression,
        } => {
            let body = json!({
                "variation": variation, "stages": stages, "hold_seconds": hold_seconds,
                "guard": { "max_error_rate_increase": max_error_rate_increase,
                           "min_evaluations": min_evaluations },
                "on_regression": on_regression,
            });
            (
                key,
                api.post::<_, Value>(&base(key), &body, What::Release(key)),
            )
        }
        ReleaseCommand::Status { key } => (key, api.get::<Value>(&base(key), What::Release(key))),
        ReleaseCommand::Pause(m) => (&m.key, act("pause", m)),
        ReleaseCommand::Resume(m) => (&m.key, act("resume", m)),
        ReleaseCommand::Advance(m) => (&m.key, act("advance", m)),
        ReleaseCommand::Abort(m) => (&m.key, act("abort", m)),
    };
    let raw = match result {
        Err(e) if is_missing_route(&e) => {
            return Err(e).context("releases are not available on this server");
        }
        other => other.with_context(|| format!("release of `{key}` in {env}"))?,
    };
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let field = |k: &str| match raw.get(k) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    emit(format!(
        "release of {key} ({}) in {env}: {} at {}% (stages {}), next step {}",
        field("variation"),
        field("state").to_uppercase(),
        field("percent"),
        field("stages"),
        field("next_at"),
    ));
    if raw.get("reason").is_some_and(|r| !r.is_null()) {
        emit(format!("  reason: {}", field("reason")));
    }
    if let Some(obs) = raw.get("observed").and_then(Value::as_object) {
        for (variation, o) in obs {
            emit(format!(
                "  {variation}: {} evaluations, {} errors ({})",
                o["evaluations"], o["errors"], o["error_rate"]
            ));
        }
    }
    Ok(())
}

/// A 404 for the route itself (not for a flag or release): the server has no releases.
fn is_missing_route(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status: 404, detail, .. } if detail.starts_with("no route"))
}
