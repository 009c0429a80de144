//! One change of an environment: a flag or a segment upserted or deleted at a revision. The
//! one shape of it everywhere: the server writes its change log from it and reads the log back
//! into it, its stream sends it, and the SDK's stream client decodes it and applies it with
//! [`Snapshot::apply`]. Plain data and its wire form (contract section 5): no I/O.
//!
//! Wire form: the data of the stream's `patch` event, `{"revision", "kind": "flag" |
//! "segment", "key", "data": {...}}`, and of its `delete` event, `{"revision", "kind",
//! "key"}`; `data` is the section 2 JSON of the flag or segment. Reading accepts the future:
//! a `kind` this version does not know is "nothing to apply" ([`Change::from_event`] answers
//! `Ok(None)`), never an error.

use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::model::{Flag, Segment, Snapshot};

/// One committed change of an environment: a flag or a segment, new or changed, or deleted,
/// and the environment's revision after it. Its serde form is the stream's `patch`/`delete`
/// data (see [`Change::event`]).
///
/// ```
/// use flag_sdk::{Change, Snapshot};
///
/// let change = Change::from_event("delete", r#"{"revision": 8, "kind": "flag", "key": "old"}"#)
///     .unwrap()
///     .expect("a kind this version knows");
/// assert_eq!((change.revision(), change.kind(), change.key()), (8, "flag", "old"));
/// assert_eq!(serde_json::to_string(&change).unwrap(),
///            r#"{"revision":8,"kind":"flag","key":"old"}"#);
///
/// let mut snapshot = Snapshot { environment: "production".into(), revision: 7, ..Default::default() };
/// assert!(snapshot.apply(&change));
/// assert!(!snapshot.apply(&change), "not newer than the snapshot: ignored");
/// assert_eq!(snapshot.revision, 8);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// A flag's configuration is new or changed (`patch`, kind `flag`).
    Flag {
        /// The environment's revision after the change.
        revision: u64,
        /// The flag's configuration in the environment.
        flag: Flag,
    },
    /// A segment is new or changed (`patch`, kind `segment`).
    Segment {
        /// The environment's revision after the change.
        revision: u64,
        /// The segment.
        segment: Segment,
    },
    /// A flag left the environment, e.g. archived (`delete`, kind `flag`).
    FlagDeleted {
        /// The environment's revision after the change.
        revision: u64,
        /// The flag's key.
        key: String,
    },
    /// A segment was deleted (`delete`, kind `segment`).
    SegmentDeleted {
        /// The environment's revision after the change.
        revision: u64,
        /// The segment's key.
        key: String,
    },
}

/// Why a change could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The JSON is not what a change of its kind requires.
    #[error("malformed `{event}` data")]
    Data {
        /// The event (`patch` or `delete`) or the part that was being read.
        event: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// An upsert's `key` disagrees with the key inside its `data`.
    #[error("change of `{key}` carries data for `{inner}`")]
    KeyMismatch {
        /// The change's key.
        key: String,
        /// The key inside `data`.
        inner: String,
    },
}

impl Change {
    /// The environment's revision after this change.
    pub fn revision(&self) -> u64 {
        match self {
            Change::Flag { revision, .. }
            | Change::Segment { revision, .. }
            | Change::FlagDeleted { revision, .. }
            | Change::SegmentDeleted { revision, .. } => *revision,
        }
    }

    /// `"flag"` or `"segment"`: the wire's and the change log's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Flag { .. } | Change::FlagDeleted { .. } => "flag",
            Change::Segment { .. } | Change::SegmentDeleted { .. } => "segment",
        }
    }

    /// The flag's or segment's key.
    pub fn key(&self) -> &str {
        match self {
            Change::Flag { flag, .. } => &flag.key,
            Change::Segment { segment, .. } => &segment.key,
            Change::FlagDeleted { key, .. } | Change::SegmentDeleted { key, .. } => key,
        }
    }

    /// The stream event that carries it: `patch` (an upsert) or `delete`.
    pub fn event(&self) -> &'static str {
        match self {
            Change::Flag { .. } | Change::Segment { .. } => "patch",
            Change::FlagDeleted { .. } | Change::SegmentDeleted { .. } => "delete",
        }
    }

    /// The section 2 JSON of the flag or segment (the wire's `data`); `None` for a delete.
    pub fn data_json(&self) -> Option<String> {
        let json = match self {
            Change::Flag { flag, .. } => serde_json::to_string(flag),
            Change::Segment { segment, .. } => serde_json::to_string(segment),
            Change::FlagDeleted { .. } | Change::SegmentDeleted { .. } => return None,
        };
        // The model's types always serialize.
        json.ok()
    }

    /// Reads the data of a stream event: `patch` or `delete`. `Ok(None)` for another event,
    /// or for a `kind` this version does not know (a newer server's). A `delete`'s `data`,
    /// if any, is ignored.
    pub fn from_event(event: &str, data: &str) -> Result<Option<Change>, ChangeError> {
        let upsert = match event {
            "patch" => true,
            "delete" => false,
            _ => return Ok(None),
        };
        let data_error = |source| ChangeError::Data {
            event: event.to_owned(),
            source,
        };
        let body: Body<&RawValue> = serde_json::from_str(data).map_err(data_error)?;
        // The item is read straight from the event's text, not through a `Value`.
        let item = upsert.then(|| body.data.map_or("null", RawValue::get));
        Change::from_parts(body.revision, &body.kind, body.key, item).map_err(|e| match e {
            ChangeError::Data { source, .. } => data_error(source),
            other => other,
        })
    }

    /// A change from its parts, as the server's change log stores them: `data` is the
    /// section 2 JSON of the flag or segment, `None` for a delete. `Ok(None)` for a `kind`
    /// this version does not know.
    pub fn from_parts(
        revision: u64,
        kind: &str,
        key: String,
        data: Option<&str>,
    ) -> Result<Option<Change>, ChangeError> {
        let Some(text) = data else {
            return build::<Value>(revision, kind, key, None);
        };
        let mut json = serde_json::Deserializer::from_str(text);
        let change = build(revision, kind, key, Some(&mut json))?;
        if change.is_some() {
            // A kind this version does not know leaves its data unread.
            json.end().map_err(|source| ChangeError::Data {
                event: kind.to_owned(),
                source,
            })?;
        }
        Ok(change)
    }
}

