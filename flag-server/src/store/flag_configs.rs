//! A flag's configuration per environment (contract section 2's flag object): replacing it with
//! `If-Match`, the kill switch and its restore point, and the rows a new flag or a new
//! environment starts with. Every change bumps the environment's revision, queues the
//! `flag.changed` webhook and emits the effect the stream publishes, in the same transaction.

use flag_sdk::validate::validate_flag_in;
use flag_sdk::{Flag, FlagKind, Serve, Variation};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::flags::no_flag;
use super::{json, to_json, webhooks, Effect, WriteCtx};
use crate::error::ApiError;

/// What a kill or restore did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KillOutcome {
    /// The configuration before the request.
    #[schema(value_type = Object)]
    pub before: Flag,
    /// The configuration after the request.
    #[schema(value_type = Object)]
    pub flag: Flag,
    /// `false` when the flag was already killed (a second kill changes nothing).
    pub changed: bool,
    /// SDK stream subscribers of the environment when the change was published.
    pub subscribers: usize,
}

/// Every live flag's configuration, by environment.
pub fn live_configs(conn: &Connection) -> anyhow::Result<Vec<(String, Flag)>> {
    let mut stmt = conn.prepare(
        "SELECT c.environment, c.config FROM flag_configs c JOIN flags f ON f.key = c.flag
         WHERE f.archived = 0",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (env, config) = row?;
        out.push((env, serde_json::from_str(&config)?));
    }
    Ok(out)
}

/// A new flag's configuration: disabled, off = the last variation, fallthrough = the first.
pub fn default_config(key: &str, kind: FlagKind, variations: Vec<Variation>) -> Flag {
    let first = variations
        .first()
        .map(|v| v.key.clone())
        .unwrap_or_default();
    let last = variations.last().map(|v| v.key.clone()).unwrap_or_default();
    Flag {
        key: key.to_owned(),
        kind,
        version: 1,
        variations,
        enabled: false,
        off_variation: last,
        prerequisites: Vec::new(),
        targets: Vec::new(),
        rules: Vec::new(),
        fallthrough: Serve::Variation(first),
    }
}

/// Inserts a configuration row (a new flag or a new environment).
pub(crate) fn insert_config(conn: &Connection, env: &str, config: &Flag) -> Result<(), ApiError> {
    conn.prepare_cached(
        "INSERT INTO flag_configs (flag, environment, version, config) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        config.key,
        env,
        config.version as i64,
        to_json(config)
    ])?;
    Ok(())
}

/// A configuration row, read inside the writer's transaction.
struct ConfigRow {
    version: u64,
    config: Flag,
    pre_kill: Option<Flag>,
}

