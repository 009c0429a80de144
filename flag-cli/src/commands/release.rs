//! `flag release start|status|pause|resume|advance|abort` (contract section 7): thin calls of
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
        after_help = "Examples:\n  flag release start new-checkout --stages 1,5,25,50,100 --hold 30m --max-error-increase 2%\n  flag release start billing --bucket-by org\n  flag release start new-checkout --guard-metric checkout_latency_ms:p95:20%\n  flag release start new-checkout --guard-prometheus '+0.1:histogram_quantile(0.95, sum by (le) (rate(checkout_seconds_bucket{variation=\"{{variation}}\"}[5m])))'\n\nThe stages keep the bucket_by and salt of the flag's current fallthrough rollout (or\n`key`), so contexts stay in their buckets; --bucket-by names the attribute explicitly.\nA kill pauses the release; after `flag restore`, `flag release resume` carries on."
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
        /// How long each stage is held: `90s`, `30m`, `2h`, or seconds.
        #[arg(long, default_value = "10m", value_parser = parse_duration_secs)]
        hold: u64,
        /// The largest accepted error-rate increase: `2%` or `0.02` (2 points).
        #[arg(long, default_value = "2%", value_parser = parse_fraction)]
        max_error_increase: f64,
        /// Evaluations each side needs before the guard judges.
        #[arg(long, default_value_t = 200)]
        min_evaluations: u64,
        /// Also guard a metric the SDKs track (`track_value`): `METRIC:p95|mean:MARGIN`, the
        /// margin relative (`20%`, `0.2`) or absolute (`+100`, in the metric's unit). Repeatable.
        #[arg(long, value_name = "METRIC:STAT:MARGIN", value_parser = parse_metric_guard)]
        guard_metric: Vec<Value>,
        /// Also guard a Prometheus query evaluated per variation (`{{variation}}` in it):
        /// `MARGIN:QUERY`, the margin as for --guard-metric. Needs the server's --prometheus-url.
        #[arg(long, value_name = "MARGIN:QUERY", value_parser = parse_prometheus_guard)]
        guard_prometheus: Vec<Value>,
        /// What a regression does.
        #[arg(long, default_value = "rollback", value_parser = ["rollback", "kill", "pause"])]
        on_regression: String,
        /// The context attribute the stages bucket by [default: the current rollout's, or `key`].
        #[arg(long, value_name = "ATTR")]
        bucket_by: Option<String>,
    },
    /// Show a release's state, stage and observed error rates.
    #[command(
        after_help = "Examples:\n  flag release status new-checkout\n  flag release status new-checkout --watch"
    )]
    Status {
        /// The flag key.
        key: String,
        /// Refresh every 2 s until the release stops running (Ctrl-C to leave).
        #[arg(long)]
        watch: bool,
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
            hold,
            max_error_increase,
            min_evaluations,
            guard_metric,
            guard_prometheus,
            on_regression,
            bucket_by,
        } => {
            let mut body = json!({
                "variation": variation, "stages": stages, "hold_seconds": hold,
                "guard": { "max_error_rate_increase": max_error_increase,
                           "min_evaluations": min_evaluations },
                "on_regression": on_regression,
            });
            if !guard_metric.is_empty() {
                body["guard"]["metrics"] = json!(guard_metric);
            }
            if !guard_prometheus.is_empty() {
                body["guard"]["prometheus"] = json!(guard_prometheus);
            }
            if let Some(attribute) = bucket_by {
                body["bucket_by"] = json!(attribute);
            }
            (
                key,
                api.post::<_, Value>(&base(key), &body, What::Release(key)),
            )
        }
        ReleaseCommand::Status { key, watch: true } => loop {
            let raw = api
                .get::<Value>(&base(key), What::Release(key))
                .with_context(|| format!("release of `{key}` in {env}"))?;
            show(ctx, key, &env, &raw);
            let active = matches!(raw["state"].as_str(), Some("running" | "paused"));
            if !active {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        },
        ReleaseCommand::Status { key, .. } => {
            (key, api.get::<Value>(&base(key), What::Release(key)))
        }
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
    show(ctx, key, &env, &raw);
    Ok(())
}

