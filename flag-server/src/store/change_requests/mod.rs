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

mod decide;
mod diff;
mod gate;

pub use decide::{approve, reject, withdraw, Approved};
pub use diff::{diff, DiffEntry};
pub use gate::{
    delete_segment, hold, hold_config, kill, put_config, put_segment, restore, schedule,
};

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::sql::{params, Conn, Row};
use super::{flag_configs, json, to_json, WriteCtx};
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

/// The read of every environment's approvals ([`approvals_from_rows`]).
pub(in crate::store) const APPROVALS: &str =
    "SELECT key, approvals, approvals_for_kill FROM environments";

/// Each environment's approvals and whether kills wait for them, from an [`APPROVALS`] read.
pub(in crate::store) fn approvals_from_rows(
    rows: &[Row],
) -> Result<HashMap<String, (u32, bool)>, ApiError> {
    rows.iter()
        .map(|r| {
            let approvals = r.get::<i64>(1)?.max(0) as u32;
            Ok((r.get::<String>(0)?, (approvals, r.get::<bool>(2)?)))
        })
        .collect()
}

/// The approvals `env` requires for a change of `kind` (0: none, apply at once).
fn required(ctx: &WriteCtx<'_>, env: &str, kind: RequestKind) -> Result<u32, ApiError> {
    ctx.snapshot(env)?;
    // Read once per group: an environment created in the group reads them again.
    let cache = &ctx.cache().approvals;
    if !cache.borrow().as_ref().is_some_and(|m| m.contains_key(env)) {
        *cache.borrow_mut() = Some(approvals_from_rows(&ctx.conn.query(APPROVALS, params![])?)?);
    }
    let (approvals, for_kill) = cache
        .borrow()
        .as_ref()
        .and_then(|m| m.get(env).copied())
        .ok_or_else(|| ApiError::NotFound(format!("no environment `{env}`")))?;
    let held = match kind {
        RequestKind::Kill | RequestKind::Restore => for_kill,
        _ => true,
    };
    Ok(if held { approvals } else { 0 })
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
    let row = NewAudit {
        actor,
        action: event,
        flag: after.flag.as_deref(),
        segment: after.segment.as_deref(),
        environment: Some(&after.environment),
        before: before.and_then(audit::text),
        after: audit::text(after),
        reason: after.reason.as_deref(),
        ..NewAudit::default()
    };
    audit::announce(ctx, row, "change_request")
}