fn config_row(ctx: &WriteCtx<'_>, key: &str, env: &str) -> Result<ConfigRow, ApiError> {
    ctx.snapshot(env)?;
    let row = ctx
        .conn
        .prepare_cached(
            "SELECT f.archived, c.version, c.config, c.pre_kill
             FROM flags f JOIN flag_configs c ON c.flag = f.key
             WHERE f.key = ?1 AND c.environment = ?2",
        )?
        .query_row(params![key, env], |r| {
            Ok((
                r.get::<_, bool>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .optional()?;
    let Some((archived, version, config, pre_kill)) = row else {
        return Err(no_flag(key));
    };
    if archived {
        return Err(ApiError::NotFound(format!("flag `{key}` is archived")));
    }
    Ok(ConfigRow {
        version: version as u64,
        config: json(&config)?,
        pre_kill: pre_kill.as_deref().map(json).transpose()?,
    })
}

fn write_config(
    ctx: &mut WriteCtx<'_>,
    env: &str,
    config: &Flag,
    pre_kill: Option<&Flag>,
) -> Result<(), ApiError> {
    ctx.conn
        .prepare_cached(
            "UPDATE flag_configs SET version = ?3, config = ?4, pre_kill = ?5
             WHERE flag = ?1 AND environment = ?2",
        )?
        .execute(params![
            config.key,
            env,
            config.version as i64,
            to_json(config),
            pre_kill.map(to_json)
        ])?;
    let revision = ctx.bump_revision(env)?;
    webhooks::enqueue(
        ctx,
        "flag.changed",
        &serde_json::json!({
            "flag": config.key, "environment": env, "version": config.version,
            "enabled": config.enabled, "revision": revision,
        }),
    )?;
    ctx.emit(Effect::Flag {
        environment: env.to_owned(),
        revision,
        flag: config.clone(),
    });
    Ok(())
}

/// Replaces a flag's configuration in one environment. `if_match` is compared with the
/// current version inside the transaction: a stale one gets 412. Clears a kill's restore point.
pub fn put_config(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    mut config: Flag,
    if_match: Option<u64>,
) -> Result<Flag, ApiError> {
    // The working snapshot holds every live flag at its committed (or earlier in this group)
    // version, so the hot path reads no row; an absent flag gets the precise 404 from the row.
    let (version, kind, before) = match ctx.snapshot(env)?.flags.get(&config.key) {
        Some(current) => (
            current.version,
            current.kind.clone(),
            serde_json::to_value(current).ok(),
        ),
        None => {
            config_row(ctx, &config.key, env)?;
            return Err(no_flag(&config.key));
        }
    };
    if let Some(expected) = if_match {
        if expected != version {
            return Err(ApiError::PreconditionFailed(format!(
                "flag `{}` in `{env}` is at version {version}, not {expected}",
                config.key
            )));
        }
    }
    if config.kind != kind {
        return Err(ApiError::invalid(
            "kind",
            format!("the flag's kind is `{}`", kind.as_str()),
        ));
    }
    config.version = version + 1;
    validate_flag_in(&config, ctx.snapshot(env)?)?;
    write_config(ctx, env, &config, None)?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "flag.config.update",
            flag: Some(&config.key),
            environment: Some(env),
            before,
            after: serde_json::to_value(&config).ok(),
            ..NewAudit::default()
        },
    )?;
    Ok(config)
}

/// The kill switch: `enabled = false`, everything else kept; the configuration before is kept
/// for `restore`. A second kill changes nothing.
pub fn kill(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &str,
    env: &str,
    reason: &str,
) -> Result<KillOutcome, ApiError> {
    let row = config_row(ctx, key, env)?;
    if row.pre_kill.is_some() {
        return Ok(KillOutcome {
            before: row.config.clone(),
            flag: row.config,
            changed: false,
            subscribers: 0,
        });
    }
    let mut after = row.config.clone();
    after.enabled = false;
    after.version = row.version + 1;
    write_config(ctx, env, &after, Some(&row.config))?;
    audited(
        ctx,
        actor,
        "flag.kill",
        env,
        row.config,
        after,
        Some(reason),
    )
}

/// Puts back exactly the configuration from before the kill (with a new version).
/// 409 when the flag is not killed.
pub fn restore(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &str,
    env: &str,
    reason: Option<&str>,
) -> Result<KillOutcome, ApiError> {
    let row = config_row(ctx, key, env)?;
    let Some(mut after) = row.pre_kill else {
        return Err(ApiError::Conflict(format!(
            "flag `{key}` is not killed in `{env}`; nothing to restore"
        )));
    };
    after.version = row.version + 1;
    validate_flag_in(&after, ctx.snapshot(env)?)?;
    write_config(ctx, env, &after, None)?;
    audited(ctx, actor, "flag.restore", env, row.config, after, reason)
}

/// Records a kill or restore that changed `before` into `after` in the audit log.
fn audited(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    action: &str,
    env: &str,
    before: Flag,
    after: Flag,
    reason: Option<&str>,
) -> Result<KillOutcome, ApiError> {
    audit::record(
        ctx,
        NewAudit {
            actor,
            action,
            flag: Some(&after.key),
            environment: Some(env),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
            reason,
            ..NewAudit::default()
        },
    )?;
    Ok(KillOutcome {
        before,
        flag: after,
        changed: true,
        subscribers: 0,
    })
}
