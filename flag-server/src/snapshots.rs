//! The current compiled snapshot of every environment, in memory.
//!
//! Loaded from SQLite at start and replaced by the store's writer thread after each COMMIT,
//! before the change is published to the stream; so a snapshot's revision always equals the
//! committed revision of its environment. Reads are lock-free (`arc-swap`): the evaluate
//! endpoint, the flag reads, and the SDK endpoints (`put` event, `/sdk/v1/snapshot`) use it.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use flag_sdk::CompiledSnapshot;

/// Every environment's current snapshot.
#[derive(Default)]
pub struct Snapshots {
    map: ArcSwap<HashMap<String, Arc<CompiledSnapshot>>>,
}

impl Snapshots {
    /// The environment's current snapshot, or `None` for an unknown environment.
    pub fn get(&self, environment: &str) -> Option<Arc<CompiledSnapshot>> {
        self.map.load().get(environment).cloned()
    }

    /// The keys of every environment, sorted.
    pub fn environments(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.map.load().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Installs new snapshots (called by the writer thread only, after COMMIT).
    pub(crate) fn replace(&self, updates: impl IntoIterator<Item = Arc<CompiledSnapshot>>) {
        let mut map = HashMap::clone(&self.map.load());
        for snapshot in updates {
            map.insert(snapshot.environment().to_owned(), snapshot);
        }
        self.map.store(Arc::new(map));
    }
}
