//! The audit log: who changed what, when, before/after, and why. Rows are only ever inserted.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::sql::{self, params, Conn, Param};
use super::{json, WriteCtx};
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
    /// The state before, as JSON text ([`text`]).
    pub before: Option<String>,
    /// The state after, as JSON text ([`text`]).
    pub after: Option<String>,
    /// The reason given.
    pub reason: Option<&'a str>,
}

/// A value as the JSON text of an audit row's `before` or `after`.
pub fn text<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value).ok()
}

/// An audit row a request recorded: written with the rest of its group ([`insert`]) when
/// the request succeeds, dropped with it when it fails.
pub(super) struct Pending {
    actor: String,
    action: String,
    flag: Option<String>,
    segment: Option<String>,
    environment: Option<String>,
    before: Option<String>,
    after: Option<String>,
    reason: Option<String>,
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
    /// `segment.delete`, `token.create`, `token.revoke`, `environment.update`, the release
    /// moves (`release.*`), scheduled changes (`schedule.created`, `.applied`, `.failed`,
    /// `.paused`, `.resumed`, `.cancelled`), change requests (`change_request.created`,
    /// `.approved`, `.applied`, `.stale`, `.rejected`, `.withdrawn`), and
    /// `alert_binding.create`, `alert_binding.delete`. An alert's action is the action it took
    /// (`flag.kill`, ...) with the actor `alertmanager:<token name>`.
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

/// An audit row whose action is also a webhook event (`schedule.failed`,
/// `change_request.applied`, ...): queues the event, its body naming the flag or segment,
/// the environment, the actor, the reason and, under `subject`, the row's `after`; then
/// records the row.
pub fn announce(ctx: &WriteCtx<'_>, row: NewAudit<'_>, subject: &str) -> Result<(), ApiError> {
    let mut body = serde_json::json!({
        "flag": row.flag, "segment": row.segment, "environment": row.environment,
        "actor": row.actor, "reason": row.reason,
    });
    body[subject] = row
        .after
        .as_deref()
        .map(json)
        .transpose()?
        .unwrap_or_default();
    super::webhooks::enqueue(ctx, row.action, &body)?;
    record(ctx, row);
    Ok(())
}

/// Records an audit row inside the caller's request: it is written with its group.
pub fn record(ctx: &WriteCtx<'_>, row: NewAudit<'_>) {
    let owned = |s: Option<&str>| s.map(str::to_owned);
    ctx.record_audit(Pending {
        actor: row.actor.to_owned(),
        action: row.action.to_owned(),
        flag: owned(row.flag),
        segment: owned(row.segment),
        environment: owned(row.environment),
        before: row.before,
        after: row.after,
        reason: owned(row.reason),
    });
}

/// Inserts a group's audit rows, in order, at the group's time `now` (RFC 3339), with the
/// next round trip ([`Conn::defer_insert`]).
pub(super) fn insert(conn: &Conn, now: &str, rows: &[Pending]) -> Result<(), sql::Error> {
    let at_ms = crate::clock::parse_rfc3339(now);
    let params: Vec<Param<'_>> = rows
        .iter()
        .flat_map(|r| {
            [
                Param::from(now),
                Param::from(&r.actor),
                Param::from(&r.action),
                Param::from(r.flag.as_ref()),
                Param::from(r.segment.as_ref()),
                Param::from(r.environment.as_ref()),
                Param::from(r.before.as_ref()),
                Param::from(r.after.as_ref()),
                Param::from(r.reason.as_ref()),
                Param::from(at_ms),
            ]
        })
        .collect();
    conn.defer_insert(
        "audit (at, actor, action, flag, segment, environment, before, after, reason, at_ms)",
        10,
        &params,
    )
}

/// Which entries `GET /audit` answers.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Only entries about this flag.
    pub flag: Option<String>,
    /// Only entries in this environment.
    pub environment: Option<String>,
    /// Only entries at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only entries at or before this time (Unix milliseconds).
    pub until: Option<i64>,
}

/// The columns of an [`AuditEntry`], in the order [`entry`] reads them.
const COLUMNS: &str = "id, at, actor, action, flag, segment, environment, before, after, reason";

fn entry(r: &super::sql::Row) -> Result<AuditEntry, ApiError> {
    let text = |i| r.get::<Option<String>>(i);
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        flag: text(4)?,
        segment: text(5)?,
        environment: text(6)?,
        before: text(7)?.as_deref().map(json).transpose()?,
        after: text(8)?.as_deref().map(json).transpose()?,
        reason: text(9)?,
    })
}

/// Entries matching the filters, newest first, older than `cursor` (an entry id); returns the
/// page and the cursor of the next page.
pub fn list(
    conn: &Conn,
    filter: &AuditFilter,
    limit: u32,
    cursor: Option<i64>,
) -> Result<(Vec<AuditEntry>, Option<String>), ApiError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let rows = conn.query_map(
        &format!(
            "SELECT {COLUMNS} FROM audit
             WHERE (CAST(?1 AS TEXT) IS NULL OR flag = ?1)
               AND (CAST(?2 AS TEXT) IS NULL OR environment = ?2) AND id < ?3
               AND (CAST(?5 AS BIGINT) IS NULL OR at_ms >= ?5)
               AND (CAST(?6 AS BIGINT) IS NULL OR at_ms <= ?6)
             ORDER BY id DESC LIMIT ?4"
        ),
        params![
            filter.flag.as_ref(),
            filter.environment.as_ref(),
            cursor.unwrap_or(i64::MAX),
            limit + 1,
            filter.since,
            filter.until
        ],
        |r| Ok(entry(r)),
    )?;
    let mut entries = rows.into_iter().collect::<Result<Vec<_>, _>>()?;
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok((entries, next))
}

/// The entries about a flag in one environment (every flag change, kill, release move and
/// alert action; not the bindings' own rows) within the filter's `since` and `until` (inclusive), oldest first, at most
/// `limit`, each with its time in Unix milliseconds: the dashboard annotations.
pub fn flag_changes(
    conn: &Conn,
    filter: &AuditFilter,
    limit: u32,
) -> Result<Vec<(i64, AuditEntry)>, ApiError> {
    let rows = conn.query_map(
        &format!(
            "SELECT {COLUMNS}, at_ms FROM audit
             WHERE at_ms >= ?1 AND at_ms <= ?2 AND flag IS NOT NULL AND environment IS NOT NULL
               AND action NOT LIKE 'alert_binding.%'
               AND (CAST(?3 AS TEXT) IS NULL OR flag = ?3)
               AND (CAST(?4 AS TEXT) IS NULL OR environment = ?4)
             ORDER BY at_ms, id LIMIT ?5"
        ),
        params![
            filter.since.unwrap_or(i64::MIN),
            filter.until.unwrap_or(i64::MAX),
            filter.flag.as_ref(),
            filter.environment.as_ref(),
            limit
        ],
        |r| Ok(entry(r).and_then(|e| Ok((r.get::<i64>(10)?, e)))),
    )?;
    rows.into_iter().collect()
}
