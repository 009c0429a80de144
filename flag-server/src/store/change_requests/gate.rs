//! The writes an environment may hold for approval: each is applied at once where no approval
//! is required, else checked as the write would be and held as a change request.

use flag_sdk::{Flag, Segment};
use serde_json::Value;

use super::{open, required, ChangeRequest, Gated, RequestKind, Target};
use crate::clock::{self, Millis};
use crate::error::ApiError;
use crate::store::schedules::{self, NewSchedule};
use crate::store::{flag_configs, segments, WriteCtx};

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
    flag_configs::put_config(ctx, actor, env, config, if_match, reason).map(Gated::Done)
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
            Some(if_match) => segments::replace(ctx, actor, env, segment, if_match, reason),
            None => segments::create(ctx, actor, env, segment, reason),
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
        return segments::delete(ctx, actor, env, key, reason).map(Gated::Done);
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
