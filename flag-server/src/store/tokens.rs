//! API tokens: only the SHA-256 of a secret is stored; the secret is shown once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::sql::{params, Conn};
use super::{Effect, WriteCtx};
use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// The REST API under `/api/v1`.
    Admin,
    /// The SDK endpoints under `/sdk/v1`, for one environment.
    Sdk,
    /// Code on users' devices: OFREP (and the events intake) for one environment, from the
    /// browser origins it lists; never rules, segments or targets.
    Client,
    /// An alerting system (Prometheus Alertmanager): it can only post alerts to
    /// `POST /api/v1/integrations/alertmanager`.
    Integration,
}

impl TokenKind {
    /// The kind as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin",
            TokenKind::Sdk => "sdk",
            TokenKind::Client => "client",
            TokenKind::Integration => "integration",
        }
    }

    /// The kind `text` names, if any.
    pub fn parse(text: &str) -> Option<TokenKind> {
        [
            TokenKind::Admin,
            TokenKind::Sdk,
            TokenKind::Client,
            TokenKind::Integration,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }

    /// The kind of a stored row (a kind this build does not know reads as the least
    /// privileged one, a client token).
    fn stored(text: &str) -> TokenKind {
        TokenKind::parse(text).unwrap_or(TokenKind::Client)
    }
}

/// What an admin token may do (`admin` unless created with another scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read everything, change nothing.
    Read,
    /// Read everything; change flags and segments in the token's environments (and flag
    /// definitions when it lists every environment). No tokens, environments or webhooks.
    Write,
    /// Everything, everywhere (the default).
    Admin,
}

impl Scope {
    /// The scope as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// The scope `text` names, if any.
    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|scope| scope.as_str() == text)
    }

    /// The scope of a stored row (one this build does not know reads as `read`).
    fn stored(text: &str) -> Scope {
        Scope::parse(text).unwrap_or(Scope::Read)
    }
}

/// A client token's browser origins, as stored (a JSON array; `NULL` for other kinds).
fn origins_column(origins: &[String]) -> Option<String> {
    (!origins.is_empty()).then(|| serde_json::to_string(origins).unwrap_or_default())
}

