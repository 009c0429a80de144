//! `flag status`: is the server alive and ready, the environment's revision, the number of
//! flags on, and how many SDK streams listen.

use serde::Deserialize;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::What;
use crate::output::{emit, emit_json};

#[derive(Debug, Deserialize)]
struct Environment {
    key: String,
    revision: u64,
}

#[derive(Debug, Deserialize)]
struct FlagMeta {
    #[serde(default)]
    environments: std::collections::BTreeMap<String, State>,
}

#[derive(Debug, Deserialize)]
struct State {
    enabled: bool,
}

/// Runs `flag status`.
pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let target = ctx.target()?;
    let (api, env) = ctx.api()?;
    let health = api.probe("/healthz")?;
    let ready = api.probe("/readyz")?;
    let envs: Vec<Environment> = api.get("/api/v1/environments", What::Other)?;
    let revision = envs.iter().find(|e| e.key == env).map(|e| e.revision);
    let subscribers: Value = api.get(
        &format!("/api/v1/environments/{env}/subscribers"),
        What::Environment(&env),
    )?;
    let subscribers = subscribers
        .get("subscribers")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let flags: Vec<FlagMeta> = api.get("/api/v1/flags", What::Other)?;
    let on = flags
        .iter()
        .filter(|f| f.environments.get(&env).is_some_and(|s| s.enabled))
        .count();
    let summary = json!({
        "server": api.base(),
        "profile": target.profile,
        "healthy": health.is_success(),
        "ready": ready.is_success(),
        "environment": env,
        "revision": revision,
        "flags": flags.len(),
        "flags_on": on,
        "sdk_connections": subscribers,
    });
    if ctx.json {
        emit_json(&summary);
    } else {
        let profile = target
            .profile
            .map(|p| format!(" (profile {p})"))
            .unwrap_or_default();
        emit(format!("server:       {}{profile}", api.base()));
        emit(format!(
            "health:       {}, {}",
            if health.is_success() {
                "alive"
            } else {
                "NOT alive"
            },
            if ready.is_success() {
                "ready"
            } else {
                "NOT ready"
            }
        ));
        emit(format!(
            "environment:  {env}, revision {}",
            revision.map_or("?".into(), |r| r.to_string())
        ));
        emit(format!("flags:        {} ({on} on)", flags.len()));
        emit(format!("SDK streams:  {subscribers} connected"));
    }
    Ok(())
}
