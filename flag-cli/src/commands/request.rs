//! `flag request list|show|approve|reject|withdraw`: change requests, which an environment
//! that requires approval makes of every write. Also how a write command says it was held
//! (a `202` with the request's id).

use clap::Subcommand;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::{Held, What};
use crate::output::{emit, emit_json, table};

/// `flag request ...`.
#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// List change requests, newest first (pending ones of the environment by default).
    #[command(
        after_help = "Examples:\n  flag request list\n  flag request list --state applied --all-envs --json"
    )]
    List {
        /// `pending`, `applied`, `stale`, `rejected`, `withdrawn`, or `all`.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Every environment, not only --env.
        #[arg(long)]
        all_envs: bool,
    },
    /// Show one request: what it changes (the diff), who asked, who approved.
    #[command(after_help = "Example:\n  flag request show 7")]
    Show {
        /// The request id.
        id: i64,
    },
    /// Approve someone else's request; with enough approvals it is applied.
    #[command(after_help = "Example:\n  flag request approve 7")]
    Approve {
        /// The request id.
        id: i64,
    },
    /// Reject someone else's request.
    #[command(
        after_help = "Example:\n  flag request reject 7 --reason \"not before the freeze ends\""
    )]
    Reject {
        /// The request id.
        id: i64,
        /// Why (in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Withdraw your own request.
    #[command(after_help = "Example:\n  flag request withdraw 7")]
    Withdraw {
        /// The request id.
        id: i64,
    },
}

/// Runs `flag request ...`.
pub fn run(ctx: &Ctx, c: RequestCommand) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    match c {
        RequestCommand::List { state, all_envs } => {
            let mut query = Vec::new();
            if state != "all" {
                query.push(("state", state));
            }
            if !all_envs {
                query.push(("environment", env));
            }
            let raw: Value = api.get_query("/api/v1/change-requests", &query, What::Other)?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = raw
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let text = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
                    let approvals = r["approvals"].as_array().map_or(0, Vec::len);
                    vec![
                        r["id"].to_string(),
                        text("state"),
                        text("environment"),
                        target(r),
                        text("kind"),
                        text("author"),
                        format!("{approvals}/{}", r["required_approvals"]),
                        text("reason"),
                    ]
                })
                .collect();
            let headers = [
                "ID",
                "STATE",
                "ENV",
                "TARGET",
                "KIND",
                "AUTHOR",
                "APPROVALS",
                "REASON",
            ];
            emit(table(&headers, &rows));
        }
        RequestCommand::Show { id } => {
            let raw: Value = api.get(&path(id, ""), What::Other)?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            show(&raw);
        }
        RequestCommand::Approve { id } => decide(ctx, &api, id, "approve", json!({}))?,
        RequestCommand::Reject { id, reason } => {
            decide(ctx, &api, id, "reject", json!({ "reason": reason }))?
        }
        RequestCommand::Withdraw { id } => decide(ctx, &api, id, "withdraw", json!({}))?,
    }
    Ok(())
}

/// What a request changes: the flag's key, or `segment KEY`.
fn target(raw: &Value) -> String {
    match (raw["flag"].as_str(), raw["segment"].as_str()) {
        (Some(flag), _) => flag.to_owned(),
        (None, Some(segment)) => format!("segment {segment}"),
        (None, None) => "-".to_owned(),
    }
}

fn path(id: i64, action: &str) -> String {
    match action {
        "" => format!("/api/v1/change-requests/{id}"),
        action => format!("/api/v1/change-requests/{id}/{action}"),
    }
}

fn decide(
    ctx: &Ctx,
    api: &crate::api::Api,
    id: i64,
    action: &str,
    body: Value,
) -> anyhow::Result<()> {
    let raw: Value = api.post(&path(id, action), &body, What::Other)?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let state = raw["state"].as_str().unwrap_or("?").to_uppercase();
    emit(format!(
        "{state} change request {id}: {} of {} in {}",
        raw["kind"].as_str().unwrap_or("?"),
        target(&raw),
        raw["environment"].as_str().unwrap_or("?")
    ));
    if let Some(detail) = raw["detail"].as_str() {
        emit(format!("  {detail}"));
    }
    Ok(())
}

/// A request as a person reads it: header lines, then the diff one field per line.
fn show(raw: &Value) {
    let text = |k: &str| raw[k].as_str().unwrap_or("-").to_owned();
    emit(format!(
        "change request {} ({}): {} of {} in {}",
        raw["id"],
        text("state"),
        text("kind"),
        target(raw),
        text("environment")
    ));
    emit(format!(
        "  author:    {} at {}",
        text("author"),
        text("created_at")
    ));
    emit(format!("  reason:    {}", text("reason")));
    emit(format!("  base:      version {}", raw["base_version"]));
    let by: Vec<String> = raw["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["by"].as_str().map(str::to_owned))
        .collect();
    emit(format!(
        "  approvals: {} of {}{}",
        by.len(),
        raw["required_approvals"],
        if by.is_empty() {
            String::new()
        } else {
            format!(" ({})", by.join(", "))
        }
    ));
    if let Some(detail) = raw["detail"].as_str() {
        emit(format!("  detail:    {detail}"));
    }
    let diff = raw["diff"].as_array().cloned().unwrap_or_default();
    if diff.is_empty() {
        emit(format!("  proposed:  {}", raw["proposed"]));
    } else {
        emit("  diff:");
        for d in diff {
            let side = |v: &Value| {
                if v.is_null() {
                    "(none)".to_owned()
                } else {
                    v.to_string()
                }
            };
            emit(format!(
                "    {}: {} -> {}",
                d["path"].as_str().unwrap_or("?"),
                side(&d["before"]),
                side(&d["after"])
            ));
        }
    }
}

/// When `raw` is a change request (the write was held, `202`), says so and returns `true`.
pub fn held(ctx: &Ctx, raw: &Value, what: &str) -> bool {
    match Held::in_answer(raw) {
        Some(held) => {
            announce(ctx, raw, &held, what);
            true
        }
        None => false,
    }
}

/// Prints that `what` waits for approval in change request `held`.
pub fn announce(ctx: &Ctx, raw: &Value, held: &Held, what: &str) {
    if ctx.json {
        emit_json(raw);
        return;
    }
    emit(format!(
        "PENDING change request {}: {what} waits for approval",
        held.id
    ));
    emit(format!(
        "  see it:    flag request show {}\n  approve:   flag request approve {} (someone else)",
        held.id, held.id
    ));
}
