//! `flag diff KEY --env A --env B` (one flag's configuration in two environments, path by
//! path) and `flag copy KEY --from A --to B` (a normal write of B with `If-Match`, audited).

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::rmw::{self, Remote};
use super::Ctx;
use crate::diff;
use crate::error::CliError;
use crate::output::{emit, emit_json};

/// `flag diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The flag key.
    pub key: String,
}

/// `flag copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The flag key.
    pub key: String,
    /// The environment copied from.
    #[arg(long)]
    pub from: String,
    /// The environment written.
    #[arg(long)]
    pub to: String,
    /// Why (written to the audit log) [default: "copied from FROM"].
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// Runs `flag diff KEY --env A --env B`.
pub fn diff(ctx: &Ctx, a: DiffArgs, envs: &[String]) -> anyhow::Result<()> {
    let [left, right] = envs else {
        bail!(CliError::Usage(format!(
            "`flag diff` compares two environments: --env A --env B (given: {})",
            envs.len()
        )));
    };
    let (api, _) = ctx.api()?;
    let a_flag = serde_json::to_value(api.flag_config(&a.key, left)?.flag)?;
    let b_flag = serde_json::to_value(api.flag_config(&a.key, right)?.flag)?;
    let changes = diff::changes(&a_flag, &b_flag, &["version"]);
    if ctx.json {
        let lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
        emit_json(
            &json!({ "key": a.key, "from": left, "to": right, "changes": lines,
            "same": changes.is_empty() }),
        );
        return Ok(());
    }
    if changes.is_empty() {
        emit(format!(
            "{} is configured the same in {left} and {right}",
            a.key
        ));
        return Ok(());
    }
    emit(format!("{} from {left} to {right}:", a.key));
    for change in changes {
        emit(format!("  {change}"));
    }
    Ok(())
}

/// Runs `flag copy KEY --from A --to B`.
pub fn copy(ctx: &Ctx, a: CopyArgs) -> anyhow::Result<()> {
    if a.from == a.to {
        bail!(CliError::Usage("--from and --to are the same".into()));
    }
    let (api, _) = ctx.api()?;
    let source = api.flag_config(&a.key, &a.from)?.flag;
    let reason = a
        .reason
        .clone()
        .unwrap_or_else(|| format!("copied from {}", a.from));
    let store = Remote {
        api: &api,
        key: &a.key,
        env: &a.to,
        reason: Some(&reason),
    };
    let c = rmw::read_modify_write(&store, &|f| {
        let version = f.version;
        *f = source.clone();
        f.version = version;
        Ok(())
    })?;
    if ctx.json {
        emit_json(&json!({ "before": c.before, "flag": c.after, "changed": c.written }));
        return Ok(());
    }
    if !c.written {
        emit(format!(
            "{} in {} is already as in {}; nothing changed",
            a.key, a.to, a.from
        ));
        return Ok(());
    }
    emit(format!(
        "COPIED {} from {} to {} (version {} -> {})",
        a.key, a.from, a.to, c.before.version, c.after.version
    ));
    let before = serde_json::to_value(&c.before)?;
    let after = serde_json::to_value(&c.after)?;
    for change in diff::changes(&before, &after, &["version"]) {
        emit(format!("  {change}"));
    }
    Ok(())
}
