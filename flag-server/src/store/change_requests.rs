//! Change requests: in an environment that requires approvals, a write is held as a request
//! (the proposed change, the version it was based on, a reason) until enough other people
//! approve it. Then it is applied through the same write path as the endpoint, with
//! If-Match on the base version: a flag changed meanwhile makes the request `stale` and
//! nothing is applied. Every step is audited and sent to webhooks.
//!
//! What a request holds, by kind: a flag configuration (`flag_config`), a kill or restore
//! (`kill`, `restore`, only when the environment holds those too), a scheduled change
//! (`schedule`: approving it plans the change; it runs at its time), a segment created or
//! replaced (`segment`) or deleted (`segment_delete`).

use flag_sdk::{Flag, Segment};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::schedules::{self, Change, NewSchedule};
use super::sql::{params, Conn, Row};
use super::{flag_configs, json, segments, to_json, webhooks, WriteCtx};
use crate::clock::{self, Millis};
use crate::error::ApiError;

/// What a request changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// A flag's configuration (`PUT .../flags/{key}/environments/{env}`, and `flag on`,
    /// `off`, `rollout`).
    FlagConfig,
    /// The kill switch (held only where the environment says `approvals_for_kill`).
    Kill,
    /// A restore (held only where the environment says `approvals_for_kill`).
    Restore,
    /// A scheduled change: approving it plans it.
    Schedule,
    /// A segment created or replaced (`POST`, `PUT .../segments[/{key}]`).
    Segment,
    /// A segment deleted.
    SegmentDelete,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Approved and applied (or, for a schedule, planned).
    Applied,
    /// Approved, but the flag changed since it was based: nothing was applied.
    Stale,
    /// Rejected by a reviewer.
    Rejected,
    /// Withdrawn by its author.
    Withdrawn,
}

fn kind_str(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::FlagConfig => "flag_config",
        RequestKind::Kill => "kill",
        RequestKind::Restore => "restore",
        RequestKind::Schedule => "schedule",
        RequestKind::Segment => "segment",
        RequestKind::SegmentDelete => "segment_delete",
    }
}

/// What a request changes: a flag in its environment, or a segment.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Flag(&'a str),
    Segment(&'a str),
}

impl Target<'_> {
    /// Its current state and version in `env` (a segment that does not exist: `null`, 0).
    fn base(self, ctx: &WriteCtx<'_>, env: &str) -> Result<(Value, u64), ApiError> {
        match self {
            Target::Flag(flag) => {
                let config = flag_configs::live(ctx, flag, env)?;
                Ok((
                    serde_json::to_value(&config).unwrap_or_default(),
                    config.version,
                ))
            }
            Target::Segment(key) => Ok(match ctx.snapshot(env)?.segments.get(key) {
                Some(s) => (serde_json::to_value(s).unwrap_or_default(), s.version),
                None => (Value::Null, 0),
            }),
        }
    }

    fn of(request: &ChangeRequest) -> Target<'_> {
        match (&request.segment, &request.flag) {
            (Some(key), _) => Target::Segment(key),
            (None, flag) => Target::Flag(flag.as_deref().unwrap_or_default()),
        }
    }

    fn describe(self) -> String {
        match self {
            Target::Flag(flag) => format!("flag `{flag}`"),
            Target::Segment(key) => format!("segment `{key}`"),
        }
    }
}

fn state_str(state: RequestState) -> &'static str {
    match state {
        RequestState::Pending => "pending",
        RequestState::Applied => "applied",
        RequestState::Stale => "stale",
        RequestState::Rejected => "rejected",
        RequestState::Withdrawn => "withdrawn",
    }
}

/// A state as the API spells it (the `?state=` filter).
pub fn parse_state(text: &str) -> Option<RequestState> {
    use RequestState::*;
    [Pending, Applied, Stale, Rejected, Withdrawn]
        .into_iter()
        .find(|s| state_str(*s) == text)
}

/// One approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// The token name that approved.
    pub by: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}

