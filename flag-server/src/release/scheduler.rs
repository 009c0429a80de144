//! The scheduler: one task that sleeps until the next release is due (or until a person's
//! move wakes it), then lets each due release take its step through the store's write path.
//! It does not poll: with nothing due it sleeps up to [`IDLE`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::{now_millis, Millis};
use crate::store::{releases, Leadership, Store};
use crate::webhooks::Outbox;

/// The longest sleep with nothing due (a safety net; moves wake the task at once).
pub const IDLE: Duration = Duration::from_secs(3600);
/// The pause after a failed look, so a broken database never makes a hot loop.
const RETRY: Duration = Duration::from_secs(1);

/// The handle the API uses to wake the scheduler after a start, resume or advance.
#[derive(Debug, Default)]
pub struct Scheduler {
    wake: Notify,
}

impl Scheduler {
    /// Makes the scheduler look at the schedule again now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs until the process ends: takes due release steps while this replica leads, and
/// wakes the webhook sender after each round of steps.
pub async fn run(
    store: Store,
    mut leadership: Leadership,
    scheduler: Arc<Scheduler>,
    outbox: Arc<Outbox>,
) {
    loop {
        // One replica runs releases (see `store::Leadership`); the others wait their turn.
        leadership.acquired().await;
        let wait = match step_due(&store, &outbox).await {
            Ok(next) => next.map_or(IDLE, |at| {
                Duration::from_millis(at.saturating_sub(now_millis()).max(0) as u64).min(IDLE)
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

/// Takes every due step; returns when the next release is due.
async fn step_due(
    store: &Store,
    outbox: &Outbox,
) -> Result<Option<Millis>, crate::error::ApiError> {
    loop {
        let schedule = store.read(releases::schedule).await?;
        let now = now_millis();
        let (due, later): (Vec<_>, Vec<_>) =
            schedule.into_iter().partition(|(_, _, at)| *at <= now);
        if due.is_empty() {
            return Ok(later.iter().map(|(_, _, at)| *at).min());
        }
        for (flag, env, _) in due {
            tracing::info!(flag, environment = env, "release due");
            store
                .write(move |ctx| releases::tick(ctx, &flag, &env, now))
                .await?;
        }
        outbox.wake();
    }
}