/// A change from the wire's or the log's parts, whichever JSON form `data` comes in.
fn build<'de, D>(
    revision: u64,
    kind: &str,
    key: String,
    data: Option<D>,
) -> Result<Option<Change>, ChangeError>
where
    D: Deserializer<'de, Error = serde_json::Error>,
{
    let data_error = |source| ChangeError::Data {
        event: kind.to_owned(),
        source,
    };
    let change = match (kind, data) {
        ("flag", None) => return Ok(Some(Change::FlagDeleted { revision, key })),
        ("segment", None) => return Ok(Some(Change::SegmentDeleted { revision, key })),
        ("flag", Some(data)) => Change::Flag {
            revision,
            flag: Flag::deserialize(data).map_err(data_error)?,
        },
        ("segment", Some(data)) => Change::Segment {
            revision,
            segment: Segment::deserialize(data).map_err(data_error)?,
        },
        _ => return Ok(None),
    };
    if change.key() != key {
        return Err(ChangeError::KeyMismatch {
            inner: change.key().to_owned(),
            key,
        });
    }
    Ok(Some(change))
}

/// The wire form of a change before its `kind` is known: kinds added by a newer server are
/// recognised as unknown rather than failing the parse. `data` is held as a `Value` by any
/// deserializer, or as its raw text when read from a stream event's text.
#[derive(Deserialize)]
struct Body<D> {
    revision: u64,
    kind: String,
    key: String,
    /// Absent for a delete (serde reads a missing `Option` as `None`).
    data: Option<D>,
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let upsert = self.event() == "patch";
        let mut s = serializer.serialize_struct("Change", if upsert { 4 } else { 3 })?;
        s.serialize_field("revision", &self.revision())?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("key", self.key())?;
        match self {
            Change::Flag { flag, .. } => s.serialize_field("data", flag)?,
            Change::Segment { segment, .. } => s.serialize_field("data", segment)?,
            Change::FlagDeleted { .. } | Change::SegmentDeleted { .. } => {}
        }
        s.end()
    }
}

/// With `data`, an upsert; without, a delete. A `kind` this version does not know is an error
/// here; [`Change::from_event`] reads it as nothing to apply instead.
impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let body = Body::<Value>::deserialize(deserializer)?;
        let kind = body.kind;
        build(body.revision, &kind, body.key, body.data)
            .map_err(de::Error::custom)?
            .ok_or_else(|| de::Error::custom(format!("unknown change kind `{kind}`")))
    }
}