/// Prints a release: JSON with `--json`, else a short summary with each variation's figures.
fn show(ctx: &Ctx, key: &str, env: &str, raw: &Value) {
    if ctx.json {
        emit_json(raw);
        return;
    }
    let field = |k: &str| match raw.get(k) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    emit(format!(
        "release of {key} ({}) in {env}: {} at {}% (stages {}, by {}), next step {}",
        field("variation"),
        field("state").to_uppercase(),
        field("percent"),
        field("stages"),
        field("bucket_by"),
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
}

/// `90s`, `30m`, `2h`, `1d` or plain seconds, as seconds.
pub(crate) fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30m"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: use s, m, h or d, e.g. 30m")),
    };
    n.checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

/// `2%` or `0.02`, as a fraction.
fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = share(text).ok_or_else(|| format!("`{text}` is not a share like 2% or 0.02"))?;
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("`{text}` must be between 0% and 100%"))
    }
}

/// `2%` or `0.02` as a fraction.
fn share(text: &str) -> Option<f64> {
    match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => text.parse::<f64>().ok(),
    }
}

/// A guard's margin: `+100` is absolute (`max_increase_abs`), `20%` or `0.2` relative.
fn parse_margin(text: &str) -> Result<(&'static str, f64), String> {
    let text = text.trim();
    match text.strip_prefix('+') {
        Some(abs) => abs
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| ("max_increase_abs", v))
            .ok_or_else(|| format!("`{text}` is not an absolute margin like +100")),
        None => share(text)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| ("max_increase", v))
            .ok_or_else(|| format!("`{text}` is not a margin like 20%, 0.2 or +100")),
    }
}

/// `METRIC:p95|mean:MARGIN` as a `guard.metrics` entry (the server checks it further).
fn parse_metric_guard(text: &str) -> Result<Value, String> {
    let mut parts = text.rsplitn(3, ':');
    let (Some(margin), Some(statistic), Some(metric)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("`{text}` is not METRIC:p95|mean:MARGIN"));
    };
    let (field, value) = parse_margin(margin)?;
    Ok(json!({ "metric": metric, "statistic": statistic, field: value }))
}

/// `MARGIN:QUERY` as a `guard.prometheus` entry.
fn parse_prometheus_guard(text: &str) -> Result<Value, String> {
    let (margin, query) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not MARGIN:QUERY"))?;
    let (field, value) = parse_margin(margin)?;
    Ok(json!({ "query": query, field: value }))
}

/// A 404 for the route itself (not for a flag or release): the server has no releases.
fn is_missing_route(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status: 404, detail, .. } if detail.starts_with("no route"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_fractions_read_as_people_write_them() {
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("2h"), Ok(7200));
        assert_eq!(parse_duration_secs("600"), Ok(600));
        assert!(parse_duration_secs("0m").is_err());
        assert!(parse_duration_secs("5 weeks").is_err());
        assert_eq!(parse_fraction("2%"), Ok(0.02));
        assert_eq!(parse_fraction("0.05"), Ok(0.05));
        assert!(parse_fraction("150%").is_err());
        assert!(parse_fraction("lots").is_err());
    }

    #[test]
    fn guards_read_as_metric_statistic_and_margin() {
        assert_eq!(
            parse_metric_guard("checkout_latency_ms:p95:20%"),
            Ok(json!({"metric": "checkout_latency_ms", "statistic": "p95", "max_increase": 0.2}))
        );
        assert_eq!(
            parse_metric_guard("db:calls:mean:+100"),
            Ok(json!({"metric": "db:calls", "statistic": "mean", "max_increase_abs": 100.0}))
        );
        assert!(parse_metric_guard("latency:p95").is_err());
        assert!(parse_metric_guard("latency:p95:fast").is_err());
        assert_eq!(
            parse_prometheus_guard("+0.1:rate(x{v=\"{{variation}}\"}[1m])"),
            Ok(json!({"query": "rate(x{v=\"{{variation}}\"}[1m])", "max_increase_abs": 0.1}))
        );
    }
}
