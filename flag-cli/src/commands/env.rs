//! `flag env list|create`.

use clap::Subcommand;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::What;
use crate::output::{emit, emit_json, table};

/// `flag env ...`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List environments and their revisions.
    #[command(after_help = "Example:\n  flag env list")]
    List,
    /// Create an environment (every flag appears in it, disabled).
    #[command(after_help = "Example:\n  flag env create staging")]
    Create {
        /// The environment key.
        key: String,
    },
}

#[derive(Debug, Deserialize)]
struct Environment {
    key: String,
    revision: u64,
    #[serde(default)]
    created_at: String,
}

/// Runs `flag env ...`.
pub fn run(ctx: &Ctx, c: EnvCommand) -> anyhow::Result<()> {
    let (api, _) = ctx.api()?;
    match c {
        EnvCommand::List => {
            let raw: Value = api.get("/api/v1/environments", What::Other)?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            let envs: Vec<Environment> = serde_json::from_value(raw)?;
            let rows: Vec<Vec<String>> = envs
                .into_iter()
                .map(|e| vec![e.key, e.revision.to_string(), e.created_at])
                .collect();
            emit(table(&["KEY", "REVISION", "CREATED"], &rows));
        }
        EnvCommand::Create { key } => {
            let raw: Value = api.post(
                "/api/v1/environments",
                &json!({ "key": key }),
                What::Environment(&key),
            )?;
            if ctx.json {
                emit_json(&raw);
            } else {
                emit(format!("CREATED environment {key}"));
            }
        }
    }
    Ok(())
}
