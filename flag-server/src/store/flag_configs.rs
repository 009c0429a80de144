//! A flag's configuration per environment (contract section 2's flag object): replacing it with
//! `If-Match`, the kill switch and its restore point, and the rows a new flag or a new
//! environment starts with. Every change bumps the environment's revision, queues the
//! `flag.changed` webhook and emits the effect the stream publishes, in the same transaction.

use flag_sdk::validate::validate_flag_in;
use flag_sdk::{Change, Flag, FlagKind, Serve, Variation};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::flags::no_flag;
use super::sql::{params, Conn};
use super::{json, releases, schedules, to_json, webhooks, Effect, WriteCtx};
use crate::error::ApiError;
use crate::release::plan::ReleaseState;

/// What a kill or restore did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KillOutcome {
    /// The configuration before the request.
    pub before: Flag,
    /// The configuration after the request.
    pub flag: Flag,
    /// `false` when the flag was already killed (a second kill changes nothing).
    pub changed: bool,
    /// SDK stream subscribers of the environment when the change was published.
    pub subscribers: usize,
    /// A release of the flag in the environment is paused: by this kill, or (after a
    /// restore) still, until `POST .../release/resume`.
    pub release_paused: bool,
    /// Scheduled changes of the flag in the environment that are paused: by this kill, or
    /// (after a restore) still, until `POST .../schedules/{id}/resume`.
    pub schedules_paused: usize,
}

/// Every live flag's configuration, by environment.
pub fn live_configs(conn: &Conn) -> anyhow::Result<Vec<(String, Flag)>> {
    let rows = conn.query_map(
        "SELECT c.environment, c.config FROM flag_configs c JOIN flags f ON f.key = c.flag
         WHERE f.archived = 0",
        params![],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (env, config) in rows {
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

/// Inserts a configuration row (a new flag or a new environment); `json` is `config`'s JSON.
pub(crate) fn insert_config(
    conn: &Conn,
    env: &str,
    config: &Flag,
    json: &str,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO flag_configs (flag, environment, version, config) VALUES (?1, ?2, ?3, ?4)",
        params![&config.key, env, config.version as i64, json],
    )?;
    Ok(())
}

/// A configuration row, read inside the writer's transaction.
struct ConfigRow {
    version: u64,
    config: Flag,
    /// `config` as the row holds it (JSON).
    config_json: String,
    pre_kill: Option<Flag>,
}

fn config_row(ctx: &WriteCtx<'_>, key: &str, env: &str) -> Result<ConfigRow, ApiError> {
    ctx.snapshot(env)?;
    let row = ctx.conn.query_opt(
        "SELECT f.archived, c.version, c.config, c.pre_kill
         FROM flags f JOIN flag_configs c ON c.flag = f.key
         WHERE f.key = ?1 AND c.environment = ?2",
        params![key, env],
    )?;
    let Some(row) = row else {
        return Err(no_flag(key));
    };
    let (archived, version, config, pre_kill) = (
        row.get::<bool>(0)?,
        row.get::<i64>(1)?,
        row.get::<String>(2)?,
        row.get::<Option<String>>(3)?,
    );
    if archived {
        return Err(ApiError::NotFound(format!("flag `{key}` is archived")));
    }
    Ok(ConfigRow {
        version: version as u64,
        config: json(&config)?,
        config_json: config,
        pre_kill: pre_kill.as_deref().map(json).transpose()?,
    })
}

/// Writes `config` to its row, serialised once: the JSON it returns is the row's, for the
/// audit row's `after`.
fn write_config(
    ctx: &mut WriteCtx<'_>,
    env: &str,
    config: &Flag,
    pre_kill: Option<&str>,
) -> Result<String, ApiError> {
    let revision = ctx.bump_revision(env)?;
    // Before the UPDATE: the group's first read of the webhooks then needs no savepoint
    // (nothing of this request goes ahead of it).
    webhooks::enqueue(
        ctx,
        "flag.changed",
        &serde_json::json!({
            "flag": config.key, "environment": env, "version": config.version,
            "enabled": config.enabled, "revision": revision,
        }),
    )?;
    let json = to_json(config);
    // The time of the change stays on the row: the `/metrics` gauge of each flag's last change.
    let changed_ms = crate::clock::parse_rfc3339(ctx.now);
    ctx.conn.defer(
        "UPDATE flag_configs SET version = ?3, config = ?4, pre_kill = ?5, changed_ms = ?6
         WHERE flag = ?1 AND environment = ?2",
        params![
            &config.key,
            env,
            config.version as i64,
            &json,
            pre_kill,
            changed_ms
        ],
    )?;
    let change = Change::Flag {
        revision,
        flag: config.clone(),
    };
    ctx.emit(Effect::change(env, change, Some(json.clone())));
    Ok(json)
}

/// Replaces a flag's configuration in one environment. `if_match` is compared with the
/// current version inside the transaction: a stale one gets 412. Clears a kill's restore point.
/// `reason` goes to the audit row.
pub fn put_config(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    config: Flag,
    if_match: Option<u64>,
    reason: Option<&str>,
) -> Result<Flag, ApiError> {
    let (config, before) = prepare_config(ctx, env, config, if_match)?;
    let after = write_config(ctx, env, &config, None)?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "flag.config.update",
            flag: Some(&config.key),
            environment: Some(env),
            before,
            after: Some(after),
            reason,
            ..NewAudit::default()
        },
    );
    Ok(config)
}

