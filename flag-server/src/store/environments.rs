//! Environments: create one (with every live flag's default configuration) and list them.

use flag_sdk::validate::check_key;
use flag_sdk::{Flag, Snapshot};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::sql::{self, params, Conn};
use super::{flag_configs, flags, Effect, WriteCtx};
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
        "SELECT key, revision, created_at FROM environments ORDER BY key",
        params![],
        |r| {
            Ok(Environment {
                key: r.get(0)?,
                revision: r.get::<i64>(1)? as u64,
                created_at: r.get(2)?,
            })
        },
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
        flag_configs::insert_config(ctx.conn, key, &config)?;
        snapshot.flags.insert(config.key.clone(), config);
    }
    let env = Environment {
        key: key.to_owned(),
        revision: 1,
        created_at: ctx.now.to_owned(),
    };
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "environment.create",
            environment: Some(key),
            after: serde_json::to_value(&env).ok(),
            ..NewAudit::default()
        },
    )?;
    ctx.emit(Effect::Environment(snapshot))?;
    Ok(env)
}
