//! Environments: create one (with every live flag's default configuration) and list them.

use flag_sdk::validate::check_key;
use flag_sdk::{Flag, Snapshot};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::sql::{self, params, Conn};
use super::{flag_configs, flags, to_json, Effect, WriteCtx};
use crate::error::ApiError;

/// An environment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Environment {
    /// The key, e.g. `production`.
    pub key: String,
    /// Bumped by every change of a flag or segment in it.
    pub revision: u64,
    /// When it was created, RFC 3339 UTC.
    pub created_at: String,
    /// Approvals a change needs here (0: none, changes apply at once); with 1 or more a
    /// write creates a change request.
    pub approvals: u32,
    /// Whether kill and restore wait for approvals too (`false`: a responder never waits).
    pub approvals_for_kill: bool,
}

/// `PATCH /environments/{env}`: the settings given change, the others stay.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentPatch {
    /// Approvals a change needs (0 to 10).
    pub approvals: Option<u32>,
    /// Whether kill and restore wait for approvals too.
    pub approvals_for_kill: Option<bool>,
}

const COLUMNS: &str = "key, revision, created_at, approvals, approvals_for_kill";

fn from_row(r: &sql::Row) -> Result<Environment, sql::Error> {
    Ok(Environment {
        key: r.get(0)?,
        revision: r.get::<i64>(1)? as u64,
        created_at: r.get(2)?,
        approvals: r.get::<i64>(3)? as u32,
        approvals_for_kill: r.get(4)?,
    })
}

/// Changes an environment's settings (approvals); 404 when it does not exist.
pub fn configure(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    key: &str,
    patch: EnvironmentPatch,
) -> Result<Environment, ApiError> {
    let mut before = get(ctx.conn, key)?;
    // The row's revision is written with the group: the requests before this one in it may
    // have moved it since.
    before.revision = ctx.snapshot(key)?.revision;
    if patch.approvals.is_some_and(|n| n > 10) {
        return Err(ApiError::invalid("approvals", "must be 0 to 10"));
    }
    let after = Environment {
        approvals: patch.approvals.unwrap_or(before.approvals),
        approvals_for_kill: patch
            .approvals_for_kill
            .unwrap_or(before.approvals_for_kill),
        ..before.clone()
    };
    ctx.conn.execute(
        "UPDATE environments SET approvals = ?2, approvals_for_kill = ?3 WHERE key = ?1",
        params![key, i64::from(after.approvals), after.approvals_for_kill],
    )?;
    ctx.cache().approvals.take();
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "environment.update",
            environment: Some(key),
            before: audit::text(&before),
            after: audit::text(&after),
            ..NewAudit::default()
        },
    );
    Ok(after)
}

fn get(conn: &Conn, key: &str) -> Result<Environment, ApiError> {
    conn.query_opt(
        &format!("SELECT {COLUMNS} FROM environments WHERE key = ?1"),
        params![key],
    )?
    .map(|r| from_row(&r))
    .transpose()?
    .ok_or_else(|| ApiError::NotFound(format!("no environment `{key}`")))
}

/// Every environment's key and revision.
pub fn revisions(conn: &Conn) -> Result<Vec<(String, u64)>, sql::Error> {
    conn.query_map("SELECT key, revision FROM environments", params![], |r| {
        Ok((r.get(0)?, r.get::<i64>(1)? as u64))
    })
}

/// Every environment, by key.
pub fn list(conn: &Conn) -> Result<Vec<Environment>, ApiError> {
    Ok(conn.query_map(
        &format!("SELECT {COLUMNS} FROM environments ORDER BY key"),
        params![],
        from_row,
    )?)
}

/// Creates environment `key` with every live flag in it, disabled (revision 1).
pub fn create(ctx: &mut WriteCtx<'_>, actor: &str, key: &str) -> Result<Environment, ApiError> {
    check_key(key).map_err(|m| ApiError::invalid("key", m))?;
    let exists = ctx
        .conn
        .query_opt("SELECT 1 FROM environments WHERE key = ?1", params![key])?;
    if exists.is_some() {
        return Err(ApiError::Conflict(format!(
            "environment `{key}` already exists"
        )));
    }
    ctx.conn.execute(
        "INSERT INTO environments (key, revision, created_at) VALUES (?1, 1, ?2)",
        params![key, ctx.now],
    )?;
    let mut snapshot = Snapshot {
        environment: key.to_owned(),
        revision: 1,
        ..Snapshot::default()
    };
    for meta in flags::list(ctx.conn, false)? {
        let config: Flag =
            flag_configs::default_config(&meta.key, meta.kind, meta.variations.clone());
        flag_configs::insert_config(ctx.conn, key, &config, &to_json(&config))?;
        snapshot.flags.insert(config.key.clone(), config);
    }
    let env = Environment {
        key: key.to_owned(),
        revision: 1,
        created_at: ctx.now.to_owned(),
        approvals: 0,
        approvals_for_kill: false,
    };
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "environment.create",
            environment: Some(key),
            after: audit::text(&env),
            ..NewAudit::default()
        },
    );
    ctx.emit(Effect::Environment(snapshot));
    Ok(env)
}
