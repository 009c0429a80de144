//! Embedded, versioned schema migrations for both backends, written once in SQLite's words
//! ([`postgres_ddl`] says the few differences), except where the two cannot share a statement
//! ([`Migration::Split`]: changing a `CHECK` means rebuilding the table on SQLite, one
//! `ALTER TABLE` on PostgreSQL). The version is tracked in `PRAGMA
//! user_version` on SQLite and in the table `schema_version` on PostgreSQL, where an advisory
//! lock held by the migrating transaction makes replicas that start together migrate one
//! after the other (the later ones find nothing to do).

use anyhow::{bail, Context as _};

use super::sql::{params, Backend, Conn};

/// One migration.
enum Migration {
    /// The same SQL on both backends (in SQLite's words).
    Both(&'static str),
    /// Different SQL per backend.
    Split {
        sqlite: &'static str,
        postgres: &'static str,
    },
}
use Migration::{Both, Split};

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Both(
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
    ),
    Both(
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
    ),
    // An admin token created at a start that has not shown it yet (see `tokens::bootstrap`).
    Both(
        r#"
ALTER TABLE tokens ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
"#,
    ),
    // The committed change log (`log.rs`): every effect of a write, in the write's transaction.
    Both(
        r#"
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY,
    environment TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    data        TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX changes_by_environment ON changes (environment, revision);
"#,
    ),
    // Client tokens (OFREP from users' devices) and the browser origins they answer.
    Split {
        sqlite: r#"
CREATE TABLE tokens_new (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'sdk', 'client')),
    environment TEXT REFERENCES environments(key),
    hash        BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    pending     INTEGER NOT NULL DEFAULT 0,
    origins     TEXT
);
INSERT INTO tokens_new (id, name, kind, environment, hash, created_at, revoked_at, pending)
    SELECT id, name, kind, environment, hash, created_at, revoked_at, pending FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
"#,
        postgres: r#"
ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check CHECK (kind IN ('admin', 'sdk', 'client'));
ALTER TABLE tokens ADD COLUMN origins TEXT;
"#,
    },
    // Alertmanager (issue 15): integration tokens, alert bindings, the alert occurrences
    // already acted on (idempotency across repeats, restarts and replicas), and the audit
    // log's time in Unix milliseconds (queries by time, dashboard annotations).
    Split {
        sqlite: r#"
CREATE TABLE tokens_new (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('admin', 'sdk', 'client', 'integration')),
    environment TEXT REFERENCES environments(key),
    hash        BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    pending     INTEGER NOT NULL DEFAULT 0,
    origins     TEXT
);
INSERT INTO tokens_new (id, name, kind, environment, hash, created_at, revoked_at, pending, origins)
    SELECT id, name, kind, environment, hash, created_at, revoked_at, pending, origins FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