/// Checks a replacement of a flag's configuration in `env` as [`put_config`] would, writing
/// nothing: the configuration as it would be stored (its next version) and the current one.
/// A change request and a scheduled change check theirs here before they are held.
pub(crate) fn prepare_config(
    ctx: &WriteCtx<'_>,
    env: &str,
    mut config: Flag,
    if_match: Option<u64>,
) -> Result<(Flag, Option<String>), ApiError> {
    // The working snapshot holds every live flag at its committed (or earlier in this group)
    // version, so the hot path reads no row; an absent flag gets the precise 404 from the row.
    let (version, kind, before) = match ctx.snapshot(env)?.flags.get(&config.key) {
        Some(current) => {
            if let Some((field, message)) = changed_variations(&current.variations, &config) {
                return Err(ApiError::invalid(field, message));
            }
            (current.version, current.kind.clone(), audit::text(current))
        }
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
    Ok((config, before))
}

/// The flag's live configuration in `env`, as the requests before this one left it (404 when
/// unknown or archived).
pub(crate) fn live(ctx: &WriteCtx<'_>, flag: &str, env: &str) -> Result<Flag, ApiError> {
    ctx.snapshot(env)?.flags.get(flag).cloned().ok_or_else(|| {
        ApiError::NotFound(format!("no flag `{flag}` in `{env}` (or it is archived)"))
    })
}

/// Variations belong to the flag (the same in every environment): the first field where
/// `config` redefines them, and what the flag has.
fn changed_variations(flag: &[Variation], config: &Flag) -> Option<(String, String)> {
    let has = || {
        let list: Vec<String> = flag
            .iter()
            .map(|v| format!("`{}` = {}", v.key, v.value))
            .collect();
        format!(
            "variations belong to flag `{}` and are the same in every environment; it has {}",
            config.key,
            list.join(", ")
        )
    };
    if flag.len() != config.variations.len() {
        return Some(("variations".to_owned(), has()));
    }
    flag.iter()
        .zip(&config.variations)
        .enumerate()
        .find_map(|(i, (theirs, given))| {
            let field = if theirs.key != given.key {
                "key"
            } else if theirs.value != given.value {
                "value"
            } else {
                return None;
            };
            Some((format!("variations[{i}].{field}"), has()))
        })
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
            release_paused: false,
            schedules_paused: 0,
        });
    }
    let mut after = row.config.clone();
    after.enabled = false;
    after.version = row.version + 1;
    let after_json = write_config(ctx, env, &after, Some(&row.config_json))?;
    let mut outcome = audited(
        ctx,
        actor,
        "flag.kill",
        env,
        (row.config, row.config_json),
        (after, after_json),
        Some(reason),
    );
    // The responder's word overrides everything automatic: the release stops where it is.
    outcome.release_paused = releases::hold_for_kill(ctx, actor, key, env, reason)?;
    outcome.schedules_paused = schedules::hold_for_kill(ctx, actor, key, env, reason)?;
    Ok(outcome)
}

/// Whether the flag is killed in `env` (a kill's restore point is kept).
pub fn killed(ctx: &WriteCtx<'_>, key: &str, env: &str) -> Result<bool, ApiError> {
    Ok(config_row(ctx, key, env)?.pre_kill.is_some())
}

/// While the flag is killed, changes the configuration `restore` will put back, leaving the
/// live (killed) one as it is. `false`, and nothing changed, when the flag is not killed.
pub fn amend_restore_point(
    ctx: &mut WriteCtx<'_>,
    key: &str,
    env: &str,
    change: impl FnOnce(&mut Flag),
) -> Result<bool, ApiError> {
    let Some(mut restore_point) = config_row(ctx, key, env)?.pre_kill else {
        return Ok(false);
    };
    change(&mut restore_point);
    validate_flag_in(&restore_point, ctx.snapshot(env)?)?;
    ctx.conn.execute(
        "UPDATE flag_configs SET pre_kill = ?3 WHERE flag = ?1 AND environment = ?2",
        params![key, env, &to_json(&restore_point)],
    )?;
    Ok(true)
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
    let after_json = write_config(ctx, env, &after, None)?;
    let mut outcome = audited(
        ctx,
        actor,
        "flag.restore",
        env,
        (row.config, row.config_json),
        (after, after_json),
        reason,
    );
    outcome.release_paused =
        releases::get(ctx.conn, key, env)?.is_some_and(|r| r.state == ReleaseState::Paused);
    outcome.schedules_paused = schedules::paused(ctx.conn, key, env)?;
    Ok(outcome)
}

/// Records a kill or restore that changed `before` into `after` (each with its JSON) in the
/// audit log.
fn audited(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    action: &str,
    env: &str,
    (before, before_json): (Flag, String),
    (after, after_json): (Flag, String),
    reason: Option<&str>,
) -> KillOutcome {
    audit::record(
        ctx,
        NewAudit {
            actor,
            action,
            flag: Some(&after.key),
            environment: Some(env),
            before: Some(before_json),
            after: Some(after_json),
            reason,
            ..NewAudit::default()
        },
    );
    KillOutcome {
        before,
        flag: after,
        changed: true,
        subscribers: 0,
        release_paused: false,
        schedules_paused: 0,
    }
}

/// Every killed (flag, environment): those with a kill's restore point.
pub fn all_killed(conn: &Conn) -> Result<Vec<(String, String)>, ApiError> {
    Ok(conn.query_map(
        "SELECT flag, environment FROM flag_configs WHERE pre_kill IS NOT NULL",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// When each live flag's configuration last changed in each environment (Unix milliseconds;
/// a change, a kill or a restore, a release's moves included), as committed, so that every
/// replica answers the same: (flag, environment, at).
pub fn last_changes(conn: &Conn) -> Result<Vec<(String, String, i64)>, ApiError> {
    Ok(conn.query_map(
        "SELECT c.flag, c.environment, c.changed_ms
         FROM flag_configs c JOIN flags f ON f.key = c.flag
         WHERE f.archived = 0 AND c.changed_ms IS NOT NULL
         ORDER BY c.flag, c.environment",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}
