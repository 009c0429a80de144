//! A reviewer's decision on a pending request: approve (applying it once enough approvals are
//! in, with If-Match on its base version), reject; its author's withdrawal.

use flag_sdk::{Flag, Segment};
use serde_json::Value;

use super::{
    pending, record, save, state_str, Approval, ChangeRequest, RequestKind, RequestState, Target,
};
use crate::clock::{self, Millis};
use crate::error::ApiError;
use crate::store::schedules::{self, Change, NewSchedule};
use crate::store::{flag_configs, segments, WriteCtx};

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
            let stored = flag_configs::put_config(
                ctx,
                author,
                env,
                config,
                Some(request.base_version),
                reason.as_deref(),
            )?;
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
                0 => segments::create(ctx, author, env, segment, reason.as_deref())?,
                base => {
                    segments::replace(ctx, author, env, segment, Some(base), reason.as_deref())?
                }
            };
            Ok(Some(format!("applied as version {}", stored.version)))
        }
        RequestKind::SegmentDelete => {
            let key = request.segment.as_deref().unwrap_or_default();
            segments::delete(ctx, author, env, key, reason.as_deref())?;
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