impl Snapshot {
    /// Applies `change` when it is newer than the snapshot: the flag or segment is inserted,
    /// replaced or removed, and the snapshot takes the change's revision. A change at or
    /// below the snapshot's revision is already in it (a replay, or a reconnection that
    /// overlaps) and is ignored. Returns whether it applied.
    pub fn apply(&mut self, change: &Change) -> bool {
        if change.revision() <= self.revision {
            return false;
        }
        match change {
            Change::Flag { flag, .. } => {
                self.flags.insert(flag.key.clone(), flag.clone());
            }
            Change::Segment { segment, .. } => {
                self.segments.insert(segment.key.clone(), segment.clone());
            }
            Change::FlagDeleted { key, .. } => {
                self.flags.remove(key);
            }
            Change::SegmentDeleted { key, .. } => {
                self.segments.remove(key);
            }
        }
        self.revision = change.revision();
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flag_json(key: &str, version: u64) -> Value {
        json!({"key": key, "kind": "boolean", "version": version,
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "enabled": true, "off_variation": "off", "fallthrough": {"variation": "on"}})
    }

    fn snapshot(revision: u64) -> Snapshot {
        Snapshot {
            environment: "production".to_owned(),
            revision,
            ..Snapshot::default()
        }
    }

    fn event(event: &str, data: Value) -> Result<Option<Change>, ChangeError> {
        Change::from_event(event, &data.to_string())
    }

    #[test]
    fn the_wire_form_is_the_patch_and_delete_data_and_reads_back() {
        let patch = json!({"revision": 4, "kind": "flag", "key": "a", "data": flag_json("a", 2)});
        let change = event("patch", patch.clone()).unwrap().unwrap();
        assert_eq!(
            (change.event(), change.kind(), change.key()),
            ("patch", "flag", "a")
        );
        assert_eq!(serde_json::to_value(&change).unwrap(), patch);
        let delete = json!({"revision": 5, "kind": "segment", "key": "b"});
        let change = event("delete", delete.clone()).unwrap().unwrap();
        assert_eq!(
            change,
            Change::SegmentDeleted {
                revision: 5,
                key: "b".into()
            }
        );
        assert_eq!(serde_json::to_value(&change).unwrap(), delete);
        // Serde reads its own form back, with or without `data`.
        for wire in [patch, delete] {
            let back: Change = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), wire);
        }
    }

    #[test]
    fn unknown_kinds_and_events_are_nothing_to_apply_and_bad_data_is_an_error() {
        let webhook = json!({"revision": 4, "kind": "webhook", "key": "w", "data": {"url": 1}});
        assert!(event("patch", webhook.clone()).unwrap().is_none());
        assert!(serde_json::from_value::<Change>(webhook).is_err());
        assert!(event(
            "delete",
            json!({"revision": 5, "kind": "webhook", "key": "w"})
        )
        .unwrap()
        .is_none());
        assert!(Change::from_event("put", "{not json").unwrap().is_none());
        // A patch without usable data, a patch for another key, JSON that is no change.
        let empty = json!({"revision": 1, "kind": "flag", "key": "a", "data": {}});
        assert!(matches!(
            event("patch", empty),
            Err(ChangeError::Data { .. })
        ));
        assert!(matches!(
            event("patch", json!({"revision": 1, "kind": "flag", "key": "a"})),
            Err(ChangeError::Data { .. })
        ));
        let other = json!({"revision": 1, "kind": "flag", "key": "b", "data": flag_json("a", 1)});
        assert!(matches!(
            event("patch", other),
            Err(ChangeError::KeyMismatch { key, inner }) if key == "b" && inner == "a"
        ));
        assert!(Change::from_event("delete", "{").is_err());
    }

    #[test]
    fn the_change_log_parts_read_back_into_the_same_change() {
        let change = Change::from_event(
            "patch",
            &json!({"revision": 3, "kind": "flag", "key": "a", "data": flag_json("a", 1)})
                .to_string(),
        )
        .unwrap()
        .unwrap();
        let data = change.data_json().unwrap();
        let back = Change::from_parts(3, change.kind(), "a".into(), Some(&data));
        assert_eq!(back.unwrap(), Some(change));
        assert!(Change::from_parts(3, "flag", "a".into(), Some(&format!("{data} x"))).is_err());
        assert!(Change::from_parts(3, "tokens", "".into(), None)
            .unwrap()
            .is_none());
        let deleted = Change::from_parts(9, "flag", "a".into(), None)
            .unwrap()
            .unwrap();
        assert_eq!(deleted.data_json(), None);
        assert_eq!(deleted.event(), "delete");
    }

    #[test]
    fn apply_takes_only_newer_changes_and_moves_the_revision() {
        let mut s = snapshot(5);
        let upsert = |revision, version| {
            event(
                "patch",
                json!({"revision": revision, "kind": "flag", "key": "a", "data": flag_json("a", version)}),
            )
            .unwrap()
            .unwrap()
        };
        assert!(s.apply(&upsert(6, 1)));
        assert_eq!((s.revision, s.flags["a"].version), (6, 1));
        // Older or equal: already in the snapshot, ignored.
        assert!(!s.apply(&upsert(6, 2)));
        assert!(!s.apply(&upsert(4, 3)));
        assert_eq!((s.revision, s.flags["a"].version), (6, 1));
        let segment = json!({"revision": 7, "kind": "segment", "key": "beta",
            "data": {"key": "beta", "version": 1, "included": ["u"]}});
        assert!(s.apply(&event("patch", segment).unwrap().unwrap()));
        assert!(s.segments.contains_key("beta"));
        assert!(s.apply(&Change::FlagDeleted {
            revision: 8,
            key: "a".into()
        }));
        assert!(s.apply(&Change::SegmentDeleted {
            revision: 9,
            key: "beta".into()
        }));
        assert!(s.flags.is_empty() && s.segments.is_empty());
        assert_eq!(s.revision, 9);
    }
}