CREATE TABLE alert_bindings (
    id         INTEGER PRIMARY KEY,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE alert_occurrences (
    binding_id  INTEGER NOT NULL REFERENCES alert_bindings(id),
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    flag        TEXT NOT NULL,
    environment TEXT NOT NULL,
    fired_at    TEXT,
    acted_version INTEGER,
    resolved_at TEXT,
    PRIMARY KEY (binding_id, fingerprint, starts_at)
);
ALTER TABLE audit ADD COLUMN at_ms INTEGER;
UPDATE audit SET at_ms = CAST(ROUND((julianday(at) - 2440587.5) * 86400000) AS INTEGER);
CREATE INDEX audit_by_time ON audit (at_ms);
"#,
        postgres: r#"
ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check
    CHECK (kind IN ('admin', 'sdk', 'client', 'integration'));
CREATE TABLE alert_bindings (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE alert_occurrences (
    binding_id  BIGINT NOT NULL REFERENCES alert_bindings(id),
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    flag        TEXT NOT NULL,
    environment TEXT NOT NULL,
    fired_at    TEXT,
    acted_version BIGINT,
    resolved_at TEXT,
    PRIMARY KEY (binding_id, fingerprint, starts_at)
);
ALTER TABLE audit ADD COLUMN at_ms BIGINT;
UPDATE audit SET at_ms = (EXTRACT(EPOCH FROM at::timestamptz) * 1000)::BIGINT;
CREATE INDEX audit_by_time ON audit (at_ms);
"#,
    },
    // Scheduled changes, change requests and the approvals an environment requires, and the
    // scope of admin tokens (existing ones keep doing everything: `admin`).
    Both(
        r#"
ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE tokens ADD COLUMN scope_environments TEXT;
ALTER TABLE environments ADD COLUMN approvals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN approvals_for_kill INTEGER NOT NULL DEFAULT 0;
CREATE TABLE schedules (
    id             INTEGER PRIMARY KEY,
    flag           TEXT NOT NULL,
    environment    TEXT NOT NULL REFERENCES environments(key),
    at             INTEGER NOT NULL,
    change         TEXT NOT NULL,
    reason         TEXT,
    author         TEXT NOT NULL,
    base_version   INTEGER NOT NULL,
    state          TEXT NOT NULL,
    detail         TEXT,
    late_ms        INTEGER,
    change_request INTEGER,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX schedules_due ON schedules (at) WHERE state = 'pending';
CREATE TABLE change_requests (
    id           INTEGER PRIMARY KEY,
    environment  TEXT NOT NULL REFERENCES environments(key),
    flag         TEXT,
    segment      TEXT,
    kind         TEXT NOT NULL,
    proposed     TEXT NOT NULL,
    base         TEXT NOT NULL,
    base_version INTEGER NOT NULL,
    reason       TEXT,
    author       TEXT NOT NULL,
    required     INTEGER NOT NULL,
    approvals    TEXT NOT NULL,
    state        TEXT NOT NULL,
    detail       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX change_requests_by_state ON change_requests (state, environment);
"#,
    ),
    // Each flag's last change per environment (the metrics gauge) by an index seek instead of
    // a scan of the whole audit log; and on PostgreSQL, the audit time in milliseconds for
    // rows an older replica still writes without it during a rolling upgrade.
    Split {
        sqlite: r#"
CREATE INDEX audit_last_change ON audit (flag, environment, at_ms);
"#,
        postgres: r#"
CREATE INDEX audit_last_change ON audit (flag, environment, at_ms);
CREATE FUNCTION audit_at_ms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.at_ms IS NULL THEN
        NEW.at_ms := (EXTRACT(EPOCH FROM NEW.at::timestamptz) * 1000)::BIGINT;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_at_ms BEFORE INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_at_ms();
UPDATE audit SET at_ms = (EXTRACT(EPOCH FROM at::timestamptz) * 1000)::BIGINT
    WHERE at_ms IS NULL;
"#,
    },
    // Each flag's last change per environment kept on its configuration row, set by the
    // change's own write, instead of read from an index of the audit log: that index took a
    // leaf page per changed flag from every commit (a write storm over 8 flags ran at 0.8×
    // with it). Filled from the audit rows of configuration writes.
    Both(
        r#"
ALTER TABLE flag_configs ADD COLUMN changed_ms BIGINT;
UPDATE flag_configs SET changed_ms = (
    SELECT max(a.at_ms) FROM audit a
    WHERE a.flag = flag_configs.flag AND a.environment = flag_configs.environment
      AND a.action IN ('flag.config.update', 'flag.kill', 'flag.restore'));
DROP INDEX audit_last_change;
"#,
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock a migrating PostgreSQL transaction holds ("flag" 1).
const MIGRATION_LOCK: i64 = 0x666c_6167_0001;

/// Brings the database up to [`SCHEMA_VERSION`]; refuses a database from a newer build.
pub fn migrate(conn: &Conn) -> anyhow::Result<()> {
    conn.batch(match conn.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    })?;
    let result = migrate_in_transaction(conn);
    match &result {
        Ok(()) => conn.batch("COMMIT")?,
        Err(_) => {
            let _ = conn.batch("ROLLBACK");
        }
    }
    result
}

fn migrate_in_transaction(conn: &Conn) -> anyhow::Result<()> {
    let current: i64 = match conn.backend() {
        Backend::Sqlite => conn.query_one("PRAGMA user_version", params![])?.get(0)?,
        Backend::Postgres => {
            conn.query_one("SELECT pg_advisory_xact_lock(?1)", params![MIGRATION_LOCK])?;
            conn.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
            match conn.query_opt("SELECT version FROM schema_version", params![])? {
                Some(row) => row.get(0)?,
                None => {
                    conn.execute("INSERT INTO schema_version (version) VALUES (0)", params![])?;
                    0
                }
            }
        }
    };
    if current > SCHEMA_VERSION {
        bail!(
            "the database has schema version {current}, but this flag-server only knows versions up to \
             {SCHEMA_VERSION}; it was written by a newer flag-server. Upgrade flag-server or use another --db"
        );
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let sql = match (migration, conn.backend()) {
            (Both(sql), Backend::Sqlite) | (Split { sqlite: sql, .. }, Backend::Sqlite) => {
                (*sql).to_owned()
            }
            (Both(sql), Backend::Postgres) => postgres_ddl(sql),
            (Split { postgres, .. }, Backend::Postgres) => (*postgres).to_owned(),
        };
        conn.batch(&sql)
            .with_context(|| format!("migration {} failed", i + 1))?;
    }
    match conn.backend() {
        // PRAGMA takes no parameters; the value is this build's constant.
        Backend::Sqlite => conn.batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?,
        Backend::Postgres => {
            conn.execute(
                "UPDATE schema_version SET version = ?1",
                params![SCHEMA_VERSION],
            )?;
        }
    }
    Ok(())
}

/// A migration in PostgreSQL's words: the only differences the migrations use.
fn postgres_ddl(sql: &str) -> String {
    sql.replace(
        "INTEGER PRIMARY KEY",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    )
    .replace(") WITHOUT ROWID;", ");")
    .replace(" INTEGER", " BIGINT")
    .replace(" BLOB", " BYTEA")
    .replace(" REAL", " DOUBLE PRECISION")
    .replace(
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_database_is_refused_and_an_older_one_migrated() {
        let conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        migrate(&conn).unwrap();
        let version: i64 = conn
            .query_one("PRAGMA user_version", params![])
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        migrate(&conn).unwrap();
        conn.batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .unwrap();
        let err = migrate(&conn).unwrap_err().to_string();
        assert!(err.contains("newer flag-server"), "{err}");
    }

    #[test]
    fn postgres_words_for_the_schema() {
        let Both(first) = MIGRATIONS[0] else {
            panic!("the first migration is shared")
        };
        let ddl = postgres_ddl(first);
        assert!(ddl.contains("id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"));
        assert!(!ddl.contains("WITHOUT ROWID"));
        assert!(!ddl.contains("INTEGER"));
        assert!(ddl.contains("hash        BYTEA NOT NULL UNIQUE"));
        assert!(!ddl.contains("strftime"));
    }
}
