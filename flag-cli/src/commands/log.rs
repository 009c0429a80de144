//! `flag log [KEY]`: the audit log, newest first, each entry with what it changed (the
//! before and after of its row, path by path).

use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use super::Ctx;
use crate::api::What;
use crate::diff;
use crate::output::{emit, emit_json, table};

/// `flag log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only changes of this flag.
    pub key: Option<String>,
    /// How many entries (1 to 500).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: u32,
    /// Only changes in the environment given by --env (or the profile).
    #[arg(long)]
    pub this_env: bool,
    /// One line per entry, without what changed.
    #[arg(long)]
    pub brief: bool,
}

#[derive(Debug, Deserialize)]
struct Entry {
    at: String,
    actor: String,
    action: String,
    #[serde(default)]
    flag: Option<String>,
    #[serde(default)]
    segment: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    before: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

impl Entry {
    /// What the entry changed, one line per path (nothing for a creation or a deletion,
    /// whose whole object is the change).
    fn changes(&self) -> Vec<String> {
        let (Some(before), Some(after)) = (&self.before, &self.after) else {
            return Vec::new();
        };
        diff::changes(before, after, &["version", "updated_at"])
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Runs `flag log`.
pub fn run(ctx: &Ctx, a: LogArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let mut query = vec![("limit", a.limit.to_string())];
    if let Some(k) = &a.key {
        query.push(("flag", k.clone()));
    }
    if a.this_env {
        query.push(("environment", env.clone()));
    }
    let raw: Value = api.get_query("/api/v1/audit", &query, What::Other)?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let entries: Vec<Entry> =
        serde_json::from_value(raw.get("entries").cloned().unwrap_or(Value::Array(vec![])))?;
    if entries.is_empty() {
        emit("no audit entries");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.actor.clone(),
                e.action.clone(),
                e.flag
                    .clone()
                    .or_else(|| e.segment.clone())
                    .unwrap_or_else(|| "-".into()),
                e.environment.clone().unwrap_or_else(|| "-".into()),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let text = table(&["WHEN", "WHO", "ACTION", "WHAT", "ENV", "REASON"], &rows);
    let mut lines = text.lines();
    emit(lines.next().unwrap_or_default());
    for (line, entry) in lines.zip(&entries) {
        emit(line);
        if !a.brief {
            for change in entry.changes() {
                emit(format!("    {change}"));
            }
        }
    }
    Ok(())
}
