//! The scheduler: one task that sleeps until the next release step or scheduled change is
//! due (or until a person's move wakes it), then lets each due one take its step through the
//! store's write path. It does not poll: with nothing due it sleeps up to [`IDLE`] (with
//! replicas on one PostgreSQL database, up to the lease period: what another replica planned
//! wakes that replica, not the leader).
//!
//! Its clock is the wall clock plus an offset that only [`Scheduler::advance`] moves: tests
//! simulate a long wait (a schedule next week) without waiting.
//!
//! A release with Prometheus guards is due at each look at its queries too: the scheduler
//! reads Prometheus first, outside the write path (with a timeout), and hands the reading
//! to the release's step.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::plan::ReleaseState;
use super::prometheus::{Prometheus, Reading};
use crate::clock::{now_millis, Millis};
use crate::snapshots::Snapshots;
use crate::store::{releases, schedules, Leadership, Store};
use crate::webhooks::Outbox;

/// The longest sleep with nothing due (a safety net; moves wake the task at once).
pub const IDLE: Duration = Duration::from_secs(3600);
/// The pause after a failed look, so a broken database never makes a hot loop.
const RETRY: Duration = Duration::from_secs(1);

/// The handle the API uses to wake the scheduler after a start, resume or advance.
#[derive(Debug, Default)]
pub struct Scheduler {
    wake: Notify,
    /// Milliseconds added to the wall clock (simulated time; 0 in production).
    offset: AtomicI64,
}

impl Scheduler {
    /// Makes the scheduler look at the schedule again now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The scheduler's time: what releases and scheduled changes are due against.
    pub fn now(&self) -> Millis {
        now_millis() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves the scheduler's clock forward by `by` and wakes it (simulated time: what was
    /// due within `by` is taken at once). Nothing in the server calls it; tests do.
    pub fn advance(&self, by: Duration) {
        self.offset
            .fetch_add(by.as_millis() as i64, Ordering::Relaxed);
        self.wake();
    }
}

/// What the Prometheus guard needs: the Prometheus to ask (none without `--prometheus-url`)
/// and the live snapshots (the flags' variations, for `{{variation_index}}`).
#[derive(Clone)]
pub struct Sources {
    /// The Prometheus server, when configured.
    pub prometheus: Option<Arc<Prometheus>>,
    /// Every environment's current snapshot.
    pub snapshots: Arc<Snapshots>,
}

/// Runs until the process ends: takes due release steps while this replica leads, and
/// wakes the webhook sender after each round of steps.
pub async fn run(
    store: Store,
    mut leadership: Leadership,
    scheduler: Arc<Scheduler>,
    outbox: Arc<Outbox>,
    sources: Sources,
) {
    // A schedule or release planned through another replica wakes that replica's scheduler,
    // not the leader's: with replicas, the leader looks again at least every lease period.
    let idle = if leadership.shared() {
        crate::store::LEASE_PERIOD
    } else {
        IDLE
    };
    loop {
        // One replica runs releases (see `store::Leadership`); the others wait their turn.
        leadership.acquired().await;
        let wait = match step_due(&store, &outbox, &scheduler, &sources).await {
            Ok(next) => next.map_or(idle, |at| {
                Duration::from_millis(at.saturating_sub(scheduler.now()).max(0) as u64).min(idle)
            }),
            Err(e) => {
                tracing::warn!(error = %e, "release scheduler: cannot read or write releases");
                RETRY
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = scheduler.wake.notified() => {}
        }
    }
}

/// Takes every due step and scheduled change; returns when the next one is due.
async fn step_due(
    store: &Store,
    outbox: &Outbox,
    clock: &Scheduler,
    sources: &Sources,
) -> Result<Option<Millis>, crate::error::ApiError> {
    loop {
        let schedule = store.read(releases::schedule).await?;
        let changes = store.read(schedules::due).await?;
        let now = clock.now();
        let (due, later): (Vec<_>, Vec<_>) =
            schedule.into_iter().partition(|(_, _, at)| *at <= now);
        let (due_changes, later_changes): (Vec<_>, Vec<_>) =
            changes.into_iter().partition(|(_, at)| *at <= now);
        if due.is_empty() && due_changes.is_empty() {
            let next = later.iter().map(|(_, _, at)| *at);
            return Ok(next.chain(later_changes.iter().map(|(_, at)| *at)).min());
        }
        for (flag, env, _) in due {
            tracing::info!(flag, environment = env, "release due");
            let reading = read_prometheus(store, sources, &flag, &env, now).await?;
            store
                .write(move |ctx| releases::tick(ctx, &flag, &env, now, reading))
                .await?;
        }
        for (id, at) in due_changes {
            tracing::info!(schedule = id, late_ms = now - at, "scheduled change due");
            store
                .write(move |ctx| schedules::tick(ctx, id, now))
                .await?;
        }
        outbox.wake();
    }
}

/// Reads the Prometheus guard's queries of a running release that has them; `None` when it
/// has none, or when no Prometheus is configured (the release then holds and says so).
async fn read_prometheus(
    store: &Store,
    sources: &Sources,
    flag: &str,
    env: &str,
    now: Millis,
) -> Result<Option<Reading>, crate::error::ApiError> {
    let Some(prometheus) = &sources.prometheus else {
        return Ok(None);
    };
    let (f, e) = (flag.to_owned(), env.to_owned());
    let release = store.read(move |conn| releases::get(conn, &f, &e)).await?;
    let Some(release) =
        release.filter(|r| r.state == ReleaseState::Running && !r.plan.guard.prometheus.is_empty())
    else {
        return Ok(None);
    };
    let snapshot = sources.snapshots.get(env);
    let variations: Vec<&str> = snapshot
        .as_ref()
        .and_then(|s| s.snapshot().flags.get(flag))
        .map(|f| f.variations.iter().map(|v| v.key.as_str()).collect())
        .unwrap_or_default();
    let compared = release.compared_variations(&variations);
    let guards = &release.plan.guard.prometheus;
    Ok(Some(
        prometheus.read(guards, flag, env, &compared, now).await,
    ))
}
