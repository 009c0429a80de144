//! The only code that speaks SQL. One writer connection on its own thread with group commit
//! (`writer`), a small pool of read-only connections used off the async threads, embedded
//! migrations, and one file per table group with typed methods.
//!
//! Every write runs as a closure on the writer thread ([`Store::write`]); it changes the
//! configuration, its version, the environment's revision and the audit row in one
//! transaction, and is answered after COMMIT.

pub mod audit;
mod effects;
pub mod environments;
pub mod flag_configs;
pub mod flags;
mod health;
mod lock;
mod migrations;
pub mod releases;
pub mod segments;
pub mod tokens;
pub mod webhooks;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::Context as _;
use flag_sdk::Snapshot;
use rusqlite::{Connection, OpenFlags};
use time::format_description::well_known::Rfc3339;

pub use effects::Effect;
pub use lock::DbLock;
pub use migrations::SCHEMA_VERSION;
pub use writer::WriteCtx;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::snapshots::Snapshots;
use crate::stream::Broadcaster;

/// Reader connections in the pool.
const READERS: usize = 4;

/// What the writer updates after each COMMIT, in this order: snapshots, tokens, stream.
#[derive(Clone)]
pub(crate) struct Published {
    pub snapshots: Arc<Snapshots>,
    pub tokens: Arc<Tokens>,
    pub broadcaster: Arc<Broadcaster>,
    pub metrics: Arc<Metrics>,
}

/// The database: a queue to the writer thread and a pool of readers.
#[derive(Clone)]
pub struct Store {
    jobs: Sender<writer::Job>,
    readers: Arc<ReadPool>,
    health: Arc<health::Health>,
}

impl Store {
    /// Opens (creating and migrating) the database, loads every snapshot and the tokens into
    /// `published`, and starts the writer thread.
    /// Returns the secret of a newly created admin token when it made one (print it once).
    pub(crate) fn open(
        path: &Path,
        admin_token: Option<&str>,
        published: Published,
    ) -> anyhow::Result<(Store, Option<String>)> {
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        let mut conn = conn;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA busy_timeout = 5000;",
        )
        .context("cannot configure the database")?;
        migrations::migrate(&mut conn)
            .with_context(|| format!("cannot migrate the database {}", path.display()))?;
        let created =
            tokens::bootstrap(&conn, admin_token).context("cannot set up the admin token")?;
        let working = load_snapshots(&conn).context("cannot load the flags")?;
        let compiled = working
            .values()
            .map(|s| Arc::new(flag_sdk::CompiledSnapshot::new(s.clone())));
        published.snapshots.replace(compiled);
        for s in working.values() {
            published
                .metrics
                .flags
                .with_label_values(&[&s.environment])
                .set(s.flags.len() as i64);
        }
        published
            .tokens
            .replace(tokens::load_active(&conn).context("cannot load the tokens")?);

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
            readers.push(r);
        }
        let (jobs, rx) = channel();
        let health = Arc::new(health::Health::default());
        let writer_health = health.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, working, rx, published, writer_health))
            .context("cannot start the writer thread")?;
        let store = Store {
            jobs,
            readers: Arc::new(ReadPool {
                idle: Mutex::new(readers),
                available: Condvar::new(),
            }),
            health,
        };
        Ok((store, created))
    }

    /// Runs `op` on the writer thread inside the next group commit and answers after COMMIT.
    /// An `Err` from `op` rolls back everything `op` did (its savepoint) and nothing else.
    pub async fn write<T, F>(&self, op: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: writer::Job = Box::new(move |ctx| {
            // `None`: the writer will not run it; the reply carries the reason.
            let result = ctx.map(op);
            let outcome = match &result {
                Some(Ok(_)) => writer::Outcome::Done,
                Some(Err(ApiError::Unavailable(detail))) => writer::Outcome::Failed {
                    fault: Some(detail.clone()),
                },
                _ => writer::Outcome::Failed { fault: None },
            };
            let reply: writer::Reply = Box::new(move |failure| {
                let answer = match (result, failure) {
                    (Some(Err(e)), _) | (_, Some(e)) => Err(e),
                    (Some(Ok(v)), None) => Ok(v),
                    (None, None) => Err(ApiError::Unavailable("the write was not applied".into())),
                };
                let _ = tx.send(answer);
            });
            (outcome, reply)
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::Unavailable("the store is shutting down".into()))?;
        rx.await
            .map_err(|_| ApiError::Unavailable("the write was not applied".into()))?
    }

    /// The detail of the storage fault (disk full, read-only, I/O) that made the last write
    /// fail, while no write has succeeded since. [`WriteCtx::probe`] in a write tries again.
    pub fn write_fault(&self) -> Option<String> {
        self.health.fault()
    }

    /// Runs `f` on a reader connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    {
        let readers = self.readers.clone();
        actix_web::web::block(move || readers.with(f))
            .await
            .map_err(|e| ApiError::Internal(format!("blocking pool: {e}")))?
    }
}

/// A fixed set of read-only connections.
struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    available: Condvar,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(c) = idle.pop() {
                    break c;
                }
                idle = self.available.wait(idle).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = catch(|| f(&conn));
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        self.available.notify_one();
        match result {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

fn catch<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// Every environment's snapshot as committed.
pub(crate) fn load_snapshots(conn: &Connection) -> anyhow::Result<HashMap<String, Snapshot>> {
    let mut out = HashMap::new();
    for (key, revision) in environments::revisions(conn)? {
        out.insert(
            key.clone(),
            Snapshot {
                environment: key,
                revision,
                ..Snapshot::default()
            },
        );
    }
    for (env, flag) in flag_configs::live_configs(conn)? {
        if let Some(s) = out.get_mut(&env) {
            s.flags.insert(flag.key.clone(), flag);
        }
    }
    for (env, segment) in segments::all(conn)? {
        if let Some(s) = out.get_mut(&env) {
            s.segments.insert(segment.key.clone(), segment);
        }
    }
    Ok(out)
}

/// Now, RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&Rfc3339).unwrap_or_default()
}

/// Parses a JSON column written by this store.
pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(format!("corrupt JSON column: {e}")))
}

/// Serializes a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
