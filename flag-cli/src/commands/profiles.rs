//! `flag profiles`: the config file's profiles (tokens are never printed).

use serde_json::json;

use super::Ctx;
use crate::output::{emit, emit_json, table};

/// Runs `flag profiles`.
pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let (path, file) = ctx.config_file()?;
    let path = path
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "-".into());
    if ctx.json {
        let profiles: serde_json::Map<String, serde_json::Value> = file
            .profiles
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    json!({ "server": p.server, "env": p.env, "token": p.token.is_some() }),
                )
            })
            .collect();
        emit_json(
            &json!({ "config": path, "default_profile": file.default_profile, "profiles": profiles }),
        );
        return Ok(());
    }
    if file.profiles.is_empty() {
        emit(format!("no profiles in {path}"));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = file
        .profiles
        .iter()
        .map(|(name, p)| {
            let default = if file.default_profile.as_deref() == Some(name) {
                "*"
            } else {
                ""
            };
            vec![
                format!("{name}{default}"),
                p.server.clone().unwrap_or_else(|| "-".into()),
                p.env.clone().unwrap_or_else(|| "-".into()),
                if p.token.is_some() { "set" } else { "-" }.to_owned(),
            ]
        })
        .collect();
    emit(format!("{path} (* = default)"));
    emit(table(&["PROFILE", "SERVER", "ENV", "TOKEN"], &rows));
    Ok(())
}