fn read_origins(column: Option<String>) -> Vec<String> {
    column
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// An active token as the authenticator holds it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// The token's id.
    pub id: i64,
    /// Its name (what the audit log shows).
    pub name: String,
    /// Admin or SDK.
    pub kind: TokenKind,
    /// The environment an SDK or client token is bound to.
    pub environment: Option<String>,
    /// The browser origins a client token answers (CORS).
    pub origins: Vec<String>,
    /// What an admin token may do.
    pub scope: Scope,
    /// The environments a `write` token may change.
    pub scope_environments: Vec<String>,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TokenInfo {
    /// The token's id (for `DELETE /tokens/{id}`).
    pub id: i64,
    /// Admin or SDK.
    pub kind: TokenKind,
    /// The environment an SDK or client token is bound to (`null` for admin tokens).
    pub environment: Option<String>,
    /// Its name.
    pub name: String,
    /// The browser origins of a client token (absent for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    /// What an admin token may do (absent for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The environments a `write` token may change (absent for other scopes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// The scope columns of a token as the API shows them: a scope for admin tokens, and the
/// environments of a `write` one.
fn shown_scope(
    kind: TokenKind,
    scope: Scope,
    environments: Vec<String>,
) -> (Option<Scope>, Option<Vec<String>>) {
    match (kind, scope) {
        (TokenKind::Admin, Scope::Write) => (Some(scope), Some(environments)),
        (TokenKind::Admin, scope) => (Some(scope), None),
        _ => (None, None),
    }
}

/// Every token that is not revoked.
pub fn load_active(conn: &Conn) -> anyhow::Result<Vec<TokenRecord>> {
    let rows = conn.query_map(
        "SELECT id, name, kind, environment, hash, origins, scope, scope_environments
         FROM tokens WHERE revoked_at IS NULL",
        params![],
        |r| {
            Ok((
                (
                    r.get::<i64>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                    r.get::<Option<String>>(3)?,
                    r.get::<Vec<u8>>(4)?,
                    r.get::<Option<String>>(5)?,
                ),
                (r.get::<String>(6)?, r.get::<Option<String>>(7)?),
            ))
        },
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for ((id, name, kind, environment, hash, origins), (scope, scope_environments)) in rows {
        let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
            continue;
        };
        out.push(TokenRecord {
            id,
            name,
            kind: TokenKind::stored(&kind),
            environment,
            origins: read_origins(origins),
            scope: Scope::stored(&scope),
            scope_environments: read_origins(scope_environments),
            hash,
        });
    }
    Ok(out)
}

/// Every active token, by id.
pub fn list(conn: &Conn) -> Result<Vec<TokenInfo>, ApiError> {
    Ok(conn.query_map(
        "SELECT id, kind, environment, name, created_at, origins, scope, scope_environments
         FROM tokens WHERE revoked_at IS NULL ORDER BY id",
        params![],
        |r| {
            let kind = TokenKind::stored(&r.get::<String>(1)?);
            let (scope, environments) = shown_scope(
                kind,
                Scope::stored(&r.get::<String>(6)?),
                read_origins(r.get(7)?),
            );
            Ok(TokenInfo {
                id: r.get(0)?,
                kind,
                environment: r.get(2)?,
                name: r.get(3)?,
                origins: (kind == TokenKind::Client).then(|| read_origins(r.get(5).ok().flatten())),
                scope,
                environments,
                created_at: r.get(4)?,
            })
        },
    )?)
}

/// What a new token is.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its kind.
    pub kind: TokenKind,
    /// The environment of an SDK or client token.
    pub environment: Option<String>,
    /// Its name.
    pub name: String,
    /// A client token's browser origins.
    pub origins: Vec<String>,
    /// An admin token's scope.
    pub scope: Scope,
    /// The environments of a `write` admin token.
    pub scope_environments: Vec<String>,
}

/// Stores a new token's hash.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    actor: &str,
    token: NewToken,
    hash: [u8; 32],
) -> Result<TokenInfo, ApiError> {
    let NewToken {
        kind,
        environment,
        name,
        origins,
        scope,
        scope_environments,
    } = token;
    let name = name.as_str();
    if let Some(env) = &environment {
        ctx.snapshot(env)
            .map_err(|_| ApiError::invalid("environment", format!("no environment `{env}`")))?;
    }
    for (i, env) in scope_environments.iter().enumerate() {
        ctx.snapshot(env).map_err(|_| {
            ApiError::invalid(
                format!("environments[{i}]"),
                format!("no environment `{env}`"),
            )
        })?;
    }
    let id: i64 = ctx
        .conn
        .query_one(
            "INSERT INTO tokens (name, kind, environment, hash, created_at, origins, scope,
                                 scope_environments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            params![
                name,
                kind.as_str(),
                environment.as_ref(),
                &hash,
                ctx.now,
                origins_column(&origins).as_ref(),
                scope.as_str(),
                origins_column(&scope_environments).as_ref()
            ],
        )?
        .get(0)?;
    let (scope, environments) = shown_scope(kind, scope, scope_environments);
    let info = TokenInfo {
        id,
        kind,
        environment,
        name: name.to_owned(),
        origins: (kind == TokenKind::Client).then_some(origins),
        scope,
        environments,
        created_at: ctx.now.to_owned(),
    };
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "token.create",
            environment: info.environment.as_deref(),
            after: audit::text(&info),
            ..NewAudit::default()
        },
    );
    ctx.emit(Effect::Tokens);
    Ok(info)
}

/// Revokes a token; 409 for the last admin token (the API would lock itself out).
pub fn revoke(ctx: &mut WriteCtx<'_>, actor: &str, id: i64) -> Result<TokenInfo, ApiError> {
    let info = list(ctx.conn)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no active token {id}")))?;
    if info.kind == TokenKind::Admin && info.scope == Some(Scope::Admin) {
        let admins: i64 = ctx
            .conn
            .query_one(
                "SELECT count(*) FROM tokens
                 WHERE kind = 'admin' AND scope = 'admin' AND revoked_at IS NULL",
                params![],
            )?
            .get(0)?;
        if admins <= 1 {
            return Err(ApiError::Conflict(
                "refusing to revoke the last admin token".into(),
            ));
        }
    }
    ctx.conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1",
        params![id, ctx.now],
    )?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "token.revoke",
            environment: info.environment.as_deref(),
            before: audit::text(&info),
            ..NewAudit::default()
        },
    );
    ctx.emit(Effect::Tokens);
    Ok(info)
}

