//! [`TestData`]: drive flags from a test without a server, in the manner of LaunchDarkly's
//! `TestData`. Every update goes through the same swap and change notification as a stream
//! update, so code under test sees exactly what it would see in production.
//!
//! ```
//! use flag_sdk::{Context, TestData};
//!
//! let td = TestData::new();
//! let client = td.client();
//! td.update(td.flag("new-checkout").serve(true));
//! assert!(client.bool_variation("new-checkout", &Context::new("u1"), false));
//! td.update(td.flag("new-checkout").on(false)); // kill it
//! assert!(!client.bool_variation("new-checkout", &Context::new("u1"), true));
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use crate::model::{Flag, FlagKind, Serve, Snapshot, Target, Variation};

use super::state::{Shared, Status};
use super::Client;

/// Flags set by a test; every [`client`](TestData::client) made from it sees each update.
#[derive(Debug, Clone)]
pub struct TestData {
    shared: Arc<Shared>,
    /// Serialises writers so each update builds on the previous one.
    writer: Arc<Mutex<()>>,
}

impl Default for TestData {
    fn default() -> Self {
        TestData::new()
    }
}

impl TestData {
    /// An empty environment named `test` at revision 0.
    pub fn new() -> Self {
        let shared = Arc::new(Shared::new());
        shared.replace(Snapshot {
            environment: "test".to_owned(),
            ..Snapshot::default()
        });
        shared.touch(std::time::SystemTime::now());
        shared.set_status(Status::Valid);
        TestData {
            shared,
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// A client serving these flags (status `Valid`).
    pub fn client(&self) -> Client {
        Client::from_shared(self.shared.clone())
    }

    /// A builder for a boolean flag `key`: enabled, serving `true` to everyone, `off` = false.
    /// Starts from the flag's current configuration if it exists.
    pub fn flag(&self, key: &str) -> FlagBuilder {
        let current = self
            .shared
            .load()
            .as_ref()
            .and_then(|s| s.snapshot().flags.get(key).cloned());
        FlagBuilder {
            flag: current.unwrap_or_else(|| boolean_flag(key)),
        }
    }

    /// Stores a flag built with [`flag`](Self::flag), bumping its version and the revision.
    pub fn update(&self, flag: FlagBuilder) {
        self.update_flag(flag.flag);
    }

    /// Stores any flag configuration as is (bumping its version and the revision).
    pub fn update_flag(&self, mut flag: Flag) {
        self.modify(|snapshot| {
            let version = snapshot.flags.get(&flag.key).map_or(0, |f| f.version);
            flag.version = version.max(flag.version) + 1;
            snapshot.flags.insert(flag.key.clone(), flag);
        });
    }

    /// Removes a flag.
    pub fn delete(&self, key: &str) {
        self.modify(|snapshot| {
            snapshot.flags.remove(key);
        });
    }

    /// Replaces everything with `snapshot` (its revision is raised above the current one).
    pub fn set_snapshot(&self, snapshot: Snapshot) {
        self.modify(|current| {
            let revision = current.revision;
            *current = snapshot;
            current.revision = current.revision.max(revision);
        });
    }

    fn modify(&self, change: impl FnOnce(&mut Snapshot)) {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut snapshot = self
            .shared
            .load()
            .as_ref()
            .map(|s| Snapshot::clone(s.snapshot()))
            .unwrap_or_default();
        change(&mut snapshot);
        snapshot.revision += 1;
        self.shared.replace(snapshot);
        self.shared.touch(std::time::SystemTime::now());
    }
}

fn boolean_flag(key: &str) -> Flag {
    Flag {
        key: key.to_owned(),
        kind: FlagKind::Boolean,
        version: 0,
        variations: vec![
            Variation {
                key: "on".to_owned(),
                value: Value::Bool(true),
            },
            Variation {
                key: "off".to_owned(),
                value: Value::Bool(false),
            },
        ],
        enabled: true,
        off_variation: "off".to_owned(),
        prerequisites: Vec::new(),
        targets: Vec::new(),
        rules: Vec::new(),
        fallthrough: Serve::Variation("on".to_owned()),
    }
}

/// A flag configuration being prepared by a test; pass it to [`TestData::update`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FlagBuilder {
    flag: Flag,
}

impl FlagBuilder {
    /// Turns the flag on or off (off = the kill switch: everyone gets the off variation).
    pub fn on(mut self, enabled: bool) -> Self {
        self.flag.enabled = enabled;
        self
    }

