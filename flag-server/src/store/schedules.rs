//! Scheduled changes: one row per planned change of a flag in an environment (switch on or
//! off, a rollout percentage, a whole configuration), due at a time, made by its author.
//!
//! The release scheduler applies a due one through the same write path as the endpoint
//! (`flag_configs::put_config`), against the version it was planned on: a whole
//! configuration on a flag changed since fails visibly (state `failed`, audit, webhook
//! `schedule.failed`); an on/off or percentage change is applied to the flag as it is then.
//! A kill pauses the flag's pending schedules in its transaction; they stay paused through
//! `restore` until a person resumes them.

use flag_sdk::{Flag, Serve, WeightedVariation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::sql::{params, Conn, Row};
use super::{flag_configs, to_json, WriteCtx};
use crate::clock::{self, Millis};
use crate::error::ApiError;

/// Where a scheduled change stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleState {
    /// Waiting for its time.
    Pending,
    /// Held by a kill of the flag until `POST .../schedules/{id}/resume`.
    Paused,
    /// Done (`late_ms` says how late).
    Applied,
    /// Not applied: the flag changed since it was planned, or the change no longer fits
    /// (`detail` says why).
    Failed,
    /// Cancelled by a person.
    Cancelled,
}

impl ScheduleState {
    fn as_str(self) -> &'static str {
        match self {
            ScheduleState::Pending => "pending",
            ScheduleState::Paused => "paused",
            ScheduleState::Applied => "applied",
            ScheduleState::Failed => "failed",
            ScheduleState::Cancelled => "cancelled",
        }
    }

    fn stored(text: &str) -> ScheduleState {
        [
            ScheduleState::Pending,
            ScheduleState::Paused,
            ScheduleState::Applied,
            ScheduleState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .unwrap_or(ScheduleState::Cancelled)
    }
}

/// The change a schedule makes: exactly one of the three.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Switch the flag on (`true`) or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The fallthrough becomes a rollout: the flag's first variation gets this percentage
    /// (0 to 100, at most 3 decimals), its off variation the rest; bucketing is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// A whole configuration (contract section 2), applied only if the flag is still at
    /// the version it was planned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Flag>,
}

impl Change {
    /// The percentage in thousandths; checks that exactly one change is given.
    fn check(&self) -> Result<Option<u32>, ApiError> {
        let given = [
            self.enabled.is_some(),
            self.percent.is_some(),
            self.config.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ApiError::invalid(
                "change",
                "give exactly one of `enabled`, `percent` or `config`",
            ));
        }
        let Some(percent) = self.percent else {
            return Ok(None);
        };
        let weight = (percent * 1000.0).round();
        if !(0.0..=100.0).contains(&percent) || (percent * 1000.0 - weight).abs() > 1e-6 {
            return Err(ApiError::invalid(
                "change.percent",
                "must be 0 to 100 with at most 3 decimals",
            ));
        }
        Ok(Some(weight as u32))
    }

    /// Whether it is a plain on/off or percentage change (applied to whatever the flag is
    /// then) rather than a whole configuration (applied only to the version planned on).
    fn is_plain(&self) -> bool {
        self.config.is_none()
    }
}

/// A scheduled change as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Schedule {
    /// Its id (for `DELETE .../schedules/{id}`).
    pub id: i64,
    /// The flag.
    pub flag: String,
    /// The environment.
    pub environment: String,
    /// When it is due, RFC 3339 UTC.
    pub at: String,
    /// What it changes.
    pub change: Change,
    /// Why (in the audit rows it writes).
    pub reason: Option<String>,
    /// The token name that planned it; the change is applied as theirs.
    pub author: String,
    /// The flag's version when it was planned.
    pub base_version: u64,
    /// Where it stands.
    pub state: ScheduleState,
    /// Why it failed or is paused; how late it was applied.
    pub detail: Option<String>,
    /// How late it was applied, in milliseconds (after a restart it can be long).
    pub late_ms: Option<i64>,
    /// The approved change request that scheduled it.
    pub change_request: Option<i64>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// What a new schedule is.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// When, Unix milliseconds.
    pub at: Millis,
    /// What.
    pub change: Change,
    /// Why.
    pub reason: Option<String>,
}

const COLUMNS: &str = "id, flag, environment, at, change, reason, author, base_version, state,
                       detail, late_ms, change_request, created_at, updated_at";

