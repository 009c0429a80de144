//! Segments of one environment: create, replace, delete (refused while in use).

use flag_sdk::validate::validate_segment_in;
use flag_sdk::{Change, Clause, Op, Segment};

use super::audit::{self, NewAudit};
use super::sql::{params, Conn};
use super::{to_json, Effect, WriteCtx};
use crate::error::ApiError;

/// Every segment, by environment.
pub fn all(conn: &Conn) -> anyhow::Result<Vec<(String, Segment)>> {
    let rows = conn.query_map("SELECT environment, config FROM segments", params![], |r| {
        Ok((r.get::<String>(0)?, r.get::<String>(1)?))
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for (env, config) in rows {
        out.push((env, serde_json::from_str(&config)?));
    }
    Ok(out)
}

fn save(ctx: &mut WriteCtx<'_>, env: &str, segment: &Segment) -> Result<(), ApiError> {
    let json = to_json(segment);
    ctx.conn.execute(
        "INSERT INTO segments (environment, key, version, config) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (environment, key) DO UPDATE SET version = ?3, config = ?4",
        params![env, &segment.key, segment.version as i64, &json],
    )?;
    let revision = ctx.bump_revision(env)?;
    let change = Change::Segment {
        revision,
        segment: segment.clone(),
    };
    ctx.emit(Effect::change(env, change, Some(json)));
    Ok(())
}

/// Creates a segment; 409 when the key exists.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    segment: Segment,
    reason: Option<&str>,
) -> Result<Segment, ApiError> {
    let segment = prepare_create(ctx, env, segment)?;
    save(ctx, env, &segment)?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "segment.create",
            segment: Some(&segment.key),
            environment: Some(env),
            after: audit::text(&segment),
            reason,
            ..NewAudit::default()
        },
    );
    Ok(segment)
}

/// Checks a new segment as [`create`] would, writing nothing: the segment as it would be
/// stored (a change request checks its proposal here before holding it).
pub(crate) fn prepare_create(
    ctx: &WriteCtx<'_>,
    env: &str,
    mut segment: Segment,
) -> Result<Segment, ApiError> {
    let snapshot = ctx.snapshot(env)?;
    segment.version = 1;
    validate_segment_in(&segment, snapshot)?;
    if snapshot.segments.contains_key(&segment.key) {
        return Err(ApiError::Conflict(format!(
            "segment `{}` already exists in `{env}`",
            segment.key
        )));
    }
    Ok(segment)
}

/// Replaces a segment; 404 when missing, 412 on a stale `if_match`.
pub fn replace(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    segment: Segment,
    if_match: Option<u64>,
    reason: Option<&str>,
) -> Result<Segment, ApiError> {
    let (segment, before) = prepare_replace(ctx, env, segment, if_match)?;
    save(ctx, env, &segment)?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "segment.update",
            segment: Some(&segment.key),
            environment: Some(env),
            before: audit::text(&before),
            after: audit::text(&segment),
            reason,
            ..NewAudit::default()
        },
    );
    Ok(segment)
}

/// Checks a replacement as [`replace`] would, writing nothing: the segment as it would be
/// stored and the current one.
pub(crate) fn prepare_replace(
    ctx: &WriteCtx<'_>,
    env: &str,
    mut segment: Segment,
    if_match: Option<u64>,
) -> Result<(Segment, Segment), ApiError> {
    let snapshot = ctx.snapshot(env)?;
    let Some(before) = snapshot.segments.get(&segment.key).cloned() else {
        return Err(ApiError::NotFound(format!(
            "no segment `{}` in `{env}`",
            segment.key
        )));
    };
    if let Some(expected) = if_match {
        if expected != before.version {
            return Err(ApiError::PreconditionFailed(format!(
                "segment `{}` is at version {}, not {expected}",
                segment.key, before.version
            )));
        }
    }
    segment.version = before.version + 1;
    validate_segment_in(&segment, snapshot)?;
    Ok((segment, before))
}

/// Deletes a segment; 409 while a flag or another segment names it.
pub fn delete(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    env: &str,
    key: &str,
    reason: Option<&str>,
) -> Result<Segment, ApiError> {
    let snapshot = ctx.snapshot(env)?;
    let Some(before) = snapshot.segments.get(key).cloned() else {
        return Err(ApiError::NotFound(format!("no segment `{key}` in `{env}`")));
    };
    let mut users = Vec::new();
    for flag in snapshot.flags.values() {
        let clauses: Vec<&Clause> = flag.rules.iter().flat_map(|r| &r.clauses).collect();
        if names_segment(&clauses, key) {
            users.push(format!("flag `{}`", flag.key));
        }
    }
    for other in snapshot.segments.values() {
        let clauses: Vec<&Clause> = other.rules.iter().flat_map(|r| &r.clauses).collect();
        if other.key != key && names_segment(&clauses, key) {
            users.push(format!("segment `{}`", other.key));
        }
    }
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "segment `{key}` is used by {}",
            users.join(", ")
        )));
    }
    ctx.conn.execute(
        "DELETE FROM segments WHERE environment = ?1 AND key = ?2",
        params![env, key],
    )?;
    let revision = ctx.bump_revision(env)?;
    let change = Change::SegmentDeleted {
        revision,
        key: key.to_owned(),
    };
    ctx.emit(Effect::change(env, change, None));
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "segment.delete",
            segment: Some(key),
            environment: Some(env),
            before: audit::text(&before),
            reason,
            ..NewAudit::default()
        },
    );
    Ok(before)
}

/// Whether any of `clauses` (of flags or segments) names segment `key` (`in_segment`).
fn names_segment(clauses: &[&Clause], key: &str) -> bool {
    clauses
        .iter()
        .any(|c| c.op == Op::InSegment && c.values.iter().any(|v| v.as_str() == Some(key)))
}
