//! Releases: one row per (flag, environment) with the release as JSON, plus its state and due
//! time as columns for the scheduler. Every move writes the flag (through the same path as any
//! other change), the release row and an audit row in one savepoint of the group commit.

use std::collections::HashSet;

use flag_sdk::events::MetricEvent;
use flag_sdk::validate::{FieldError, ValidationErrors};
use flag_sdk::Flag;

use super::audit::{self, NewAudit};
use super::sql::{params, Conn};
use super::{flag_configs, json, to_json, webhooks, WriteCtx};
use crate::error::ApiError;
use crate::release::guard::Counts;
use crate::release::plan::{FlagMove, Millis, Release, ReleasePlan, ReleaseState, Step};
use crate::release::prometheus::Reading;

/// The actor named in the audit log for moves the scheduler and the guard make.
pub const SCHEDULER: &str = "release-scheduler";

/// A person's command to a running release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Hold where it is.
    Pause(String),
    /// Go on.
    Resume,
    /// Next stage now.
    Advance,
    /// Stop and put the fallthrough back.
    Abort(String),
    /// Roll back as the guard would (an alert said so): the fallthrough from before the
    /// release, state `rolled_back`.
    RollBack(String),
}

/// The release of `flag` in `env`, if one was ever started.
pub fn get(conn: &Conn, flag: &str, env: &str) -> Result<Option<Release>, ApiError> {
    conn.query_opt(
        "SELECT body FROM releases WHERE flag = ?1 AND environment = ?2",
        params![flag, env],
    )?
    .map(|r| json(&r.get::<String>(0)?))
    .transpose()
}