/// One changed field: its JSON path and both values (`null` where absent).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DiffEntry {
    /// E.g. `enabled`, `fallthrough.rollout.weights[0].weight`.
    pub path: String,
    /// The value in the base version.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The proposed value.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// A change request as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChangeRequest {
    /// Its id (`/api/v1/change-requests/{id}`).
    pub id: i64,
    /// Where it stands.
    pub state: RequestState,
    /// What it changes.
    pub kind: RequestKind,
    /// The environment.
    pub environment: String,
    /// The flag (absent for a segment's request).
    pub flag: Option<String>,
    /// The segment (absent for a flag's request).
    pub segment: Option<String>,
    /// The proposed configuration (`flag_config`) or segment (`segment`), or the request's
    /// body (kill, restore, schedule, segment delete).
    #[schema(value_type = Object)]
    pub proposed: Value,
    /// The flag's configuration (or segment; `null` for a new one) it was based on.
    #[schema(value_type = Object)]
    pub base: Value,
    /// The version of `base`: applying sends it as If-Match.
    pub base_version: u64,
    /// What changes, field by field (for a `flag_config` or `segment`; empty otherwise).
    pub diff: Vec<DiffEntry>,
    /// Why (from `?reason=` or the body's `reason`).
    pub reason: Option<String>,
    /// The token name that asked; it cannot approve its own request.
    pub author: String,
    /// Approvals needed to apply it.
    pub required_approvals: u32,
    /// Approvals so far.
    pub approvals: Vec<Approval>,
    /// Why it is stale or rejected; what applying it did.
    pub detail: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// A write that may have been held for approval.
#[derive(Debug)]
pub enum Gated<T> {
    /// It was applied.
    Done(T),
    /// It waits for approval (answered 202).
    Held(Box<ChangeRequest>),
}

const COLUMNS: &str = "id, state, kind, environment, flag, proposed, base, base_version, reason,
                       author, required, approvals, detail, created_at, updated_at, segment";

