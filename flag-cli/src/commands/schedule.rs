//! `flag schedule KEY --at TIME on|off|PERCENT` (or `--config FILE`), and `--list`,
//! `--cancel ID`, `--resume ID`: scheduled changes of a flag in the environment
//! (`/api/v1/flags/{key}/environments/{env}/schedules`).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use super::request;
use super::rmw::Percent;
use super::Ctx;
use crate::api::{config_path, What};
use crate::output::{emit, emit_json, table};

/// `flag schedule ...`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The flag key.
    pub key: String,
    /// What to do at `--at`: `on`, `off`, or a rollout percentage of the first variation
    /// (`25`, `12.5%`).
    pub change: Option<String>,
    /// When, RFC 3339: `2026-12-24T08:00Z`, `2026-12-24T09:00:00+01:00`.
    #[arg(long)]
    pub at: Option<String>,
    /// Instead of CHANGE: a whole configuration from this JSON file, applied only if the flag
    /// is still at the version it has now.
    #[arg(long, value_name = "FILE", conflicts_with = "change")]
    pub config: Option<PathBuf>,
    /// Why (in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// List the flag's schedules in the environment.
    #[arg(long, conflicts_with_all = ["change", "at", "config", "cancel", "resume"])]
    pub list: bool,
    /// Cancel a pending or paused schedule.
    #[arg(long, value_name = "ID", conflicts_with_all = ["change", "at", "config", "resume"])]
    pub cancel: Option<i64>,
    /// Resume a schedule a kill paused (after `flag restore`).
    #[arg(long, value_name = "ID", conflicts_with_all = ["change", "at", "config"])]
    pub resume: Option<i64>,
}

/// Runs `flag schedule ...`.
pub fn run(ctx: &Ctx, a: ScheduleArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let base = format!("{}/schedules", config_path(&a.key, &env));
    let what = What::Flag {
        key: &a.key,
        env: &env,
    };
    if a.list {
        let raw: Value = api.get(&base, what)?;
        if ctx.json {
            emit_json(&raw);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = raw
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let text = |k: &str| s[k].as_str().unwrap_or("-").to_owned();
                vec![
                    s["id"].to_string(),
                    text("at"),
                    s["change"].to_string(),
                    text("state"),
                    text("author"),
                    text("detail"),
                ]
            })
            .collect();
        emit(table(
            &["ID", "AT", "CHANGE", "STATE", "AUTHOR", "DETAIL"],
            &rows,
        ));
        return Ok(());
    }
    if let Some(id) = a.cancel {
        api.delete(&format!("{base}/{id}"), what)?;
        return done(
            ctx,
            json!({"cancelled": id}),
            format!("CANCELLED schedule {id}"),
        );
    }
    if let Some(id) = a.resume {
        let raw: Value = api.post(&format!("{base}/{id}/resume"), &json!({}), what)?;
        return done(ctx, raw, format!("RESUMED schedule {id}"));
    }
    let Some(at) = a.at else {
        bail!("say when with --at, e.g. --at 2026-12-24T08:00Z");
    };
    let change = match (a.change.as_deref(), &a.config) {
        (Some("on"), None) => json!({"enabled": true}),
        (Some("off"), None) => json!({"enabled": false}),
        (Some(text), None) => {
            let percent: Percent = text.parse().map_err(anyhow::Error::msg)?;
            json!({"percent": f64::from(percent.0) / 1000.0})
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let config: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            json!({"config": config})
        }
        _ => bail!("say what to do: `on`, `off`, a percentage, or --config FILE"),
    };
    let body = json!({"at": at, "change": change, "reason": a.reason});
    let raw: Value = api.post(&base, &body, what)?;
    let planned = format!("the schedule of {} in {env}", a.key);
    if request::held(ctx, &raw, &planned) {
        return Ok(());
    }
    let line = format!(
        "SCHEDULED {} {} in {env} at {} (schedule {})",
        a.key,
        raw["change"],
        raw["at"].as_str().unwrap_or("?"),
        raw["id"]
    );
    done(ctx, raw, line)
}

fn done(ctx: &Ctx, raw: Value, line: String) -> anyhow::Result<()> {
    if ctx.json {
        emit_json(&raw);
    } else {
        emit(line);
    }
    Ok(())
}