/// Every (flag, environment) with a release running (not paused or finished).
pub fn all_running(conn: &Conn) -> Result<Vec<(String, String)>, ApiError> {
    Ok(conn.query_map(
        "SELECT flag, environment FROM releases WHERE state = 'running'",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Running releases and when each is next due: (flag, environment, due at).
pub fn schedule(conn: &Conn) -> Result<Vec<(String, String, Millis)>, ApiError> {
    Ok(conn.query_map(
        "SELECT flag, environment, next_at FROM releases WHERE next_at IS NOT NULL ORDER BY next_at",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

/// Starts a release: 409 while another one of the flag in `env` is running or paused.
pub fn start(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    plan: ReleasePlan,
    now: Millis,
) -> Result<Release, ApiError> {
    if let Some(existing) = get(ctx.conn, flag, env)? {
        if existing.state.is_active() {
            return Err(ApiError::Conflict(format!(
                "flag `{flag}` already has a {:?} release in `{env}`; pause, abort or let it finish first",
                existing.state
            )));
        }
    }
    let config = current(ctx, flag, env)?;
    let variations = variation_keys(&config);
    let problems = plan.problems(&variations);
    if !problems.is_empty() {
        return Err(ApiError::Validation(ValidationErrors(
            problems
                .into_iter()
                .map(|(field, message)| FieldError { field, message })
                .collect(),
        )));
    }
    if !config.enabled {
        return Err(ApiError::Conflict(format!(
            "flag `{flag}` is off in `{env}`: a release needs traffic; turn it on first"
        )));
    }
    let (release, step) = Release::start(plan, config.fallthrough.clone(), &variations, now);
    apply(ctx, actor, flag, env, None, &release, step)?;
    Ok(release)
}

/// Applies a person's command; 404 without a release, 409 when its state forbids it.
pub fn command(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    command: Command,
    now: Millis,
) -> Result<Release, ApiError> {
    let mut release = get(ctx.conn, flag, env)?
        .ok_or_else(|| ApiError::NotFound(format!("flag `{flag}` has no release in `{env}`")))?;
    let before = release.clone();
    if matches!(command, Command::Resume | Command::Advance)
        && flag_configs::killed(ctx, flag, env)?
    {
        return Err(ApiError::Conflict(format!(
            "flag `{flag}` is killed in `{env}`: a kill stops its release; restore the flag first (`flag restore {flag}`), then resume"
        )));
    }
    let config = current(ctx, flag, env)?;
    let variations = variation_keys(&config);
    let step = match &command {
        Command::Pause(reason) => release.pause(reason),
        Command::Resume => release.resume(now),
        Command::Advance => release.advance(now, &variations),
        Command::Abort(reason) => release.abort(reason),
        Command::RollBack(reason) => release.roll_back(reason),
    }
    .map_err(|e| ApiError::Conflict(e.to_string()))?;
    apply(ctx, actor, flag, env, Some(&before), &release, step)?;
    Ok(release)
}

/// The scheduler's look at a due release, with the Prometheus reading it took for it:
/// advance, roll back, or keep holding.
pub fn tick(
    ctx: &mut WriteCtx<'_>,
    flag: &str,
    env: &str,
    now: Millis,
    reading: Option<Reading>,
) -> Result<(), ApiError> {
    let Some(mut release) = get(ctx.conn, flag, env)? else {
        return Ok(());
    };
    let before = release.clone();
    let config = match current(ctx, flag, env) {
        Ok(config) => config,
        // The flag was archived under the release: stop it rather than retry forever.
        Err(ApiError::NotFound(why)) => {
            let step = release
                .abort(&why)
                .map_err(|e| ApiError::Conflict(e.to_string()))?;
            return save_and_audit(ctx, SCHEDULER, flag, env, Some(&before), &release, &step);
        }
        Err(e) => return Err(e),
    };
    if flag_configs::killed(ctx, flag, env)? {
        // Nothing moves a killed flag's release (one running from before kills paused it).
        return match release.hold_for_kill("the flag is killed") {
            Some(step) => save_and_audit(ctx, SCHEDULER, flag, env, Some(&before), &release, &step),
            None => Ok(()),
        };
    }
    match release.tick(now, &variation_keys(&config), reading) {
        Some(step) => apply(ctx, SCHEDULER, flag, env, Some(&before), &release, step),
        None if release != before => save(ctx, flag, env, &release),
        None => Ok(()),
    }
}

/// What one SDK batch reports for the release guard, by flag.
#[derive(Debug, Default)]
pub struct Observations {
    /// (flag, variation, counts).
    pub counters: Vec<(String, String, Counts)>,
    /// Metric histograms.
    pub metrics: Vec<MetricEvent>,
}

impl Observations {
    /// Whether there is nothing to observe.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.metrics.is_empty()
    }

    /// The figures of `flags` only.
    pub fn only(mut self, flags: &HashSet<String>) -> Observations {
        self.counters.retain(|(flag, _, _)| flags.contains(flag));
        self.metrics.retain(|m| flags.contains(&m.flag));
        self
    }
}

/// The flags of `env` with a release running or paused: the only ones whose figures
/// [`observe`] keeps. Read before going to the writer, so that the figures every SDK posts
/// about every other flag (a thousand clients flushing at once) never queue there in front
/// of a kill.
pub fn active_flags(conn: &Conn, env: &str) -> Result<HashSet<String>, ApiError> {
    Ok(conn
        .query_map(
            "SELECT flag FROM releases WHERE environment = ?1 AND state IN ('running', 'paused')",
            params![env],
            |r| r.get(0),
        )?
        .into_iter()
        .collect())
}

/// Adds SDK counters and metric histograms to the running releases of `env`; a regression
/// acts in the same transaction. Figures of flags without a running release, or of a killed
/// flag (everyone gets its off variation, which says nothing of the stage), are ignored.
/// Returns the moves.
pub fn observe(
    ctx: &mut WriteCtx<'_>,
    env: &str,
    observations: &Observations,
) -> Result<Vec<Step>, ApiError> {
    let counters = &observations.counters;
    let metrics = &observations.metrics;
    let mut flags: Vec<&str> = counters
        .iter()
        .map(|(f, _, _)| f.as_str())
        .chain(metrics.iter().map(|m| m.flag.as_str()))
        .collect();
    flags.sort_unstable();
    flags.dedup();
    let mut steps = Vec::new();
    for flag in flags {
        let Some(mut release) = get(ctx.conn, flag, env)? else {
            continue;
        };
        if !release.state.is_active() || flag_configs::killed(ctx, flag, env)? {
            continue;
        }
        let before = release.clone();
        let mut step = None;
        for (_, variation, counts) in counters.iter().filter(|(f, _, _)| f == flag) {
            step = step.or(release.observe(variation, *counts));
        }
        for m in metrics.iter().filter(|m| m.flag == flag) {
            step = step.or(release.observe_metric(&m.variation, &m.metric, &m.histogram));
        }
        match step {
            Some(step) => {
                apply(
                    ctx,
                    SCHEDULER,
                    flag,
                    env,
                    Some(&before),
                    &release,
                    step.clone(),
                )?;
                steps.push(step);
            }
            None => save(ctx, flag, env, &release)?,
        }
    }
    Ok(steps)
}

/// Writes a step's change to the flag, then the release row and the audit row.
fn apply(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    before: Option<&Release>,
    release: &Release,
    step: Step,
) -> Result<(), ApiError> {
    match &step.flag {
        Some(FlagMove::Fallthrough(serve)) => {
            // While the flag is killed the kill stands (an abort then changes what `restore`
            // puts back); otherwise the live configuration changes.
            let amended = flag_configs::amend_restore_point(ctx, flag, env, |c| {
                c.fallthrough = serve.clone();
            })?;
            if !amended {
                let mut config = current(ctx, flag, env)?;
                config.fallthrough = serve.clone();
                flag_configs::put_config(ctx, actor, env, config, None, None)?;
            }
        }
        Some(FlagMove::Kill) => {
            // Saved first, so the kill finds this release over and does not pause it.
            save(ctx, flag, env, release)?;
            flag_configs::kill(ctx, actor, flag, env, &step.reason)?;
        }
        None => {}
    }
    save_and_audit(ctx, actor, flag, env, before, release, &step)
}

/// A kill of `flag` in `env` pauses its running release, with an audit row giving the kill's
/// reason (called by the kill, in its transaction). Nothing else moves it until a person
/// resumes it after `restore`. Returns whether it paused one.
pub fn hold_for_kill(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    reason: &str,
) -> Result<bool, ApiError> {
    let Some(mut release) = get(ctx.conn, flag, env)? else {
        return Ok(false);
    };
    let before = release.clone();
    let Some(step) = release.hold_for_kill(reason) else {
        return Ok(false);
    };
    save_and_audit(ctx, actor, flag, env, Some(&before), &release, &step)?;
    Ok(true)
}

fn save_and_audit(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    before: Option<&Release>,
    release: &Release,
    step: &Step,
) -> Result<(), ApiError> {
    save(ctx, flag, env, release)?;
    let after = serde_json::to_value(release).ok();
    webhooks::enqueue(
        ctx,
        step.event,
        &serde_json::json!({
            "flag": flag, "environment": env, "actor": actor,
            "reason": step.reason, "release": after,
        }),
    )?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: step.event,
            flag: Some(flag),
            environment: Some(env),
            before: before.and_then(audit::text),
            after: after.as_ref().and_then(audit::text),
            reason: Some(&step.reason),
            ..NewAudit::default()
        },
    );
    Ok(())
}

fn save(ctx: &WriteCtx<'_>, flag: &str, env: &str, release: &Release) -> Result<(), ApiError> {
    let state = serde_json::to_value(release.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    debug_assert!(release.state != ReleaseState::Running || release.next_at().is_some());
    ctx.conn.execute(
        "INSERT INTO releases (flag, environment, state, next_at, body, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (flag, environment) DO UPDATE SET
            state = excluded.state, next_at = excluded.next_at,
            body = excluded.body, updated_at = excluded.updated_at",
        params![
            flag,
            env,
            &state,
            release.next_at(),
            &to_json(release),
            ctx.now
        ],
    )?;
    Ok(())
}

/// The flag's live configuration in `env` (404 when unknown or archived).
fn current(ctx: &WriteCtx<'_>, flag: &str, env: &str) -> Result<Flag, ApiError> {
    ctx.snapshot(env)?
        .flags
        .get(flag)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no flag `{flag}` in `{env}`")))
}

fn variation_keys(flag: &Flag) -> Vec<&str> {
    flag.variations.iter().map(|v| v.key.as_str()).collect()
}
