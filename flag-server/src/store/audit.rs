//! The audit log: who changed what, when, before/after, and why. Rows are only ever inserted.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::sql::{params, Conn};
use super::{json, to_json, WriteCtx};
use crate::error::ApiError;

/// The largest page `GET /audit` returns.
pub const MAX_LIMIT: u32 = 500;

/// One audit row, as written.
#[derive(Debug, Default)]
pub struct NewAudit<'a> {
    /// The token name that made the change.
    pub actor: &'a str,
    /// What happened, e.g. `flag.kill`.
    pub action: &'a str,
    /// The flag concerned.
    pub flag: Option<&'a str>,
    /// The segment concerned.
    pub segment: Option<&'a str>,
    /// The environment concerned (`None` for changes across environments).
    pub environment: Option<&'a str>,
    /// The state before.
    pub before: Option<Value>,
    /// The state after.
    pub after: Option<Value>,
    /// The reason given.
    pub reason: Option<&'a str>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Increasing id; newer entries have larger ids.
    pub id: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The name of the token that made the change.
    pub actor: String,
    /// What happened: `environment.create`, `flag.create`, `flag.update`, `flag.archive`,
    /// `flag.unarchive`,
    /// `flag.config.update`, `flag.kill`, `flag.restore`, `segment.create`, `segment.update`,
    /// `segment.delete`, `token.create`, `token.revoke`.
    pub action: String,
    /// The flag concerned.
    pub flag: Option<String>,
    /// The segment concerned.
    pub segment: Option<String>,
    /// The environment concerned.
    pub environment: Option<String>,
    /// The state before the change.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The state after the change.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// The reason given with the change.
    pub reason: Option<String>,
}

/// Inserts an audit row inside the caller's transaction (with the next round trip).
pub fn record(ctx: &WriteCtx<'_>, row: NewAudit<'_>) -> Result<(), ApiError> {
    let before = row.before.as_ref().map(to_json);
    let after = row.after.as_ref().map(to_json);
    ctx.conn.defer(
        "INSERT INTO audit (at, actor, action, flag, segment, environment, before, after, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            ctx.now,
            row.actor,
            row.action,
            row.flag,
            row.segment,
            row.environment,
            before.as_ref(),
            after.as_ref(),
            row.reason,
        ],
    )?;
    Ok(())
}

/// Entries matching the filters, newest first, older than `cursor` (an entry id); returns the
/// page and the cursor of the next page.
pub fn list(
    conn: &Conn,
    flag: Option<&str>,
    environment: Option<&str>,
    limit: u32,
    cursor: Option<i64>,
) -> Result<(Vec<AuditEntry>, Option<String>), ApiError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let rows = conn.query_map(
        "SELECT id, at, actor, action, flag, segment, environment, before, after, reason
         FROM audit
         WHERE (CAST(?1 AS TEXT) IS NULL OR flag = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR environment = ?2) AND id < ?3
         ORDER BY id DESC LIMIT ?4",
        params![flag, environment, cursor.unwrap_or(i64::MAX), limit + 1],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<Option<String>>(4)?,
                r.get::<Option<String>>(5)?,
                r.get::<Option<String>>(6)?,
                r.get::<Option<String>>(7)?,
                r.get::<Option<String>>(8)?,
                r.get::<Option<String>>(9)?,
            ))
        },
    )?;
    let mut entries = Vec::with_capacity(rows.len());
    for (id, at, actor, action, flag, segment, environment, before, after, reason) in rows {
        entries.push(AuditEntry {
            id,
            at,
            actor,
            action,
            flag,
            segment,
            environment,
            before: before.as_deref().map(json).transpose()?,
            after: after.as_deref().map(json).transpose()?,
            reason,
        });
    }
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok((entries, next))
}
