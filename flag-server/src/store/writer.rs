//! The one writer: a dedicated thread owning the writer connection, with group commit.
//!
//! It drains every queued write request, runs them in one transaction, each kept or dropped as
//! a whole (a failing request changes nothing and leaves the others alone: see
//! [`Conn::begin_request`]), COMMITs once (one fsync for the whole group under
//! `synchronous=FULL`), then installs the new snapshots, publishes the changes to the stream,
//! and only then answers the requests.
//!
//! On PostgreSQL a request checks what it writes against the working state in Rust and defers
//! its statements; they go to the server with the group's COMMIT, so a group costs two round
//! trips (BEGIN with the write lock and the log read; the statements with COMMIT) whatever its
//! size. A request that fails before it made a round trip of its own is dropped unsent; one
//! that queried has a savepoint. A deferred statement the database refuses (not a rule the
//! request checked, but a fault) fails the whole group with 503 and saves nothing.
//!
//! Storage faults (disk full, read-only file system, I/O errors) answer 503 and save nothing:
//! a failed COMMIT rolls the whole group back; a request whose statement made SQLite roll the
//! transaction back itself ends the group (every request in it is answered 503, the rest are
//! not run, so nothing runs outside a transaction). Nothing is published for a failed group,
//! and the in-memory state is reloaded from what is committed. [`Health`] remembers the fault
//! until a commit writes again, for `/readyz`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flag_sdk::Snapshot;

use super::effects::{after_commit, apply, Effect};
use super::health::{failure_detail, Health};
use super::sql::{self, params, Backend, Conn};
use super::webhooks::{self, Subscriptions};
use super::Published;
use super::{audit, change_requests, log};
use crate::clock::now_millis;
use crate::error::{storage_fault, ApiError, UNREACHABLE};

/// How many requests one group commit takes at most.
const MAX_BATCH: usize = 512;

/// The longest a group waits for more requests before it commits.
const MAX_GATHER: Duration = Duration::from_millis(5);

/// Decides how many queued requests go into the next group commit.
///
/// It takes every queued request; and when the previous group was larger than what is
/// queued now (concurrent writers whose answers just went out and who are about to send their
/// next request), it waits a little for them: up to the last commit's duration, at most
/// [`MAX_GATHER`]. A lone writer never waits. Fewer, larger commits mean fewer fsyncs: with
/// 8 writers and a 4 ms fsync it took updates from about 820/s to about 1,300/s.
#[derive(Default)]
struct Gather {
    last_size: usize,
    last_commit: Duration,
    /// A [`Msg::Checkpoint`] met while gathering, for after the group.
    checkpoint: bool,
}

impl Gather {
    /// A catch-up wake-up met while gathering is dropped: the group catches up anyway.
    fn collect(&mut self, first: Job, jobs: &Receiver<Msg>) -> Vec<Job> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(Msg::Write(job)) => batch.push(job),
                Ok(Msg::CatchUp) => {}
                Ok(Msg::Checkpoint) => self.checkpoint = true,
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + self.last_commit.min(MAX_GATHER);
        while batch.len() < self.last_size.min(MAX_BATCH) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match jobs.recv_timeout(left) {
                Ok(Msg::Write(job)) => batch.push(job),
                Ok(Msg::CatchUp) => {}
                Ok(Msg::Checkpoint) => self.checkpoint = true,
                Err(_) => break,
            }
        }
        batch
    }

    fn committed(&mut self, size: usize, took: Duration) {
        self.last_size = size;
        self.last_commit = took;
    }
}

/// Answers one request once its group has committed (`Some` = the commit failed).
pub(crate) type Reply = Box<dyn FnOnce(Option<ApiError>) + Send>;

/// What the writer thread is sent.
pub(crate) enum Msg {
    /// A write request.
    Write(Job),
    /// Another replica committed (a PostgreSQL notification): read the change log.
    CatchUp,
    /// The SQLite WAL grew long under writes: copy what the checkpoint thread's last pass
    /// left, so that the next group starts it over (see the `checkpoint` module).
    Checkpoint,
}

/// How often the writer reads the change log with nothing else to do (PostgreSQL): what
/// another replica committed reaches this one's SDKs within this even when a notification
/// was lost.
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

