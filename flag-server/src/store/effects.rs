//! What a committed write changes outside SQLite: each write request records [`Effect`]s;
//! the writer applies them to its working copy of every environment as the request
//! succeeds, and after COMMIT installs the recompiled snapshots, reloads the token cache,
//! updates the metrics and publishes the changes to the stream, in that order.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::sql::Conn;
use super::Published;
use flag_sdk::{Change, CompiledSnapshot, Snapshot};

/// What a committed write did to the in-memory state.
// Nearly every effect is a `Change`: boxing it to shrink the rare token and environment
// effects would add an allocation to every write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Effect {
    /// A flag or a segment of `environment` changed: what the change log, the stream and
    /// every replica carry.
    Change {
        /// The environment.
        environment: String,
        /// The change, at the environment's revision after it.
        change: Change,
        /// The flag's or segment's JSON as the change log stores it, serialised once with
        /// its row; `None` for a delete.
        data: Option<String>,
    },
    /// A new environment with its first snapshot.
    Environment(Snapshot),
    /// The token table changed: reload the token cache.
    Tokens,
}

impl Effect {
    /// A change of a flag or a segment of `environment`, with `data`, the JSON of the flag
    /// or segment its row holds (`None` for a delete).
    pub(super) fn change(environment: &str, change: Change, data: Option<String>) -> Effect {
        Effect::Change {
            environment: environment.to_owned(),
            change,
            data,
        }
    }

    /// The environment this changes and its revision after the change (`None`: tokens).
    pub(super) fn target(&self) -> Option<(&str, u64)> {
        match self {
            Effect::Change {
                environment,
                change,
                ..
            } => Some((environment, change.revision())),
            Effect::Environment(snapshot) => Some((&snapshot.environment, snapshot.revision)),
            Effect::Tokens => None,
        }
    }
}

/// Installs new snapshots, refreshes caches and metrics, then publishes to the stream.
pub(super) fn after_commit(
    conn: &Conn,
    working: &HashMap<String, Snapshot>,
    effects: &[Effect],
    published: &Published,
) {
    let touched: BTreeSet<&str> = effects
        .iter()
        .filter_map(|e| e.target().map(|(environment, _)| environment))
        .collect();
    let compiled: Vec<Arc<CompiledSnapshot>> = touched
        .iter()
        .filter_map(|env| working.get(*env))
        .map(|s| Arc::new(CompiledSnapshot::new(s.clone())))
        .collect();
    for s in &compiled {
        published
            .metrics
            .flags
            .with_label_values(&[s.environment()])
            .set(s.snapshot().flags.len() as i64);
    }
    published.snapshots.replace(compiled);
    if effects.iter().any(|e| matches!(e, Effect::Tokens)) {
        match super::tokens::load_active(conn) {
            Ok(list) => {
                published.tokens.replace(list);
                published.broadcaster.check_tokens();
            }
            Err(e) => tracing::error!(error = %e, "cannot reload tokens"),
        }
    }
    for effect in effects {
        if let Effect::Change {
            environment,
            change,
            ..
        } = effect
        {
            published.broadcaster.publish(environment, change);
        }
    }
    published.broadcaster.committed();
}

/// Applies an effect to the writer's working copy of the environments. A change at or below
/// the environment's revision is already in it and is ignored ([`Snapshot::apply`]): that
/// happens when the log is read after a reload that already holds what it reads.
pub(super) fn apply(working: &mut HashMap<String, Snapshot>, effect: &Effect) {
    match effect {
        Effect::Change {
            environment,
            change,
            ..
        } => {
            if let Some(s) = working.get_mut(environment) {
                s.apply(change);
            }
        }
        Effect::Environment(snapshot) => {
            working.insert(snapshot.environment.clone(), snapshot.clone());
        }
        Effect::Tokens => {}
    }
}
