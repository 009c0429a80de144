//! The only code that speaks SQL. One writer connection on its own thread with group commit
//! (`writer`), a small pool of read-only connections used off the async threads, embedded
//! migrations, and one file per table group with typed methods.
//!
//! Every write runs as a closure on the writer thread ([`Store::write`]); it changes the
//! configuration, its version, the environment's revision and the audit row in one
//! transaction, and is answered after COMMIT.

pub mod alerts;
pub mod audit;
pub mod change_requests;
mod checkpoint;
mod effects;
pub mod environments;
pub mod flag_configs;
pub mod flags;
mod health;
mod lease;
mod lock;
mod log;
mod migrations;
pub mod releases;
pub mod schedules;
pub mod segments;
pub mod sql;
pub mod tokens;
pub mod webhooks;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::Context as _;
use flag_sdk::Snapshot;
use rusqlite::{Connection, OpenFlags};

use sql::Conn;

pub use effects::Effect;
pub use lease::{Leadership, TRY_EVERY as LEASE_PERIOD};
pub use lock::DbLock;
pub use migrations::SCHEMA_VERSION;
pub use writer::{WriteCtx, WRITE_LOCK};

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::snapshots::Snapshots;
use crate::stream::Broadcaster;

/// Reader connections in the pool.
const READERS: usize = 4;

/// Prepared statements each SQLite connection keeps: more than the store has, so that every
/// statement (they all go through the cache) is prepared once per connection.
const STATEMENT_CACHE: usize = 64;

/// What the writer updates after each COMMIT, in this order: snapshots, tokens, stream.
#[derive(Clone)]
pub(crate) struct Published {
    pub snapshots: Arc<Snapshots>,
    pub tokens: Arc<Tokens>,
    pub broadcaster: Arc<Broadcaster>,
    pub metrics: Arc<Metrics>,
}

/// Where the data lives (`--db`): a SQLite file (the default), or a PostgreSQL database
/// (`postgres://...`) shared by several replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl FromStr for Location {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                Location::Postgres(s.to_owned())
            } else {
                Location::Sqlite(PathBuf::from(s))
            },
        )
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Sqlite(path)
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Self {
        Location::Sqlite(path.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Self {
        Location::Sqlite(path.clone())
    }
}

impl fmt::Display for Location {
    /// The file, or the URL without its password (logs and errors show this).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let user = &url[scheme + 3..at];
                    let user = user.split(':').next().unwrap_or("");
                    write!(f, "{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                }
                _ => f.write_str(url),
            },
        }
    }
}

/// The database: a queue to the writer thread and a pool of readers.
#[derive(Clone)]
pub struct Store {
    jobs: Sender<writer::Msg>,
    readers: Arc<ReadPool>,
    health: Arc<health::Health>,
    /// SQLite's WAL checkpoints run while this lives.
    _checkpoints: Option<Arc<checkpoint::Checkpointer>>,
}