/// At start: makes `secret` (FLAG_ADMIN_TOKEN) an active admin token named `bootstrap`; with
/// no secret and no active admin token, creates one and returns its secret to print once.
///
/// A created token stays *pending* until [`shown`] records that a start printed it and came
/// up. Every start first deletes the pending tokens: one from a start that failed before it
/// showed its token is replaced, so the next start prints a token again and nobody is locked
/// out by a secret that was never shown.
pub(crate) fn bootstrap(conn: &Conn, secret: Option<&str>) -> anyhow::Result<Option<String>> {
    let now = crate::clock::now_rfc3339();
    if let Some(secret) = secret {
        let hash = crate::auth::hash(secret);
        conn.execute(
            "DELETE FROM tokens WHERE pending = 1 AND hash <> ?1",
            params![&hash],
        )?;
        let existing = conn
            .query_opt("SELECT id FROM tokens WHERE hash = ?1", params![&hash])?
            .map(|r| r.get::<i64>(0))
            .transpose()?;
        match existing {
            Some(id) => {
                conn.execute(
                    "UPDATE tokens SET revoked_at = NULL, kind = 'admin', environment = NULL,
                     scope = 'admin', scope_environments = NULL, pending = 0 WHERE id = ?1",
                    params![id],
                )?;
            }
            None => {
                conn.execute(
                    "INSERT INTO tokens (name, kind, environment, hash, created_at)
                     VALUES ('bootstrap', 'admin', NULL, ?1, ?2)",
                    params![&hash, &now],
                )?;
            }
        }
        return Ok(None);
    }
    conn.execute("DELETE FROM tokens WHERE pending = 1", params![])?;
    let admins: i64 = conn
        .query_one(
            "SELECT count(*) FROM tokens
             WHERE kind = 'admin' AND scope = 'admin' AND revoked_at IS NULL",
            params![],
        )?
        .get(0)?;
    if admins > 0 {
        return Ok(None);
    }
    let secret = crate::auth::new_secret();
    conn.execute(
        "INSERT INTO tokens (name, kind, environment, hash, created_at, pending)
         VALUES ('bootstrap', 'admin', NULL, ?1, ?2, 1)",
        params![&crate::auth::hash(&secret), &now],
    )?;
    Ok(Some(secret))
}

/// Records that the admin token `bootstrap` created has been shown: it is kept from now on.
pub(crate) fn shown(conn: &Conn, secret: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE tokens SET pending = 0 WHERE hash = ?1",
        params![&crate::auth::hash(secret)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Conn {
        let conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        super::super::migrations::migrate(&conn).unwrap();
        conn
    }

    fn admins(conn: &Conn) -> Vec<(String, bool)> {
        conn.query_map(
            "SELECT hash, pending FROM tokens WHERE kind = 'admin' ORDER BY id",
            params![],
            |r| Ok((hex::encode_upper(r.get::<Vec<u8>>(0)?), r.get(1)?)),
        )
        .unwrap()
    }

    fn hash_hex(secret: &str) -> String {
        hex::encode_upper(crate::auth::hash(secret))
    }

    #[test]
    fn a_token_from_before_scopes_is_an_admin_scope_token() {
        let conn = database();
        // What a server of the version before scopes wrote: no scope columns given.
        conn.execute(
            "INSERT INTO tokens (name, kind, environment, hash, created_at)
             VALUES ('ops', 'admin', NULL, ?1, '2026-01-01T00:00:00Z')",
            params![&crate::auth::hash("old")],
        )
        .unwrap();
        let loaded = load_active(&conn).unwrap();
        assert_eq!(
            (loaded[0].scope, loaded[0].scope_environments.len()),
            (Scope::Admin, 0)
        );
        assert_eq!(list(&conn).unwrap()[0].scope, Some(Scope::Admin));
    }

    #[test]
    fn a_token_never_shown_is_replaced_at_the_next_start_and_kept_once_shown() {
        let conn = database();
        let first = bootstrap(&conn, None).unwrap().expect("a token is created");
        assert_eq!(admins(&conn), [(hash_hex(&first), true)]);
        // That start failed before showing it: the next one replaces it.
        let second = bootstrap(&conn, None)
            .unwrap()
            .expect("another token is created");
        assert_ne!(first, second);
        assert_eq!(admins(&conn), [(hash_hex(&second), true)]);
        shown(&conn, &second).unwrap();
        assert_eq!(bootstrap(&conn, None).unwrap(), None);
        assert_eq!(admins(&conn), [(hash_hex(&second), false)]);
    }

    #[test]
    fn a_given_admin_token_drops_the_pending_ones_but_keeps_itself() {
        let conn = database();
        let unseen = bootstrap(&conn, None).unwrap().unwrap();
        assert_eq!(bootstrap(&conn, Some("from-the-env")).unwrap(), None);
        assert_eq!(admins(&conn), [(hash_hex("from-the-env"), false)]);
        // The printed secret given back as FLAG_ADMIN_TOKEN is kept, no longer pending.
        let conn = database();
        let printed = bootstrap(&conn, None).unwrap().unwrap();
        assert_ne!(printed, unseen);
        bootstrap(&conn, Some(&printed)).unwrap();
        assert_eq!(admins(&conn), [(hash_hex(&printed), false)]);
    }
}