/// The advisory lock every PostgreSQL group holds from BEGIN to COMMIT ("flag" 3): one writer
/// at a time across replicas, so `changes.seq` grows in commit order and every group starts
/// from the latest committed state.
pub const WRITE_LOCK: i64 = 0x666c_6167_0003;

/// One queued write request: runs inside the writer's transaction (`Some`), or is told it will
/// not run (`None`, then its reply gets the reason); says how it went.
pub(crate) type Job = Box<dyn FnOnce(Option<&mut WriteCtx<'_>>) -> (Outcome, Reply) + Send>;

/// How a write request went inside its savepoint.
pub(crate) enum Outcome {
    /// It succeeded; its savepoint is released into the group.
    Done,
    /// It failed; its savepoint is rolled back. `fault` is the detail of a storage fault
    /// (disk full, read-only, I/O) when that was the cause.
    Failed {
        /// The 503 detail, when the storage failed.
        fault: Option<String>,
    },
}

/// What a write request sees: the connection (inside its savepoint), the time of the group,
/// and the state of every environment as the requests before it left it.
pub struct WriteCtx<'a> {
    /// The writer connection, inside this request's savepoint.
    pub conn: &'a Conn,
    /// The commit time, RFC 3339 UTC.
    pub now: &'a str,
    working: &'a HashMap<String, Snapshot>,
    effects: Vec<Effect>,
    /// Revisions this request has bumped, not yet in `working`.
    revisions: HashMap<String, u64>,
    /// The audit rows this request recorded.
    audit: RefCell<Vec<audit::Pending>>,
    cache: &'a GroupCache,
    probed: bool,
}

/// What a group reads once for all its requests (`None` until a request needs it). A request
/// that changes it empties it, and so does a failed request (it may have read what it then
/// rolled back).
#[derive(Default)]
pub(super) struct GroupCache {
    /// The live webhooks.
    pub webhooks: RefCell<Option<Subscriptions>>,
    /// Each environment's approvals and whether kills wait for them.
    pub approvals: RefCell<Option<HashMap<String, (u32, bool)>>>,
}

impl GroupCache {
    fn clear(&self) {
        self.webhooks.take();
        self.approvals.take();
    }
}

