//! OFREP evaluations counted for the release guard, like an SDK's counters: per environment,
//! flag and variation, the evaluations that came through a rollout. A request adds to the
//! tally in memory; one task hands it to the guard every [`FLUSH`] (`releases::observe`, the
//! path of `POST /sdk/v1/events`), so a release is guarded for Python and browser users too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::release::guard::Counts;
use crate::store::{releases, Store};
use crate::webhooks::Outbox;

use super::wire::EvaluationSuccess;

/// How often the tally is handed to the guard.
pub const FLUSH: Duration = Duration::from_secs(1);

type Variations = HashMap<String, u64>;

/// Counters of one environment as the guard takes them: (flag, variation, counts).
pub type Counters = Vec<(String, String, Counts)>;

/// Evaluations not yet handed to the guard: environment → flag → variation → count.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<HashMap<String, HashMap<String, Variations>>>,
}

impl Tally {
    /// Counts the evaluations among `served` that came through a rollout.
    pub fn record<'a>(
        &self,
        environment: &str,
        served: impl IntoIterator<Item = &'a EvaluationSuccess<'a>>,
    ) {
        let mut served = served
            .into_iter()
            .filter(|s| s.metadata.reason.in_rollout())
            .peekable();
        if served.peek().is_none() {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let flags = match counts.get_mut(environment) {
            Some(flags) => flags,
            None => counts.entry(environment.to_owned()).or_default(),
        };
        for success in served {
            let variations = match flags.get_mut(success.key) {
                Some(v) => v,
                None => flags.entry(success.key.to_owned()).or_default(),
            };
            match variations.get_mut(success.variant) {
                Some(n) => *n += 1,
                None => {
                    variations.insert(success.variant.to_owned(), 1);
                }
            }
        }
    }

    /// Everything counted since the last call, as the guard takes it, by environment.
    pub fn take(&self) -> Vec<(String, Counters)> {
        let counts =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        counts
            .into_iter()
            .map(|(environment, flags)| {
                let counters = flags
                    .into_iter()
                    .flat_map(|(flag, variations)| {
                        variations.into_iter().map(move |(variation, n)| {
                            let counts = Counts {
                                evaluations: n,
                                errors: 0,
                            };
                            (flag.clone(), variation, counts)
                        })
                    })
                    .collect();
                (environment, counters)
            })
            .collect()
    }
}

/// Hands the tally to the guard every [`FLUSH`], until the server stops.
pub async fn run(tally: Arc<Tally>, store: Store, outbox: Arc<Outbox>) {
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (environment, counters) in tally.take() {
            let env = environment.clone();
            let observations = releases::Observations {
                counters,
                metrics: Vec::new(),
            };
            let result = store
                .write(move |ctx| releases::observe(ctx, &env, &observations))
                .await;
            match result {
                Ok(steps) => {
                    for step in &steps {
                        tracing::warn!(
                            environment,
                            event = step.event,
                            reason = step.reason,
                            "release guard acted on OFREP evaluations"
                        );
                    }
                    if !steps.is_empty() {
                        outbox.wake();
                    }
                }
                Err(error) => {
                    tracing::warn!(environment, %error, "OFREP evaluations not counted")
                }
            }
        }
    }
}