fn from_row(r: &Row) -> Result<Schedule, super::sql::Error> {
    let change: String = r.get(4)?;
    Ok(Schedule {
        id: r.get(0)?,
        flag: r.get(1)?,
        environment: r.get(2)?,
        at: clock::rfc3339(r.get(3)?).unwrap_or_default(),
        change: serde_json::from_str(&change).unwrap_or_default(),
        reason: r.get(5)?,
        author: r.get(6)?,
        base_version: r.get::<i64>(7)? as u64,
        state: ScheduleState::stored(&r.get::<String>(8)?),
        detail: r.get(9)?,
        late_ms: r.get(10)?,
        change_request: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

/// The schedules of `flag` in `env`, by time.
pub fn list(conn: &Conn, flag: &str, env: &str) -> Result<Vec<Schedule>, ApiError> {
    Ok(conn.query_map(
        &format!(
            "SELECT {COLUMNS} FROM schedules WHERE flag = ?1 AND environment = ?2 ORDER BY at, id"
        ),
        params![flag, env],
        from_row,
    )?)
}

fn get(conn: &Conn, flag: &str, env: &str, id: i64) -> Result<Schedule, ApiError> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"),
        params![id],
    )?
    .map(|r| from_row(&r))
    .transpose()?
    .filter(|s| s.flag == flag && s.environment == env)
    .ok_or_else(|| ApiError::NotFound(format!("flag `{flag}` has no schedule {id} in `{env}`")))
}

/// Pending schedules and when each is due: (id, due at), soonest first.
pub fn due(conn: &Conn) -> Result<Vec<(i64, Millis)>, ApiError> {
    Ok(conn.query_map(
        "SELECT id, at FROM schedules WHERE state = 'pending' ORDER BY at",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// How many schedules of `flag` in `env` are paused.
pub fn paused(conn: &Conn, flag: &str, env: &str) -> Result<usize, ApiError> {
    let n: i64 = conn
        .query_one(
            "SELECT count(*) FROM schedules
             WHERE flag = ?1 AND environment = ?2 AND state = 'paused'",
            params![flag, env],
        )?
        .get(0)?;
    Ok(n as usize)
}

/// Plans a change. `now` is the scheduler's clock: a time already past is refused (422),
/// unless `change_request` names the approved request it comes from (then it is due at once).
pub fn create(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    new: NewSchedule,
    change_request: Option<i64>,
    now: Millis,
) -> Result<Schedule, ApiError> {
    let current = check(ctx, flag, env, &new, change_request, now)?;
    let id: i64 = ctx
        .conn
        .query_one(
            "INSERT INTO schedules (flag, environment, at, change, reason, author, base_version,
                                    state, change_request, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?9) RETURNING id",
            params![
                flag,
                env,
                new.at,
                &to_json(&new.change),
                new.reason.as_ref(),
                actor,
                current.version as i64,
                change_request,
                ctx.now
            ],
        )?
        .get(0)?;
    let schedule = get(ctx.conn, flag, env, id)?;
    record(ctx, actor, "schedule.created", None, &schedule)?;
    Ok(schedule)
}

/// Checks a new schedule as [`create`] would, writing nothing; the flag as it is now.
pub(crate) fn check(
    ctx: &WriteCtx<'_>,
    flag: &str,
    env: &str,
    new: &NewSchedule,
    change_request: Option<i64>,
    now: Millis,
) -> Result<Flag, ApiError> {
    let current = flag_configs::live(ctx, flag, env)?;
    let weight = new.change.check()?;
    if let Some(config) = &new.change.config {
        if config.key != flag {
            return Err(ApiError::invalid(
                "change.config.key",
                format!("does not match the flag in the path (`{flag}`)"),
            ));
        }
        flag_configs::prepare_config(ctx, env, config.clone(), None)?;
    }
    if let Some(weight) = weight {
        rollout(&current, weight)?;
    }
    if new.at <= now && change_request.is_none() {
        return Err(ApiError::invalid("at", "must be in the future"));
    }
    Ok(current)
}

/// Cancels a pending or paused schedule; 409 once it has run.
pub fn cancel(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    id: i64,
) -> Result<Schedule, ApiError> {
    let before = get(ctx.conn, flag, env, id)?;
    if !matches!(before.state, ScheduleState::Pending | ScheduleState::Paused) {
        return Err(ApiError::Conflict(format!(
            "schedule {id} is {}; only a pending or paused one can be cancelled",
            before.state.as_str()
        )));
    }
    let after = set_state(ctx, &before, ScheduleState::Cancelled, None, None)?;
    record(ctx, actor, "schedule.cancelled", Some(&before), &after)?;
    Ok(after)
}

/// Resumes a schedule a kill paused; 409 while the flag is killed or when it is not paused.
/// One whose time has passed is then due at once (applied late, and says so).
pub fn resume(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    id: i64,
) -> Result<Schedule, ApiError> {
    let before = get(ctx.conn, flag, env, id)?;
    if before.state != ScheduleState::Paused {
        return Err(ApiError::Conflict(format!(
            "schedule {id} is {}, not paused",
            before.state.as_str()
        )));
    }
    if flag_configs::killed(ctx, flag, env)? {
        return Err(ApiError::Conflict(format!(
            "flag `{flag}` is killed in `{env}`: restore it first (`flag restore {flag}`), then resume"
        )));
    }
    let after = set_state(ctx, &before, ScheduleState::Pending, None, None)?;
    record(ctx, actor, "schedule.resumed", Some(&before), &after)?;
    Ok(after)
}

/// A kill pauses the flag's pending schedules in `env` (in the kill's transaction), with an
/// audit row each giving the kill's reason. Returns how many it paused.
pub fn hold_for_kill(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    reason: &str,
) -> Result<usize, ApiError> {
    let pending: Vec<Schedule> = list(ctx.conn, flag, env)?
        .into_iter()
        .filter(|s| s.state == ScheduleState::Pending)
        .collect();
    let detail = format!("paused by a kill: {reason}");
    for before in &pending {
        let after = set_state(
            ctx,
            before,
            ScheduleState::Paused,
            Some(detail.as_str()),
            None,
        )?;
        record(ctx, actor, "schedule.paused", Some(before), &after)?;
    }
    Ok(pending.len())
}

/// The scheduler's look at a due schedule: applies it as a write by its author, or records
/// why it cannot. `now` is the scheduler's clock.
pub fn tick(ctx: &mut WriteCtx<'_>, id: i64, now: Millis) -> Result<(), ApiError> {
    let Some(row) = ctx.conn.query_opt(
        &format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"),
        params![id],
    )?
    else {
        return Ok(());
    };
    let before = from_row(&row)?;
    let at = clock::parse_rfc3339(&before.at).unwrap_or(now);
    if before.state != ScheduleState::Pending || at > now {
        return Ok(());
    }
    let (flag, env) = (before.flag.as_str(), before.environment.as_str());
    let fail = |ctx: &mut WriteCtx<'_>, why: String| {
        let after = set_state(ctx, &before, ScheduleState::Failed, Some(&why), None)?;
        record(
            ctx,
            &before.author,
            "schedule.failed",
            Some(&before),
            &after,
        )
    };
    let current = match flag_configs::live(ctx, flag, env) {
        Ok(current) => current,
        Err(ApiError::NotFound(why)) => return fail(ctx, why),
        Err(e) => return Err(e),
    };
    if flag_configs::killed(ctx, flag, env)? {
        let why = "paused: the flag is killed".to_owned();
        let after = set_state(ctx, &before, ScheduleState::Paused, Some(&why), None)?;
        return record(
            ctx,
            &before.author,
            "schedule.paused",
            Some(&before),
            &after,
        );
    }
    if !before.change.is_plain() && current.version != before.base_version {
        let why = format!(
            "not applied: flag `{flag}` changed since this was planned (now at version {}, planned on {})",
            current.version, before.base_version
        );
        return fail(ctx, why);
    }
    let config = match changed(&before.change, current) {
        Ok(config) => config,
        Err(e) => return fail(ctx, format!("not applied: {e}")),
    };
    let if_match = (!before.change.is_plain()).then_some(before.base_version);
    let reason = before.reason.as_deref();
    match flag_configs::put_config(ctx, &before.author, env, config, if_match, reason) {
        Ok(_) => {}
        Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => return Err(e),
        Err(e) => return fail(ctx, format!("not applied: {e}")),
    }
    let late = now - at;
    let detail = (late >= 1000).then(|| {
        format!(
            "applied {} late (the server was down or busy at its time)",
            human(late)
        )
    });
    let after = set_state(
        ctx,
        &before,
        ScheduleState::Applied,
        detail.as_deref(),
        Some(late),
    )?;
    record(
        ctx,
        &before.author,
        "schedule.applied",
        Some(&before),
        &after,
    )
}

/// The flag's configuration after `change`.
fn changed(change: &Change, mut config: Flag) -> Result<Flag, ApiError> {
    if let Some(enabled) = change.enabled {
        config.enabled = enabled;
    } else if let Some(weight) = change.check()? {
        config.fallthrough = rollout(&config, weight)?;
    } else if let Some(replacement) = &change.config {
        return Ok(replacement.clone());
    }
    Ok(config)
}

/// The fallthrough of `percent` (thousandths): the first variation gets it, the off
/// variation (or, when that is the first, the second) the rest; the bucketing is kept.
fn rollout(flag: &Flag, weight: u32) -> Result<Serve, ApiError> {
    let chosen = flag
        .variations
        .first()
        .map(|v| v.key.clone())
        .ok_or_else(|| ApiError::invalid("change.percent", "the flag has no variations"))?;
    let rest = if flag.off_variation != chosen {
        Some(flag.off_variation.clone())
    } else {
        flag.variations.get(1).map(|v| v.key.clone())
    }
    .ok_or_else(|| {
        ApiError::invalid(
            "change.percent",
            "a percentage needs a second variation for the rest",
        )
    })?;
    let rest = [WeightedVariation {
        variation: rest,
        weight: 1,
    }];
    Ok(Serve::sticky_rollout(
        &flag.fallthrough,
        None,
        &chosen,
        weight,
        &rest,
    ))
}

/// `90061000` ms → `1d 1h 1m 1s`.
fn human(ms: i64) -> String {
    let s = ms / 1000;
    let parts = [
        (s / 86400, "d"),
        (s / 3600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        format!("{ms}ms")
    } else {
        text.join(" ")
    }
}

fn set_state(
    ctx: &WriteCtx<'_>,
    before: &Schedule,
    state: ScheduleState,
    detail: Option<&str>,
    late_ms: Option<i64>,
) -> Result<Schedule, ApiError> {
    ctx.conn.execute(
        "UPDATE schedules SET state = ?2, detail = ?3, late_ms = ?4, updated_at = ?5
         WHERE id = ?1",
        params![before.id, state.as_str(), detail, late_ms, ctx.now],
    )?;
    Ok(Schedule {
        state,
        detail: detail.map(str::to_owned),
        late_ms,
        updated_at: ctx.now.to_owned(),
        ..before.clone()
    })
}

/// The audit row (named by the schedule's reason and what happened) and the webhook event.
fn record(
    ctx: &WriteCtx<'_>,
    actor: &str,
    event: &str,
    before: Option<&Schedule>,
    after: &Schedule,
) -> Result<(), ApiError> {
    let reason = match (&after.reason, &after.detail) {
        (Some(reason), Some(detail)) => Some(format!("{reason} ({detail})")),
        (reason, detail) => reason.clone().or(detail.clone()),
    };
    let row = NewAudit {
        actor,
        action: event,
        flag: Some(&after.flag),
        environment: Some(&after.environment),
        before: before.and_then(audit::text),
        after: audit::text(after),
        reason: reason.as_deref(),
        ..NewAudit::default()
    };
    audit::announce(ctx, row, "schedule")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_reads_like_a_person_says_it() {
        assert_eq!(human(90_061_000), "1d 1h 1m 1s");
        assert_eq!(human(120_000), "2m");
        assert_eq!(human(400), "400ms");
    }

    #[test]
    fn exactly_one_change() {
        let none = Change::default();
        assert!(none.check().is_err());
        let two = Change {
            enabled: Some(true),
            percent: Some(5.0),
            config: None,
        };
        assert!(two.check().is_err());
        let percent = |p| Change {
            percent: Some(p),
            ..Change::default()
        };
        assert_eq!(percent(12.5).check().unwrap(), Some(12_500));
        assert!(percent(100.5).check().is_err());
        assert!(percent(0.0001).check().is_err());
    }
}
