//! Embedded, versioned schema migrations, tracked in `PRAGMA user_version`.

use anyhow::{bail, Context as _};
use rusqlite::Connection;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE environments (
    key        TEXT PRIMARY KEY,
    revision   INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE flags (
    key         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT,
    description TEXT,
    tags        TEXT NOT NULL,
    variations  TEXT NOT NULL,
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE flag_configs (
    flag        TEXT NOT NULL REFERENCES flags(key),
    environment TEXT NOT NULL REFERENCES environments(key),
    version     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    pre_kill    TEXT,
    PRIMARY KEY (flag, environment)
) WITHOUT ROWID;
CREATE TABLE segments (
    environment TEXT NOT NULL REFERENCES environments(key),
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    PRIMARY KEY (environment, key)
) WITHOUT ROWID;
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'sdk')),
    environment TEXT REFERENCES environments(key),
    hash        BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    flag        TEXT,
    segment     TEXT,
    environment TEXT,
    before      TEXT,
    after       TEXT,
    reason      TEXT
);
CREATE INDEX audit_by_flag ON audit (flag, id);
CREATE INDEX audit_by_environment ON audit (environment, id);
INSERT INTO environments (key, revision, created_at)
    VALUES ('production', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
"#,
    r#"
CREATE TABLE releases (
    flag        TEXT NOT NULL REFERENCES flags(key),
    environment TEXT NOT NULL REFERENCES environments(key),
    state       TEXT NOT NULL,
    next_at     INTEGER,
    body        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (flag, environment)
) WITHOUT ROWID;
CREATE INDEX releases_due ON releases (next_at) WHERE next_at IS NOT NULL;
CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks(id),
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'pending',
    last_error      TEXT,
    response_status INTEGER,
    next_at         INTEGER,
    delivered_at    TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE next_at IS NOT NULL;
"#,
    // An admin token created at a start that has not shown it yet (see `tokens::bootstrap`).
    r#"
ALTER TABLE tokens ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`]; refuses a database from a newer build.
pub fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        bail!(
            "the database has schema version {current}, but this flag-server only knows versions up to \
             {SCHEMA_VERSION}; it was written by a newer flag-server. Upgrade flag-server or use another --db"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {} failed", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