    /// A boolean flag serving `value` to everyone (and the other value when off).
    pub fn serve(mut self, value: bool) -> Self {
        let (serve, off) = if value { ("on", "off") } else { ("off", "on") };
        self = self.boolean();
        self.flag.enabled = true;
        self.flag.fallthrough = Serve::Variation(serve.to_owned());
        self.flag.off_variation = off.to_owned();
        self.flag.rules.clear();
        self.flag.targets.clear();
        self
    }

    /// Any flag serving `value` to everyone: its kind follows the value's JSON type.
    pub fn value_for_all(mut self, value: impl Into<Value>) -> Self {
        let value = value.into();
        self.flag.kind = match value {
            Value::Bool(_) => FlagKind::Boolean,
            Value::String(_) => FlagKind::String,
            Value::Number(_) => FlagKind::Number,
            _ => FlagKind::Json,
        };
        self.flag.variations = vec![Variation {
            key: "value".to_owned(),
            value,
        }];
        self.flag.enabled = true;
        self.flag.off_variation = "value".to_owned();
        self.flag.fallthrough = Serve::Variation("value".to_owned());
        self.flag.rules.clear();
        self.flag.targets.clear();
        self
    }

    /// Serves variation `variation` (e.g. `on`) to the context key `context_key`.
    pub fn target(mut self, context_key: &str, variation: &str) -> Self {
        match self
            .flag
            .targets
            .iter_mut()
            .find(|t| t.variation == variation)
        {
            Some(target) => target.keys.push(context_key.to_owned()),
            None => self.flag.targets.push(Target {
                variation: variation.to_owned(),
                keys: vec![context_key.to_owned()],
            }),
        }
        self
    }

    fn boolean(mut self) -> Self {
        if self.flag.kind != FlagKind::Boolean {
            let key = std::mem::take(&mut self.flag.key);
            self.flag = boolean_flag(&key);
        }
        self
    }

    /// The configuration built so far.
    pub fn build(self) -> Flag {
        self.flag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::eval::{ErrorKind, Reason};

    #[test]
    fn drives_clients_and_notifies() {
        let td = TestData::new();
        let client = td.client();
        let mut changes = client.subscribe();
        let ctx = Context::new("u1");
        assert!(!client.bool_variation("f", &ctx, false));
        td.update(td.flag("f").serve(true).target("u2", "off"));
        assert!(client.bool_variation("f", &ctx, false));
        assert!(!client.bool_variation("f", &Context::new("u2"), true));
        let change = changes.try_recv().unwrap();
        assert_eq!(change.flags, vec!["f".to_owned()]);
        td.update(td.flag("f").on(false));
        assert_eq!(
            client
                .json_variation_detail("f", &ctx, serde_json::Value::Null)
                .reason,
            Reason::Off
        );
        td.update(td.flag("name").value_for_all("Ada"));
        assert_eq!(client.string_variation("name", &ctx, "x"), "Ada");
        assert!(
            client.bool_variation("name", &ctx, true),
            "wrong type serves the default"
        );
        td.delete("name");
        assert_eq!(
            client
                .json_variation_detail("name", &ctx, serde_json::Value::Null)
                .reason,
            Reason::Error {
                error: ErrorKind::FlagNotFound
            }
        );
        assert_eq!(client.status(), Status::Valid);
    }
}