impl Store {
    /// Opens (creating and migrating) the database, loads every snapshot and the tokens into
    /// `published`, and starts the writer thread.
    /// Returns the secret of a newly created admin token when it made one (print it once).
    pub(crate) fn open(
        location: &Location,
        admin_token: Option<&str>,
        published: Published,
    ) -> anyhow::Result<(Store, Option<String>)> {
        let conn = match location {
            Location::Sqlite(path) => open_sqlite_writer(path)?,
            Location::Postgres(url) => {
                let conn = open_postgres(url, location)?;
                migrations::migrate(&conn)
                    .with_context(|| format!("cannot migrate the database {location}"))?;
                conn
            }
        };
        let created =
            tokens::bootstrap(&conn, admin_token).context("cannot set up the admin token")?;
        // Read before the snapshots: a change committed in between is then read again, never
        // missed (applying a change twice is harmless).
        let applied = log::head(&conn).context("cannot read the change log")?;
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
            readers.push(match location {
                Location::Sqlite(path) => open_sqlite_reader(path)?,
                Location::Postgres(url) => open_postgres(url, location)?,
            });
        }
        let (jobs, rx) = channel();
        if let Location::Postgres(url) = location {
            log::listen(url.clone(), jobs.clone()).context("cannot start the change listener")?;
        }
        let checkpoints = match location {
            Location::Sqlite(path) => Some(Arc::new(checkpoint::start(path, jobs.clone())?)),
            Location::Postgres(_) => None,
        };
        let health = Arc::new(health::Health::default());
        let writer_health = health.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(conn, working, applied, rx, published, writer_health))
            .context("cannot start the writer thread")?;
        let store = Store {
            jobs,
            readers: Arc::new(ReadPool {
                idle: Mutex::new(readers),
                available: Condvar::new(),
            }),
            health,
            _checkpoints: checkpoints,
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
            .send(writer::Msg::Write(job))
            .map_err(|_| ApiError::Unavailable("the store is shutting down".into()))?;
        rx.await
            .map_err(|_| ApiError::Unavailable("the write was not applied".into()))?
    }

    /// The detail of the storage fault (disk full, read-only, I/O) that made the last write
    /// fail, while no write has succeeded since. [`WriteCtx::probe`] in a write tries again.
    pub fn write_fault(&self) -> Option<String> {
        self.health.fault()
    }

    /// `environment`'s changes after revision `after` up to `upto`, as the stream carries
    /// them, read from the change log; `None` when the log no longer holds them all (see
    /// `log::between`).
    pub async fn changes(
        &self,
        environment: String,
        after: u64,
        upto: u64,
    ) -> Result<Option<Vec<flag_sdk::Change>>, ApiError> {
        self.read(move |conn| Ok(log::between(conn, &environment, after, upto)?))
            .await
    }

    /// Runs `f` on a reader connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, ApiError> + Send + 'static,
    {
        let readers = self.readers.clone();
        actix_web::web::block(move || readers.with(f))
            .await
            .map_err(|e| ApiError::Internal(format!("blocking pool: {e}")))?
    }
}

/// A fixed set of read-only connections.
struct ReadPool {
    idle: Mutex<Vec<Conn>>,
    available: Condvar,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Conn) -> T) -> T {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(c) = idle.pop() {
                    break c;
                }
                idle = self.available.wait(idle).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A reader whose session PostgreSQL ended connects again (if it cannot, `f` fails
        // with the unreachable database's 503).
        let _ = conn.reconnect_if_closed();
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

/// Opens the SQLite file as the writer: WAL (checkpointed by [`checkpoint`], not by the
/// commits), `synchronous = FULL`, foreign keys, a busy timeout, and the schema migrated to
/// [`SCHEMA_VERSION`].
fn open_sqlite_writer(path: &Path) -> anyhow::Result<Conn> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA journal_size_limit = {};",
        checkpoint::WAL_SIZE_LIMIT
    ))
    .context("cannot configure the database")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let conn = Conn::sqlite(conn);
    migrations::migrate(&conn)
        .with_context(|| format!("cannot migrate the database {}", path.display()))?;
    Ok(conn)
}

/// Connects to PostgreSQL; the error names the database (without its password).
fn open_postgres(url: &str, location: &Location) -> anyhow::Result<Conn> {
    Conn::connect_postgres(url)
        .with_context(|| format!("cannot connect to the database {location}"))
}

/// Opens a read-only connection to the SQLite file for the reader pool.
fn open_sqlite_reader(path: &Path) -> anyhow::Result<Conn> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(Conn::sqlite(conn))
}

/// Every environment's snapshot as committed.
pub(crate) fn load_snapshots(conn: &Conn) -> anyhow::Result<HashMap<String, Snapshot>> {
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

/// Parses a JSON column written by this store.
pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Internal(format!("corrupt JSON column: {e}")))
}

/// Serializes a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