fn from_row(r: &Row) -> Result<ChangeRequest, ApiError> {
    let kind = match r.get::<String>(2)?.as_str() {
        "kill" => RequestKind::Kill,
        "restore" => RequestKind::Restore,
        "schedule" => RequestKind::Schedule,
        "segment" => RequestKind::Segment,
        "segment_delete" => RequestKind::SegmentDelete,
        _ => RequestKind::FlagConfig,
    };
    let proposed: Value = json(&r.get::<String>(5)?)?;
    let base: Value = json(&r.get::<String>(6)?)?;
    let diff = match kind {
        RequestKind::FlagConfig | RequestKind::Segment => diff(&base, &proposed),
        _ => Vec::new(),
    };
    Ok(ChangeRequest {
        id: r.get(0)?,
        state: parse_state(&r.get::<String>(1)?).unwrap_or(RequestState::Rejected),
        kind,
        environment: r.get(3)?,
        flag: r.get(4)?,
        segment: r.get(15)?,
        proposed,
        base,
        base_version: r.get::<i64>(7)? as u64,
        diff,
        reason: r.get(8)?,
        author: r.get(9)?,
        required_approvals: r.get::<i64>(10)? as u32,
        approvals: json(&r.get::<String>(11)?)?,
        detail: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

/// Change requests, newest first, optionally of one state and environment.
pub fn list(
    conn: &Conn,
    state: Option<RequestState>,
    environment: Option<&str>,
) -> Result<Vec<ChangeRequest>, ApiError> {
    let rows = conn.query_map(
        &format!("SELECT {COLUMNS} FROM change_requests ORDER BY id DESC"),
        params![],
        |r| Ok(r.clone()),
    )?;
    let mut out = Vec::new();
    for row in &rows {
        let request = from_row(row)?;
        if state.is_none_or(|s| s == request.state)
            && environment.is_none_or(|e| e == request.environment)
        {
            out.push(request);
        }
    }
    Ok(out)
}

/// One change request; 404 when there is none.
pub fn get(conn: &Conn, id: i64) -> Result<ChangeRequest, ApiError> {
    let row = conn
        .query_opt(
            &format!("SELECT {COLUMNS} FROM change_requests WHERE id = ?1"),
            params![id],
        )?
        .ok_or_else(|| ApiError::NotFound(format!("no change request {id}")))?;
    from_row(&row)
}

/// The approvals `env` requires for a change of `kind` (0: none, apply at once).
fn required(ctx: &WriteCtx<'_>, env: &str, kind: RequestKind) -> Result<u32, ApiError> {
    ctx.snapshot(env)?;
    let row = ctx.conn.query_one(
        "SELECT approvals, approvals_for_kill FROM environments WHERE key = ?1",
        params![env],
    )?;
    let (approvals, for_kill) = (row.get::<i64>(0)?, row.get::<bool>(1)?);
    let held = match kind {
        RequestKind::Kill | RequestKind::Restore => for_kill,
        _ => true,
    };
    Ok(if held { approvals.max(0) as u32 } else { 0 })
}

/// Holds a replacement of a flag's configuration for approval when `env` requires it (checked
/// as the write would be, `if_match` included); `None` when it may be applied now.
pub fn hold_config(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    config: &Flag,
    if_match: Option<u64>,
    reason: Option<&str>,
) -> Result<Option<ChangeRequest>, ApiError> {
    if required(ctx, env, RequestKind::FlagConfig)? == 0 {
        return Ok(None);
    }
    let (proposed, _) = flag_configs::prepare_config(ctx, env, config.clone(), if_match)?;
    let proposed = serde_json::to_value(&proposed).unwrap_or_default();
    let target = Target::Flag(&config.key);
    open(
        ctx,
        actor,
        env,
        target,
        RequestKind::FlagConfig,
        proposed,
        reason,
    )
    .map(Some)
}

/// Holds a kill, restore or scheduled change (`body` is the request's body) when `env`
/// requires approval for it; `None` when it may be applied now.
pub fn hold(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    flag: &str,
    kind: RequestKind,
    body: Value,
) -> Result<Option<ChangeRequest>, ApiError> {
    if required(ctx, env, kind)? == 0 {
        return Ok(None);
    }
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let target = Target::Flag(flag);
    open(ctx, actor, env, target, kind, body, reason.as_deref()).map(Some)
}

fn open(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    target: Target<'_>,
    kind: RequestKind,
    proposed: Value,
    reason: Option<&str>,
) -> Result<ChangeRequest, ApiError> {
    let (base, version) = target.base(ctx, env)?;
    let required = required(ctx, env, kind)?;
    let (flag, segment) = match target {
        Target::Flag(flag) => (Some(flag), None),
        Target::Segment(key) => (None, Some(key)),
    };
    let id: i64 = ctx
        .conn
        .query_one(
            "INSERT INTO change_requests (environment, flag, segment, kind, proposed, base,
                 base_version, reason, author, required, approvals, state, created_at, updated_at)
             VALUES (?1, ?2, ?11, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '[]', 'pending', ?10, ?10)
             RETURNING id",
            params![
                env,
                flag,
                kind_str(kind),
                &to_json(&proposed),
                &to_json(&base),
                version as i64,
                reason,
                actor,
                i64::from(required),
                ctx.now,
                segment
            ],
        )?
        .get(0)?;
    let request = get(ctx.conn, id)?;
    record(ctx, actor, "change_request.created", None, &request)?;
    Ok(request)
}

/// `PUT .../flags/{key}/environments/{env}`: applied now, or held where `env` requires
/// approval.
pub fn put_config(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    config: Flag,
    if_match: Option<u64>,
    reason: Option<&str>,
) -> Result<Gated<Flag>, ApiError> {
    if let Some(held) = hold_config(ctx, actor, env, &config, if_match, reason)? {
        return Ok(Gated::Held(Box::new(held)));
    }
    flag_configs::put_config(ctx, actor, env, config, if_match).map(Gated::Done)
}

/// The kill switch: applied now, unless `env` holds kills for approval too.
pub fn kill(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    reason: &str,
) -> Result<Gated<flag_configs::KillOutcome>, ApiError> {
    let body = serde_json::json!({ "reason": reason });
    if let Some(held) = hold(ctx, actor, env, flag, RequestKind::Kill, body)? {
        return Ok(Gated::Held(Box::new(held)));
    }
    flag_configs::kill(ctx, actor, flag, env, reason).map(Gated::Done)
}

/// A restore: applied now, unless `env` holds kills for approval too.
pub fn restore(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    reason: Option<&str>,
) -> Result<Gated<flag_configs::KillOutcome>, ApiError> {
    let body = serde_json::json!({ "reason": reason });
    if let Some(held) = hold(ctx, actor, env, flag, RequestKind::Restore, body)? {
        return Ok(Gated::Held(Box::new(held)));
    }
    flag_configs::restore(ctx, actor, flag, env, reason).map(Gated::Done)
}

/// `POST .../schedules`: planned now, or held where `env` requires approval (approving it
/// plans it).
pub fn schedule(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    flag: &str,
    env: &str,
    new: NewSchedule,
    now: Millis,
) -> Result<Gated<schedules::Schedule>, ApiError> {
    if required(ctx, env, RequestKind::Schedule)? == 0 {
        return schedules::create(ctx, actor, flag, env, new, None, now).map(Gated::Done);
    }
    schedules::check(ctx, flag, env, &new, None, now)?;
    let body = serde_json::json!({
        "at": clock::rfc3339(new.at), "change": new.change, "reason": new.reason,
    });
    let reason = new.reason.as_deref();
    let target = Target::Flag(flag);
    open(ctx, actor, env, target, RequestKind::Schedule, body, reason)
        .map(|held| Gated::Held(Box::new(held)))
}

/// `POST .../segments` and `PUT .../segments/{key}` (`replace` = the PUT, with its
/// `if_match`): applied now, or held where `env` requires approval.
pub fn put_segment(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    segment: Segment,
    replace: Option<Option<u64>>,
    reason: Option<&str>,
) -> Result<Gated<Segment>, ApiError> {
    if required(ctx, env, RequestKind::Segment)? == 0 {
        return match replace {
            Some(if_match) => segments::replace(ctx, actor, env, segment, if_match),
            None => segments::create(ctx, actor, env, segment),
        }
        .map(Gated::Done);
    }
    let proposed = match replace {
        Some(if_match) => segments::prepare_replace(ctx, env, segment, if_match)?.0,
        None => segments::prepare_create(ctx, env, segment)?,
    };
    let target = Target::Segment(&proposed.key);
    let body = serde_json::to_value(&proposed).unwrap_or_default();
    open(ctx, actor, env, target, RequestKind::Segment, body, reason)
        .map(|held| Gated::Held(Box::new(held)))
}

/// `DELETE .../segments/{key}`: applied now, or held where `env` requires approval.
pub fn delete_segment(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    key: &str,
    reason: Option<&str>,
) -> Result<Gated<Segment>, ApiError> {
    if required(ctx, env, RequestKind::SegmentDelete)? == 0 {
        return segments::delete(ctx, actor, env, key).map(Gated::Done);
    }
    if !ctx.snapshot(env)?.segments.contains_key(key) {
        return Err(ApiError::NotFound(format!("no segment `{key}` in `{env}`")));
    }
    let body = serde_json::json!({ "delete": key });
    let target = Target::Segment(key);
    open(
        ctx,
        actor,
        env,
        target,
        RequestKind::SegmentDelete,
        body,
        reason,
    )
    .map(|held| Gated::Held(Box::new(held)))
}

/// What an approval did.
#[derive(Debug)]
pub struct Approved {
    /// The request after it.
    pub request: ChangeRequest,
    /// The flag changed since the request was based: it is now `stale`, nothing applied.
    pub stale: bool,
}

/// Approves a pending request (its author cannot: 403). With enough approvals it is applied
/// as a write by its author, with If-Match on the base version. `now` is the scheduler's
/// clock (a scheduled change that is due already runs at once).
pub fn approve(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    id: i64,
    now: Millis,
) -> Result<Approved, ApiError> {
    let before = pending(ctx, id)?;
    if before.author == actor {
        return Err(ApiError::Forbidden(format!(
            "`{actor}` asked for change request {id}: someone else must approve it"
        )));
    }
    if before.approvals.iter().any(|a| a.by == actor) {
        return Err(ApiError::Conflict(format!(
            "`{actor}` approved change request {id} already"
        )));
    }
    let mut after = before.clone();
    after.approvals.push(Approval {
        by: actor.to_owned(),
        at: ctx.now.to_owned(),
    });
    if (after.approvals.len() as u32) < after.required_approvals {
        save(ctx, &after)?;
        record(ctx, actor, "change_request.approved", Some(&before), &after)?;
        return Ok(Approved {
            request: after,
            stale: false,
        });
    }
    let target = Target::of(&before);
    let (_, version) = target.base(ctx, &before.environment)?;
    let checked = !matches!(after.kind, RequestKind::Kill | RequestKind::Restore);
    if checked && version != after.base_version {
        after.state = RequestState::Stale;
        after.detail = Some(format!(
            "{} changed since this request was made (now at version {version}, based on {}); nothing was applied",
            target.describe(),
            after.base_version
        ));
        save(ctx, &after)?;
        record(ctx, actor, "change_request.stale", Some(&before), &after)?;
        return Ok(Approved {
            request: after,
            stale: true,
        });
    }
    after.detail = apply(ctx, &after, now)?;
    after.state = RequestState::Applied;
    save(ctx, &after)?;
    record(ctx, actor, "change_request.applied", Some(&before), &after)?;
    Ok(Approved {
        request: after,
        stale: false,
    })
}

/// Applies an approved request as a write by its author, through the endpoint's store path.
fn apply(
    ctx: &mut WriteCtx<'_>,
    request: &ChangeRequest,
    now: Millis,
) -> Result<Option<String>, ApiError> {
    let (author, env, flag) = (
        request.author.as_str(),
        request.environment.as_str(),
        request.flag.as_deref().unwrap_or_default(),
    );
    let reason = request.reason.clone();
    match request.kind {
        RequestKind::FlagConfig => {
            let config: Flag = serde_json::from_value(request.proposed.clone())
                .map_err(|e| ApiError::Internal(format!("corrupt change request: {e}")))?;
            let stored =
                flag_configs::put_config(ctx, author, env, config, Some(request.base_version))?;
            Ok(Some(format!("applied as version {}", stored.version)))
        }
        RequestKind::Kill => {
            let reason = reason.unwrap_or_else(|| format!("change request {}", request.id));
            flag_configs::kill(ctx, author, flag, env, &reason)?;
            Ok(Some("killed".into()))
        }
        RequestKind::Restore => {
            flag_configs::restore(ctx, author, flag, env, reason.as_deref())?;
            Ok(Some("restored".into()))
        }
        RequestKind::Schedule => {
            let at = request
                .proposed
                .get("at")
                .and_then(Value::as_str)
                .and_then(clock::parse_rfc3339)
                .ok_or_else(|| ApiError::Internal("corrupt change request: no `at`".into()))?;
            let change: Change =
                serde_json::from_value(request.proposed.get("change").cloned().unwrap_or_default())
                    .map_err(|e| ApiError::Internal(format!("corrupt change request: {e}")))?;
            let new = NewSchedule { at, change, reason };
            let schedule = schedules::create(ctx, author, flag, env, new, Some(request.id), now)?;
            Ok(Some(format!(
                "scheduled as {} for {}",
                schedule.id, schedule.at
            )))
        }
        RequestKind::Segment => {
            let segment: Segment = serde_json::from_value(request.proposed.clone())
                .map_err(|e| ApiError::Internal(format!("corrupt change request: {e}")))?;
            let stored = match request.base_version {
                0 => segments::create(ctx, author, env, segment)?,
                base => segments::replace(ctx, author, env, segment, Some(base))?,
            };
            Ok(Some(format!("applied as version {}", stored.version)))
        }
        RequestKind::SegmentDelete => {
            let key = request.segment.as_deref().unwrap_or_default();
            segments::delete(ctx, author, env, key)?;
            Ok(Some("deleted".into()))
        }
    }
}

/// Rejects a pending request (a reviewer other than its author, as for approvals).
pub fn reject(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    id: i64,
    reason: Option<&str>,
) -> Result<ChangeRequest, ApiError> {
    let before = pending(ctx, id)?;
    if before.author == actor {
        return Err(ApiError::Forbidden(format!(
            "`{actor}` asked for change request {id}: withdraw it instead (`flag request withdraw {id}`)"
        )));
    }
    close(ctx, actor, before, RequestState::Rejected, reason)
}

/// Withdraws a pending request (its author only: 403 for anyone else).
pub fn withdraw(ctx: &mut WriteCtx<'_>, actor: &str, id: i64) -> Result<ChangeRequest, ApiError> {
    let before = pending(ctx, id)?;
    if before.author != actor {
        return Err(ApiError::Forbidden(format!(
            "only its author `{}` can withdraw change request {id}; reject it instead",
            before.author
        )));
    }
    close(ctx, actor, before, RequestState::Withdrawn, None)
}

fn close(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    before: ChangeRequest,
    state: RequestState,
    reason: Option<&str>,
) -> Result<ChangeRequest, ApiError> {
    let mut after = before.clone();
    after.state = state;
    after.detail = reason.map(|r| format!("{} by `{actor}`: {r}", state_str(state)));
    save(ctx, &after)?;
    let event = match state {
        RequestState::Rejected => "change_request.rejected",
        _ => "change_request.withdrawn",
    };
    record(ctx, actor, event, Some(&before), &after)?;
    Ok(after)
}

/// The request, which must be pending (409 otherwise).
fn pending(ctx: &WriteCtx<'_>, id: i64) -> Result<ChangeRequest, ApiError> {
    let request = get(ctx.conn, id)?;
    if request.state != RequestState::Pending {
        return Err(ApiError::Conflict(format!(
            "change request {id} is {}, no longer pending",
            state_str(request.state)
        )));
    }
    Ok(request)
}

fn save(ctx: &WriteCtx<'_>, request: &ChangeRequest) -> Result<(), ApiError> {
    ctx.conn.execute(
        "UPDATE change_requests SET state = ?2, approvals = ?3, detail = ?4, updated_at = ?5
         WHERE id = ?1",
        params![
            request.id,
            state_str(request.state),
            &to_json(&request.approvals),
            request.detail.as_ref(),
            ctx.now
        ],
    )?;
    Ok(())
}

// Every field of `NewAudit` is given today; the update keeps this compiling when it grows.
#[allow(clippy::needless_update)]
fn record(
    ctx: &WriteCtx<'_>,
    actor: &str,
    event: &str,
    before: Option<&ChangeRequest>,
    after: &ChangeRequest,
) -> Result<(), ApiError> {
    let view = serde_json::to_value(after).ok();
    webhooks::enqueue(
        ctx,
        event,
        &serde_json::json!({
            "flag": after.flag, "segment": after.segment, "environment": after.environment,
            "actor": actor, "change_request": view,
        }),
    )?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: event,
            flag: after.flag.as_deref(),
            segment: after.segment.as_deref(),
            environment: Some(&after.environment),
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: view,
            reason: after.reason.as_deref(),
            ..NewAudit::default()
        },
    )
}

/// The fields that differ between `before` and `after` (the version aside), by JSON path.
pub fn diff(before: &Value, after: &Value) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    walk("", Some(before), Some(after), &mut out);
    out.retain(|d| d.path != "version");
    out
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<DiffEntry>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(&join(key), b.get(key), a.get(key), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if b.len() == a.len() => {
            for (i, (b, a)) in b.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), Some(b), Some(a), out);
            }
        }
        (b, a) if b != a => out.push(DiffEntry {
            path: path.to_owned(),
            before: b.cloned(),
            after: a.cloned(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_each_changed_field_by_path() {
        let before = json!({"version": 3, "enabled": false, "rules": [{"id": "a"}],
                            "fallthrough": {"variation": "off"}});
        let after = json!({"version": 4, "enabled": true, "rules": [{"id": "a"}],
                           "fallthrough": {"variation": "on"}});
        let paths: Vec<String> = diff(&before, &after).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["enabled", "fallthrough.variation"]);
        let grown = diff(&json!({"rules": []}), &json!({"rules": [{"id": "b"}]}));
        assert_eq!(grown[0].path, "rules");
        assert_eq!(grown[0].after, Some(json!([{"id": "b"}])));
    }
}
