//! [`AllFlags`]: every flag's evaluation for one context, from one snapshot, kept compact
//! (flag, variation, reason code per flag) and spelled out on demand.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::compile::CompiledSnapshot;
use crate::context::Context;
use crate::eval::{Evaluation, Outcome};

/// Every flag's evaluation for one context; see [`Client::all_flags`](super::Client::all_flags).
/// Serializes as `{"flag-key": {"value": .., "variation": .., "reason": {..}}, ..}`.
#[derive(Debug, Clone)]
pub struct AllFlags {
    snapshot: Option<Arc<CompiledSnapshot>>,
    outcomes: Vec<Outcome>,
}

impl AllFlags {
    pub(super) fn new(snapshot: Option<Arc<CompiledSnapshot>>, ctx: &Context) -> AllFlags {
        let outcomes = match &snapshot {
            Some(s) => (0..s.flags.len())
                .map(|i| s.outcome_at(i, ctx, None))
                .collect(),
            None => Vec::new(),
        };
        AllFlags { snapshot, outcomes }
    }

    /// The revision evaluated; `None` when the client had no data (and so no flags).
    pub fn revision(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.revision())
    }

    /// How many flags.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether there are no flags (or no data).
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// Flag `key`'s evaluation, if the snapshot has the flag.
    pub fn get(&self, key: &str) -> Option<Evaluation<'_>> {
        let snapshot = self.snapshot.as_deref()?;
        let i = snapshot.index_of(key)?;
        Some(snapshot.detail(self.outcomes[i]))
    }

    /// Every flag's key and evaluation, in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, Evaluation<'_>)> {
        let snapshot = self.snapshot.as_deref();
        self.outcomes.iter().enumerate().map(move |(i, outcome)| {
            let snapshot = snapshot.expect("outcomes come from a snapshot");
            (&*snapshot.flags[i].key, snapshot.detail(*outcome))
        })
    }
}

impl Serialize for AllFlags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct One<'a> {
            value: Option<&'a serde_json::Value>,
            variation: Option<&'a str>,
            reason: &'a crate::Reason<'a>,
        }
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, e) in self.iter() {
            map.serialize_entry(
                key,
                &One {
                    value: e.value,
                    variation: e.variation,
                    reason: &e.reason,
                },
            )?;
        }
        map.end()
    }
}