impl WriteCtx<'_> {
    /// The environment's current state (before this request's effects).
    pub fn snapshot(&self, environment: &str) -> Result<&Snapshot, ApiError> {
        self.working
            .get(environment)
            .ok_or_else(|| ApiError::NotFound(format!("no environment `{environment}`")))
    }

    /// Every environment's key, sorted.
    pub fn environments(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.working.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Bumps the environment's revision and returns the new one. The writer's working state
    /// is the committed one (one writer at a time, and on PostgreSQL the group read the log
    /// under the write lock first), so the next revision is known without asking; the
    /// environment's row is updated once per group, with the group's last revision
    /// (before its COMMIT).
    pub fn bump_revision(&mut self, environment: &str) -> Result<u64, ApiError> {
        let current = match self.revisions.get(environment) {
            Some(&revision) => revision,
            None => self.snapshot(environment)?.revision,
        };
        let revision = current + 1;
        self.revisions.insert(environment.to_owned(), revision);
        Ok(revision)
    }

    /// Records what this request does to the in-memory state (applied if it succeeds); it
    /// goes to the change log with the rest of the group, before its COMMIT.
    pub fn emit(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Records an audit row of this request ([`audit::record`]).
    pub(super) fn record_audit(&self, row: audit::Pending) {
        self.audit.borrow_mut().push(row);
    }

    /// What the group reads once for all its requests.
    pub(super) fn cache(&self) -> &GroupCache {
        self.cache
    }

    /// A real write that changes nothing: whether the database can be written again after a
    /// storage fault. SQLite: the database header's `user_version`, rewritten as it is.
    /// PostgreSQL: its writes go to the server, which has no such header; the writer's
    /// transaction reaching COMMIT is the probe.
    pub fn probe(&mut self) -> Result<(), ApiError> {
        if self.conn.backend() == Backend::Sqlite {
            let version: i64 = self
                .conn
                .query_one("PRAGMA user_version", params![])?
                .get(0)?;
            self.conn
                .batch(&format!("PRAGMA user_version = {version}"))?;
        }
        self.probed = true;
        Ok(())
    }
}

/// The writer thread's loop: returns when every sender is gone.
///
/// `applied` is the change log's `seq` that `working` and `published` include. On PostgreSQL
/// every group first reads the log after it (under the write lock, so nothing is missed):
/// what other replicas committed is applied and published with the group's own effects,
/// through the same `after_commit`. With no write to do, it reads the log on a wake-up from
/// the listener or every [`CATCH_UP_EVERY`].
pub(crate) fn run(
    conn: Conn,
    mut working: HashMap<String, Snapshot>,
    mut applied: u64,
    jobs: Receiver<Msg>,
    published: Published,
    health: Arc<Health>,
) {
    let mut gather = Gather::default();
    let mut groups: u64 = 0;
    // Set when `working` may differ from what is committed and could not be reloaded yet.
    let mut stale = false;
    loop {
        let first = match jobs.recv_timeout(CATCH_UP_EVERY) {
            Ok(Msg::Write(job)) => job,
            Ok(Msg::Checkpoint) => {
                checkpoint(&conn);
                continue;
            }
            Ok(Msg::CatchUp) | Err(RecvTimeoutError::Timeout) => {
                if let Ok(true) = conn.reconnect_if_closed() {
                    stale = !reload(&conn, &mut working);
                }
                if conn.backend() == Backend::Postgres && !stale {
                    let mut effects = Vec::new();
                    match catch_up_from(&conn, applied, &mut working, &mut effects, None) {
                        Ok(Some(seq)) => {
                            applied = applied.max(seq);
                            after_commit(&conn, &working, &effects, &published);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot read the change log"),
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let batch = gather.collect(first, &jobs);
        match conn.reconnect_if_closed() {
            // A new session: read the committed state again (`stale`), then go on.
            Ok(reconnected) => stale |= reconnected,
            Err(e) => {
                tracing::error!(error = %e, "the database is unreachable");
                reject(batch, UNREACHABLE);
                continue;
            }
        }
        let started = Instant::now();
        published.metrics.batch_size.observe(batch.len() as f64);
        if in_transaction(&conn) {
            // A transaction left open by a failed COMMIT and ROLLBACK: end it first.
            let _ = conn.batch("ROLLBACK");
        }
        if stale {
            stale = !reload(&conn, &mut working);
            if stale {
                reject(
                    batch,
                    "the database cannot be read; the change was not saved",
                );
                continue;
            }
        }
        let mut effects: Vec<Effect> = Vec::new();
        let mut group = Group::default();
        let cache = GroupCache::default();
        if let Err(e) = begin(&conn).and_then(|()| {
            // Only PostgreSQL has other writers: a SQLite file has this server alone (its lock).
            if conn.backend() == Backend::Postgres {
                catch_up_from(&conn, applied, &mut working, &mut effects, Some(&cache))?;
            }
            Ok(())
        }) {
            let detail = failure_detail(&conn, &e);
            tracing::error!(error = %e, %detail, "cannot begin a transaction");
            if storage_fault(&e).is_some() {
                health.set(Some(detail.clone()));
            }
            let _ = conn.batch("ROLLBACK");
            stale = !effects.is_empty() && !reload(&conn, &mut working);
            reject(batch, &detail);
            continue;
        }
        // What the group's own requests emit follows what it read from other replicas.
        group.own_effects = effects.len();
        let changes = conn.changed();
        let mut probed = false;
        let now = crate::clock::now_rfc3339();
        // Each reply with the group's verdict on it: `Some` when its request failed after it
        // ran (its deferred statements did not go through).
        let mut replies: Vec<(Reply, Option<ApiError>)> = Vec::with_capacity(batch.len());
        let mut fault: Option<String> = None;
        let mut lost = false;
        let mut queue = batch.into_iter();
        for job in queue.by_ref() {
            let _ = conn.begin_request();
            let mut ctx = WriteCtx {
                conn: &conn,
                now: &now,
                working: &working,
                effects: Vec::new(),
                revisions: HashMap::new(),
                audit: RefCell::default(),
                cache: &cache,
                probed: false,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| job(Some(&mut ctx))));
            let new_effects = std::mem::take(&mut ctx.effects);
            let new_audit = ctx.audit.take();
            let new_revisions = std::mem::take(&mut ctx.revisions);
            let job_probed = ctx.probed;
            // PostgreSQL: what the request deferred goes with the group's COMMIT.
            let outcome = match outcome {
                Ok((Outcome::Done, reply)) => match conn.end_request(true) {
                    Ok(()) => Ok((Outcome::Done, reply, None)),
                    Err(e) => {
                        let fault = storage_fault(&e).map(str::to_owned);
                        Ok((Outcome::Failed { fault }, reply, Some(ApiError::from(e))))
                    }
                },
                Ok((failed, reply)) => Ok((failed, reply, None)),
                Err(panic) => Err(panic),
            };
            match outcome {
                Ok((Outcome::Done, reply, _)) => {
                    probed |= job_probed;
                    for effect in &new_effects {
                        apply(&mut working, effect);
                    }
                    effects.extend(new_effects);
                    group.audit.extend(new_audit);
                    group.revisions.extend(new_revisions);
                    replies.push((reply, None));
                }
                Ok((Outcome::Failed { fault: f }, reply, late)) => {
                    let _ = conn.end_request(false);
                    cache.clear();
                    fault = f.or(fault);
                    // Answered after the group, with its own error (a storage fault's 503),
                    // or the error its deferred statements met.
                    replies.push((reply, late));
                }
                Err(_) => {
                    tracing::error!("a write request panicked; rolled back");
                    let _ = conn.end_request(false);
                    cache.clear();
                }
            }
            if transaction_lost(&conn) {
                // SQLite rolled the whole transaction back (a storage fault in a statement),
                // or the connection to PostgreSQL broke: what the requests before did is
                // gone, and the next ones must not run outside a transaction.
                lost = true;
                break;
            }
        }
        if let Some(fault) = &fault {
            health.set(Some(fault.clone()));
        }
        if lost {
            let detail = fault.unwrap_or_else(|| {
                "the database rolled the transaction back; the change was not saved".to_owned()
            });
            tracing::error!(%detail, "a group's transaction was rolled back by SQLite");
            for (reply, _) in replies {
                reply(Some(ApiError::Unavailable(detail.clone())));
            }
            reject(queue.collect(), &detail);
            stale = !reload(&conn, &mut working);
            continue;
        }
        groups += 1;
        // The group's rows, then the log's end as this group leaves it (read under the write
        // lock), then COMMIT: on PostgreSQL one round trip with everything the requests
        // deferred.
        let head =
            match write_group(&conn, &now, &group, &effects[group.own_effects..]).and_then(|()| {
                if groups.is_multiple_of(PRUNE_EVERY) {
                    prune(&conn);
                }
                if conn.backend() == Backend::Postgres && !effects.is_empty() {
                    defer(&conn, log::NOTIFY);
                }
                log::head_then(&conn, "COMMIT")
            }) {
                Ok(head) => head,
                Err(e) => {
                    let detail = failure_detail(&conn, &e);
                    tracing::error!(error = %e, %detail, "group commit failed; rolled back");
                    let _ = conn.batch("ROLLBACK");
                    if storage_fault(&e).is_some() {
                        health.set(Some(detail.clone()));
                    }
                    stale = !reload(&conn, &mut working);
                    for (reply, _) in replies {
                        reply(Some(ApiError::Unavailable(detail.clone())));
                    }
                    continue;
                }
            };
        if probed || conn.changed() > changes {
            // Something reached the disk: the database takes writes (again).
            health.set(None);
        }
        let commit_time = started.elapsed();
        gather.committed(replies.len(), commit_time);
        published
            .metrics
            .write_latency
            .observe(commit_time.as_secs_f64());
        applied = applied.max(head);
        after_commit(&conn, &working, &effects, &published);
        for (reply, late) in replies {
            reply(late);
        }
        if std::mem::take(&mut gather.checkpoint) {
            checkpoint(&conn);
        }
    }
    // Every sender is gone: the server is shutting down. Checkpoint so the WAL is small.
    if conn.backend() == Backend::Sqlite {
        let _ = conn.batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }
}

/// What a group's successful requests leave to be written together before its COMMIT.
#[derive(Default)]
struct Group {
    /// Where the group's own effects start in its effects (after what it read of the log).
    own_effects: usize,
    /// Their audit rows, in order.
    audit: Vec<audit::Pending>,
    /// Each environment's revision after them.
    revisions: BTreeMap<String, u64>,
}

/// Writes what the group's requests left ([`Group`]): one UPDATE per environment whose
/// revision they bumped, the change log's rows for `effects` and the audit rows, each table
/// in as few statements as its rows allow. On PostgreSQL with the next round trip (COMMIT's);
/// a failure fails the group, as a failed COMMIT does.
fn write_group(
    conn: &Conn,
    now: &str,
    group: &Group,
    effects: &[Effect],
) -> Result<(), sql::Error> {
    for (environment, revision) in &group.revisions {
        conn.defer(
            "UPDATE environments SET revision = ?2 WHERE key = ?1",
            params![environment, *revision],
        )?;
    }
    log::append(conn, effects, now_millis())?;
    audit::insert(conn, now, &group.audit)
}

/// Prunes the change log ([`log::prune`]) in a savepoint of its own: a failure is logged and
/// costs the group nothing.
fn prune(conn: &Conn) {
    exec(conn, "SAVEPOINT prune");
    match log::prune(conn, now_millis()) {
        Ok(_) => exec(conn, "RELEASE prune"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot prune the change log");
            exec(conn, "ROLLBACK TO prune");
            exec(conn, "RELEASE prune");
        }
    }
}

/// Reads the change log after `applied` into `working` and `effects` (what another replica
/// committed); the last `seq` read, if any. For a group (`cache`), the same round trip (with
/// the group's `BEGIN` and write lock) reads the webhooks and the approvals into `cache`,
/// which the group's requests would otherwise each read in a round trip of their own; rows it
/// cannot read leave that part of the cache empty, for the request that needs it to read again
/// and report.
fn catch_up_from(
    conn: &Conn,
    applied: u64,
    working: &mut HashMap<String, Snapshot>,
    effects: &mut Vec<Effect>,
    cache: Option<&GroupCache>,
) -> Result<Option<u64>, sql::Error> {
    let reads: [(&str, &[sql::Param<'_>]); 3] = [
        (log::SINCE, params![applied, MAX_CATCH_UP]),
        (change_requests::APPROVALS, params![]),
        (webhooks::LIST, params![]),
    ];
    let reads = if cache.is_some() {
        &reads[..]
    } else {
        &reads[..1]
    };
    let mut answers = conn.queries(reads)?.into_iter();
    let log_rows = answers.next().expect("one answer per read");
    if let (Some(cache), Some(approvals), Some(hooks)) = (cache, answers.next(), answers.next()) {
        *cache.approvals.borrow_mut() = change_requests::approvals_from_rows(&approvals).ok();
        *cache.webhooks.borrow_mut() = webhooks::from_rows(&hooks)
            .ok()
            .map(webhooks::subscriptions);
    }
    let mut last = None;
    for (seq, effect) in log::since_rows(&log_rows)? {
        apply(working, &effect);
        effects.push(effect);
        last = Some(seq);
    }
    Ok(last)
}

/// Every this many groups, one also prunes the change log ([`log::prune`]).
const PRUNE_EVERY: u64 = 1024;

/// Rows one catch-up reads at most; the rest come with the next one.
const MAX_CATCH_UP: u64 = 10_000;

/// Starts a group's transaction. SQLite: `IMMEDIATE`, so the write lock is taken up front
/// and a busy database fails here rather than at the first write. PostgreSQL: the write lock
/// across replicas ([`WRITE_LOCK`]).
fn begin(conn: &Conn) -> Result<(), sql::Error> {
    match conn.backend() {
        Backend::Sqlite => conn.batch("BEGIN IMMEDIATE"),
        // Sent with the group's first statement that answers (its read of the log).
        Backend::Postgres => {
            conn.defer_batch("BEGIN")?;
            conn.defer("SELECT pg_advisory_xact_lock(?1)", params![WRITE_LOCK])
        }
    }
}

/// Whether a transaction is still open on the connection between groups (SQLite, after a
/// failed COMMIT and ROLLBACK). PostgreSQL ends a transaction whose COMMIT failed itself.
fn in_transaction(conn: &Conn) -> bool {
    conn.as_sqlite().is_some_and(|c| !c.is_autocommit())
}

/// Whether the group's transaction is gone while the group runs: SQLite rolled it back
/// itself (it is in autocommit again), or the connection to PostgreSQL broke.
fn transaction_lost(conn: &Conn) -> bool {
    match conn.as_sqlite() {
        Some(c) => c.is_autocommit(),
        None => conn.is_closed(),
    }
}

/// Copies the SQLite WAL into the database file as far as it goes (no reader holds it back
/// from the writer), between groups ([`Msg::Checkpoint`]). A failure is logged: the
/// checkpoint thread asks again.
fn checkpoint(conn: &Conn) {
    if let Some(c) = conn.as_sqlite() {
        if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "the writer's WAL checkpoint failed");
        }
    }
}

/// Answers requests that will not run with a 503 carrying `detail`.
fn reject(jobs: Vec<Job>, detail: &str) {
    for job in jobs {
        let (_, reply) = job(None);
        reply(Some(ApiError::Unavailable(detail.to_owned())));
    }
}

/// Runs a statement without parameters from the statement cache; errors surface at COMMIT.
fn exec(conn: &Conn, sql: &str) {
    let _ = conn.execute(sql, params![]);
}

/// [`exec`] with the next round trip.
fn defer(conn: &Conn, sql: &str) {
    let _ = conn.defer_batch(sql);
}

/// Replaces `working` with what is committed; false when the database cannot be read.
fn reload(conn: &Conn, working: &mut HashMap<String, Snapshot>) -> bool {
    match super::load_snapshots(conn) {
        Ok(fresh) => {
            *working = fresh;
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reload snapshots after a failed commit");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Job {
        Box::new(|_| (Outcome::Done, Box::new(|_| {}) as Reply))
    }

    #[test]
    fn a_lone_writer_never_waits() {
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        let mut gather = Gather {
            last_size: 1,
            last_commit: Duration::from_secs(60),
            checkpoint: false,
        };
        let started = Instant::now();
        assert_eq!(gather.collect(noop(), &rx).len(), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(tx);
    }

    #[test]
    fn a_group_takes_every_queued_request_and_waits_boundedly_for_more() {
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        for _ in 0..3 {
            tx.send(Msg::Write(noop())).unwrap();
        }
        let mut gather = Gather {
            last_size: 8,
            last_commit: Duration::from_millis(5),
            checkpoint: false,
        };
        let started = Instant::now();
        assert_eq!(gather.collect(noop(), &rx).len(), 4);
        // Waited for the others, but no longer than MAX_GATHER (plus scheduling slack).
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[cfg(test)]
mod fault_tests {
    use std::sync::mpsc::{channel, Sender};

    use super::*;
    use crate::stream::{Broadcaster, StreamSettings};

    type Answers = Sender<(&'static str, Result<(), String>)>;

    /// A job like `Store::write` builds: runs `sql`, fails with `fault` when given.
    fn job(
        name: &'static str,
        sql: &'static str,
        fault: Option<&'static str>,
        out: Answers,
    ) -> Job {
        Box::new(move |ctx| {
            let result = match ctx {
                None => None,
                Some(ctx) => Some(match (ctx.conn.batch(sql), fault) {
                    (Ok(()), None) => Ok(()),
                    (Err(e), _) => Err(e.to_string()),
                    (Ok(()), Some(f)) => Err(f.to_owned()),
                }),
            };
            let outcome = match &result {
                Some(Ok(())) => Outcome::Done,
                _ => Outcome::Failed {
                    fault: fault.map(str::to_owned),
                },
            };
            let reply: Reply = Box::new(move |failure| {
                let answer = match (result, failure) {
                    (Some(Err(e)), _) => Err(e),
                    (_, Some(e)) => Err(e.to_string()),
                    (Some(Ok(())), None) => Ok(()),
                    (None, None) => Err("not run".into()),
                };
                let _ = out.send((name, answer));
            });
            (outcome, reply)
        })
    }

    fn published() -> Published {
        Published {
            snapshots: Arc::default(),
            tokens: Arc::default(),
            broadcaster: Arc::new(Broadcaster::new(StreamSettings::default())),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }

    fn rows(conn: &Conn) -> Vec<i64> {
        conn.query_map("SELECT x FROM t ORDER BY x", params![], |r| r.get(0))
            .unwrap()
    }

    /// A job that inserts `x` into `t` and records an audit row with `action`.
    fn audited_job(name: &'static str, x: i64, action: &'static str, out: Answers) -> Job {
        Box::new(move |ctx| {
            let result = ctx.map(|ctx| {
                ctx.conn
                    .execute("INSERT INTO t VALUES (?1)", params![x])
                    .map_err(|e| e.to_string())?;
                audit::record(
                    ctx,
                    audit::NewAudit {
                        actor: "test",
                        action,
                        ..audit::NewAudit::default()
                    },
                );
                Ok(())
            });
            let outcome = match &result {
                Some(Ok(())) => Outcome::Done,
                _ => Outcome::Failed { fault: None },
            };
            let reply: Reply = Box::new(move |failure| {
                let answer = match (result, failure) {
                    (_, Some(e)) => Err(e.to_string()),
                    (Some(r), None) => r,
                    (None, None) => Err("not run".into()),
                };
                let _ = out.send((name, answer));
            });
            (outcome, reply)
        })
    }

    /// The rows a group's requests leave (audit, change log, revisions) are written together
    /// before COMMIT: when the database refuses them, every request of the group is answered
    /// 503 and nothing of any of them is saved, not even what each wrote itself; the next
    /// group works.
    #[test]
    fn a_refused_group_row_saves_nothing_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = super::super::open_sqlite_writer(&path).unwrap();
        conn.batch(
            "CREATE TABLE t (x INTEGER);
             CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.action = 'refused'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .unwrap();
        let working = super::super::load_snapshots(&conn).unwrap();
        let (tx, rx) = channel::<Msg>();
        let (out, answers) = channel();
        let send = |job: Job| tx.send(Msg::Write(job)).unwrap();
        send(audited_job("fine", 1, "test.fine", out.clone()));
        send(audited_job("refused", 2, "refused", out.clone()));
        let thread = std::thread::spawn(move || {
            run(conn, working, 0, rx, published(), Arc::default());
        });
        let mut got: Vec<_> = (0..2).map(|_| answers.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got.len(), 2);
        for (name, answer) in &got {
            let error = answer.as_ref().expect_err(name);
            assert!(error.contains("could not commit"), "{name}: {error}");
        }
        let check = super::super::open_sqlite_reader(&path).unwrap();
        assert_eq!(rows(&check), Vec::<i64>::new());
        let audited = |c: &Conn| -> Vec<String> {
            c.query_map("SELECT action FROM audit ORDER BY id", params![], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(audited(&check), Vec::<String>::new());

        send(audited_job("next", 3, "test.next", out));
        assert_eq!(answers.recv().unwrap(), ("next", Ok(())));
        assert_eq!(rows(&check), vec![3]);
        assert_eq!(audited(&check), vec!["test.next".to_owned()]);
        drop(tx);
        thread.join().unwrap();
    }

    /// When SQLite rolls the group's transaction back in the middle (as it may on a full disk
    /// or an I/O error), the requests before are answered 503, the ones after never run
    /// outside a transaction, nothing is saved, and the next group works.
    #[test]
    fn a_transaction_lost_mid_group_saves_nothing_and_answers_503() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = super::super::open_sqlite_writer(&path).unwrap();
        conn.batch("CREATE TABLE t (x INTEGER)").unwrap();
        let working = super::super::load_snapshots(&conn).unwrap();
        let (tx, rx) = channel::<Msg>();
        let (out, answers) = channel();
        // Queued before the writer starts: one group.
        let send = |job: Job| tx.send(Msg::Write(job)).unwrap();
        send(job("before", "INSERT INTO t VALUES (1)", None, out.clone()));
        send(job(
            "faulty",
            "ROLLBACK",
            Some("the disk is full"),
            out.clone(),
        ));
        send(job("after", "INSERT INTO t VALUES (3)", None, out.clone()));
        let health = Arc::new(Health::default());
        let writer_health = health.clone();
        let thread = std::thread::spawn(move || {
            run(conn, working, 0, rx, published(), writer_health);
        });
        let mut got: Vec<_> = (0..3).map(|_| answers.recv().unwrap()).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("after", Err("the disk is full".into())),
                ("before", Err("the disk is full".into())),
                ("faulty", Err("the disk is full".into())),
            ]
        );
        let check = super::super::open_sqlite_reader(&path).unwrap();
        assert_eq!(rows(&check), Vec::<i64>::new());
        assert_eq!(health.fault().as_deref(), Some("the disk is full"));

        send(job("next", "INSERT INTO t VALUES (4)", None, out));
        assert_eq!(answers.recv().unwrap(), ("next", Ok(())));
        assert_eq!(rows(&check), vec![4]);
        assert_eq!(health.fault(), None);
        drop(tx);
        thread.join().unwrap();
    }
}
