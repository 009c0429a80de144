//! What a committed write changes outside SQLite: each write request records [`Effect`]s;
//! the writer applies them to its working copy of every environment as the request
//! succeeds, and after COMMIT installs the recompiled snapshots, reloads the token cache,
//! updates the metrics and publishes the changes to the stream, in that order.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::sql::Conn;
use super::Published;
use crate::stream::{Change, ChangeKind};
use flag_sdk::{CompiledSnapshot, Flag, Segment, Snapshot};

/// What a committed write did to the in-memory state.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A flag's configuration in an environment is now `flag`.
    Flag {
        /// The environment.
        environment: String,
        /// Its revision after the change.
        revision: u64,
        /// The new configuration.
        flag: Flag,
    },
    /// A flag left an environment's snapshot (archived).
    FlagRemoved {
        /// The environment.
        environment: String,
        /// Its revision after the change.
        revision: u64,
        /// The flag's key.
        key: String,
    },
    /// A segment is now `segment`.
    Segment {
        /// The environment.
        environment: String,
        /// Its revision after the change.
        revision: u64,
        /// The new segment.
        segment: Segment,
    },
    /// A segment was deleted.
    SegmentRemoved {
        /// The environment.
        environment: String,
        /// Its revision after the change.
        revision: u64,
        /// The segment's key.
        key: String,
    },
    /// A new environment with its first snapshot.
    Environment(Snapshot),
    /// The token table changed: reload the token cache.
    Tokens,
}

impl Effect {
    /// The environment this changes and its revision after the change (`None`: tokens).
    pub(super) fn target(&self) -> Option<(&str, u64)> {
        match self {
            Effect::Flag {
                environment,
                revision,
                ..
            }
            | Effect::FlagRemoved {
                environment,
                revision,
                ..
            }
            | Effect::Segment {
                environment,
                revision,
                ..
            }
            | Effect::SegmentRemoved {
                environment,
                revision,
                ..
            } => Some((environment, *revision)),
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
        if let Some(change) = to_change(effect) {
            published.broadcaster.publish(&change);
        }
    }
    published.broadcaster.committed();
}

/// The stream's `patch`/`delete` for an effect on a flag or a segment.
pub(super) fn to_change(effect: &Effect) -> Option<Change> {
    let (kind, key, data) = match effect {
        Effect::Flag { flag, .. } => (ChangeKind::Flag, &flag.key, serde_json::to_value(flag).ok()),
        Effect::FlagRemoved { key, .. } => (ChangeKind::Flag, key, None),
        Effect::Segment { segment, .. } => (
            ChangeKind::Segment,
            &segment.key,
            serde_json::to_value(segment).ok(),
        ),
        Effect::SegmentRemoved { key, .. } => (ChangeKind::Segment, key, None),
        Effect::Environment(_) | Effect::Tokens => return None,
    };
    let (environment, revision) = effect.target()?;
    Some(Change {
        environment: environment.to_owned(),
        revision,
        kind,
        key: key.clone(),
        data,
    })
}

/// Applies an effect to the writer's working copy of the environments.
pub(super) fn apply(working: &mut HashMap<String, Snapshot>, effect: &Effect) {
    if let Effect::Environment(snapshot) = effect {
        working.insert(snapshot.environment.clone(), snapshot.clone());
        return;
    }
    let Some((environment, revision)) = effect.target() else {
        return;
    };
    let Some(s) = working.get_mut(environment) else {
        return;
    };
    s.revision = revision;
    match effect {
        Effect::Flag { flag, .. } => {
            s.flags.insert(flag.key.clone(), flag.clone());
        }
        Effect::FlagRemoved { key, .. } => {
            s.flags.remove(key);
        }
        Effect::Segment { segment, .. } => {
            s.segments.insert(segment.key.clone(), segment.clone());
        }
        Effect::SegmentRemoved { key, .. } => {
            s.segments.remove(key);
        }
        Effect::Environment(_) | Effect::Tokens => {}
    }
}
