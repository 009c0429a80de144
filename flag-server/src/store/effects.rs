//! What a committed write changes outside SQLite: each write request records [`Effect`]s;
//! the writer applies them to its working copy of every environment as the request
//! succeeds, and after COMMIT installs the recompiled snapshots, reloads the token cache,
//! updates the metrics and publishes the changes to the stream, in that order.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use flag_sdk::{CompiledSnapshot, Flag, Segment, Snapshot};
use rusqlite::Connection;

use super::Published;
use crate::stream::{Change, ChangeKind};

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

/// Installs new snapshots, refreshes caches and metrics, then publishes to the stream.
pub(super) fn after_commit(
    conn: &Connection,
    working: &HashMap<String, Snapshot>,
    effects: &[Effect],
    published: &Published,
) {
    let mut touched = BTreeSet::new();
    let mut tokens = false;
    for effect in effects {
        match effect {
            Effect::Flag { environment, .. }
            | Effect::FlagRemoved { environment, .. }
            | Effect::Segment { environment, .. }
            | Effect::SegmentRemoved { environment, .. } => {
                touched.insert(environment.as_str());
            }
            Effect::Environment(s) => {
                touched.insert(s.environment.as_str());
            }
            Effect::Tokens => tokens = true,
        }
    }
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
    if tokens {
        match super::tokens::load_active(conn) {
            Ok(list) => published.tokens.replace(list),
            Err(e) => tracing::error!(error = %e, "cannot reload tokens"),
        }
    }
    for effect in effects {
        if let Some(change) = to_change(effect) {
            published.broadcaster.publish(&change);
        }
    }
}

fn to_change(effect: &Effect) -> Option<Change> {
    let (environment, revision, kind, key, data) = match effect {
        Effect::Flag {
            environment,
            revision,
            flag,
        } => (
            environment,
            *revision,
            ChangeKind::Flag,
            &flag.key,
            serde_json::to_value(flag).ok(),
        ),
        Effect::FlagRemoved {
            environment,
            revision,
            key,
        } => (environment, *revision, ChangeKind::Flag, key, None),
        Effect::Segment {
            environment,
            revision,
            segment,
        } => (
            environment,
            *revision,
            ChangeKind::Segment,
            &segment.key,
            serde_json::to_value(segment).ok(),
        ),
        Effect::SegmentRemoved {
            environment,
            revision,
            key,
        } => (environment, *revision, ChangeKind::Segment, key, None),
        Effect::Environment(_) | Effect::Tokens => return None,
    };
    Some(Change {
        environment: environment.clone(),
        revision,
        kind,
        key: key.clone(),
        data,
    })
}

pub(super) fn apply(working: &mut HashMap<String, Snapshot>, effect: &Effect) {
    match effect {
        Effect::Flag {
            environment,
            revision,
            flag,
        } => {
            if let Some(s) = working.get_mut(environment) {
                s.revision = *revision;
                s.flags.insert(flag.key.clone(), flag.clone());
            }
        }
        Effect::FlagRemoved {
            environment,
            revision,
            key,
        } => {
            if let Some(s) = working.get_mut(environment) {
                s.revision = *revision;
                s.flags.remove(key);
            }
        }
        Effect::Segment {
            environment,
            revision,
            segment,
        } => {
            if let Some(s) = working.get_mut(environment) {
                s.revision = *revision;
                s.segments.insert(segment.key.clone(), segment.clone());
            }
        }
        Effect::SegmentRemoved {
            environment,
            revision,
            key,
        } => {
            if let Some(s) = working.get_mut(environment) {
                s.revision = *revision;
                s.segments.remove(key);
            }
        }
        Effect::Environment(snapshot) => {
            working.insert(snapshot.environment.clone(), snapshot.clone());
        }
        Effect::Tokens => {}
    }
}
