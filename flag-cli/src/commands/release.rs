//! `flag release start|status|pause|resume|advance|abort` (SPEC section 7): thin calls of
//! `/api/v1/flags/{key}/environments/{env}/release[/...]`. A server without releases answers
//! 404, reported as "not available on this server".

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::{config_path, ApiError, What};
use crate::output::{emit, emit_json};

/// `flag release ...`.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Start a staged release of a variation.
    #[command(
        after_help = "Example:\n  flag release start new-checkout --variation on --stages 1,5,25,50,100 --hold-seconds 600"
    )]
    Start {
        /// The flag key.
        key: String,
        /// The variation released.
        #[arg(long, default_value = "on")]
        variation: String,
        /// Percent per stage, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,5,25,50,100")]
        stages: Vec<f64>,
        /// Seconds each stage is held.
        #[arg(long, default_value_t = 600)]
        hold_seconds: u64,
        /// Roll back when the error rate rises more than this (0.02 = 2 points).
        #[arg(long, default_value_t = 0.02)]
        max_error_rate_increase: f64,
        /// Evaluations needed before the guard judges.
        #[arg(long, default_value_t = 200)]
        min_evaluations: u64,
        /// rollback, kill or pause.
        #[arg(long, default_value = "rollback", value_parser = ["rollback", "kill", "pause"])]
        on_regression: String,
    },
    /// Show a release's state, stage and observed error rates.
    Status {
        /// The flag key.
        key: String,
    },
    /// Hold the current stage.
    Pause {
        /// The flag key.
        key: String,
    },
    /// Continue a paused release.
    Resume {
        /// The flag key.
        key: String,
    },
    /// Go to the next stage now.
    Advance {
        /// The flag key.
        key: String,
    },
    /// Stop the release and roll it back.
    Abort {
        /// The flag key.
        key: String,
    },
}

/// Runs `flag release ...`.
pub fn run(ctx: &Ctx, c: ReleaseCommand) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let base = |key: &str| format!("{}/release", config_path(key, &env));
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
                "guard": { "max_error_rate_increase": max_error_rate_increase, "min_evaluations": min_evaluations },
                "on_regression": on_regression,
            });
            (
                key,
                api.post::<_, Value>(&base(key), &body, What::Release(key)),
            )
        }
        ReleaseCommand::Status { key } => (key, api.get::<Value>(&base(key), What::Release(key))),
        ReleaseCommand::Pause { key } => (
            key,
            api.post::<_, Value>(
                &format!("{}/pause", base(key)),
                &json!({}),
                What::Release(key),
            ),
        ),
        ReleaseCommand::Resume { key } => (
            key,
            api.post::<_, Value>(
                &format!("{}/resume", base(key)),
                &json!({}),
                What::Release(key),
            ),
        ),
        ReleaseCommand::Advance { key } => (
            key,
            api.post::<_, Value>(
                &format!("{}/advance", base(key)),
                &json!({}),
                What::Release(key),
            ),
        ),
        ReleaseCommand::Abort { key } => (
            key,
            api.post::<_, Value>(
                &format!("{}/abort", base(key)),
                &json!({}),
                What::Release(key),
            ),
        ),
    };
    let raw = match result {
        Err(e @ ApiError::Status { status: 404, .. }) if is_missing_route(&e) => {
            return Err(e).context("releases are not available on this server");
        }
        other => other.with_context(|| format!("release of `{key}` in {env}"))?,
    };
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let field = |k: &str| {
        raw.get(k)
            .map(|v| v.to_string().trim_matches('"').to_owned())
            .unwrap_or_else(|| "-".into())
    };
    emit(format!(
        "release of {key} in {env}: {} (stage {}, {}%, next at {})",
        field("state"),
        field("stage"),
        field("percent"),
        field("next_at")
    ));
    if let Some(obs) = raw.get("observed").and_then(Value::as_object) {
        for (variation, o) in obs {
            emit(format!("  {variation}: {o}"));
        }
    }
    Ok(())
}

fn is_missing_route(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { detail, .. } if detail.starts_with("no route"))
}
