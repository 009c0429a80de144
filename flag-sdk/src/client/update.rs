//! The stream's events (contract section 5) as typed updates: `put` (a whole snapshot), `patch`
//! (one flag or segment) and `delete`. Parsing only; applying them is `state`'s job.
//!
//! Forward compatible: a newer server may send event types, or patch and delete `kind`s, this
//! client does not know; they parse as "nothing to do" (`Ok(None)`), never as an error, so the
//! stream carries on and every later update applies.

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Flag, Segment, Snapshot};

use super::sse::Event;

/// Whether a patch or delete is about a flag or a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A flag.
    Flag,
    /// A segment.
    Segment,
}

/// A new or changed flag or segment.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A flag's configuration.
    Flag(Flag),
    /// A segment.
    Segment(Segment),
}

/// One update of the held snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The whole snapshot.
    Put(Snapshot),
    /// One flag or segment, new or changed.
    Patch {
        /// The environment revision it brings.
        revision: u64,
        /// The flag or segment.
        item: Item,
    },
    /// One flag or segment removed.
    Delete {
        /// The environment revision it brings.
        revision: u64,
        /// Flag or segment.
        kind: ItemKind,
        /// Its key.
        key: String,
    },
}

impl Update {
    /// The environment revision after this update.
    pub fn revision(&self) -> u64 {
        match self {
            Update::Put(snapshot) => snapshot.revision,
            Update::Patch { revision, .. } | Update::Delete { revision, .. } => *revision,
        }
    }
}

/// Why an event could not be used. The stream task logs a bad `patch` or `delete` and skips
/// it (see [`UpdateError::is_skippable`]); a bad `put` drops the connection, the client keeps
/// its data and reconnects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The event's data is not the JSON its type requires.
    #[error("malformed `{event}` event")]
    Data {
        /// The event type.
        event: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A patch's `key` disagrees with the key inside its `data`.
    #[error("patch for `{key}` carries data for `{inner}`")]
    KeyMismatch {
        /// The patch's key.
        key: String,
        /// The key inside `data`.
        inner: String,
    },
    /// A patch or delete arrived before any snapshot.
    #[error("patch or delete before the first put")]
    PatchBeforePut,
}

impl UpdateError {
    /// Whether the stream may skip the event and carry on: true for a `patch` or `delete`
    /// (one item; the server would replay the same event on a reconnection, so reconnecting
    /// would stop every later update), false for a `put` (no consistent base to go on from).
    pub fn is_skippable(&self) -> bool {
        match self {
            UpdateError::Data { event, .. } => event != "put",
            UpdateError::KeyMismatch { .. } => true,
            UpdateError::PatchBeforePut => false,
        }
    }
}

/// A patch or delete body; `kind` stays a string so that kinds added by a newer server are
/// recognised as unknown rather than failing the parse.
#[derive(Deserialize)]
struct PatchBody {
    revision: u64,
    kind: String,
    key: String,
    #[serde(default)]
    data: Value,
}

/// The kind named by a patch or delete; `None` (logged) for kinds this client does not know.
fn item_kind(body: &PatchBody, event: &Event) -> Option<ItemKind> {
    match body.kind.as_str() {
        "flag" => Some(ItemKind::Flag),
        "segment" => Some(ItemKind::Segment),
        other => {
            tracing::debug!(event = %event.event, kind = other, key = %body.key, revision = body.revision,
                "stream event of unknown kind ignored");
            None
        }
    }
}

/// Parses an event; `Ok(None)` for event types, and patch or delete kinds, this client does
/// not know (ignored).
pub fn parse(event: &Event) -> Result<Option<Update>, UpdateError> {
    let data_error = |source| UpdateError::Data {
        event: event.event.clone(),
        source,
    };
    Ok(Some(match event.event.as_str() {
        "put" => Update::Put(serde_json::from_str(&event.data).map_err(data_error)?),
        "patch" => {
            let body: PatchBody = serde_json::from_str(&event.data).map_err(data_error)?;
            let Some(kind) = item_kind(&body, event) else {
                return Ok(None);
            };
            let (item, inner) = match kind {
                ItemKind::Flag => {
                    let flag: Flag = serde_json::from_value(body.data).map_err(data_error)?;
                    let inner = flag.key.clone();
                    (Item::Flag(flag), inner)
                }
                ItemKind::Segment => {
                    let segment: Segment = serde_json::from_value(body.data).map_err(data_error)?;
                    let inner = segment.key.clone();
                    (Item::Segment(segment), inner)
                }
            };
            if inner != body.key {
                return Err(UpdateError::KeyMismatch {
                    key: body.key,
                    inner,
                });
            }
            Update::Patch {
                revision: body.revision,
                item,
            }
        }
        "delete" => {
            let body: PatchBody = serde_json::from_str(&event.data).map_err(data_error)?;
            let Some(kind) = item_kind(&body, event) else {
                return Ok(None);
            };
            Update::Delete {
                revision: body.revision,
                kind,
                key: body.key,
            }
        }
        other => {
            tracing::debug!(event = other, "stream event of unknown type ignored");
            return Ok(None);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, data: &str) -> Event {
        Event {
            event: event.to_owned(),
            data: data.to_owned(),
            id: String::new(),
        }
    }

    const FLAG: &str = r#"{"key": "a", "kind": "boolean", "version": 2,
        "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
        "off_variation": "off", "fallthrough": {"variation": "on"}}"#;

    #[test]
    fn parses_the_three_event_types() {
        let put = parse(&event(
            "put",
            r#"{"environment": "production", "revision": 3}"#,
        ));
        assert_eq!(put.unwrap().unwrap().revision(), 3);
        let patch = format!(r#"{{"revision": 4, "kind": "flag", "key": "a", "data": {FLAG}}}"#);
        let patch = parse(&event("patch", &patch)).unwrap().unwrap();
        assert!(
            matches!(patch, Update::Patch { revision: 4, item: Item::Flag(ref f) } if f.key == "a")
        );
        let delete = parse(&event(
            "delete",
            r#"{"revision": 5, "kind": "segment", "key": "b"}"#,
        ));
        assert!(matches!(
            delete.unwrap().unwrap(),
            Update::Delete {
                revision: 5,
                kind: ItemKind::Segment,
                ..
            }
        ));
        assert!(parse(&event("message", "whatever")).unwrap().is_none());
    }

    #[test]
    fn unknown_types_and_kinds_are_ignored() {
        assert!(parse(&event("experiment", "{not json")).unwrap().is_none());
        let patch = r#"{"revision": 4, "kind": "webhook", "key": "w", "data": {"url": 1}}"#;
        assert!(parse(&event("patch", patch)).unwrap().is_none());
        let delete = r#"{"revision": 5, "kind": "webhook", "key": "w"}"#;
        assert!(parse(&event("delete", delete)).unwrap().is_none());
    }

    #[test]
    fn rejects_malformed_data() {
        assert!(parse(&event("put", "{not json")).is_err());
        assert!(parse(&event(
            "patch",
            r#"{"revision": 1, "kind": "flag", "key": "a", "data": {}}"#
        ))
        .is_err());
        let mismatch = format!(r#"{{"revision": 4, "kind": "flag", "key": "b", "data": {FLAG}}}"#);
        assert!(matches!(
            parse(&event("patch", &mismatch)),
            Err(UpdateError::KeyMismatch { .. })
        ));
        // A bad patch or delete is skipped; a bad put is not.
        assert!(parse(&event("patch", "{")).unwrap_err().is_skippable());
        assert!(parse(&event("delete", "{")).unwrap_err().is_skippable());
        assert!(!parse(&event("put", "{")).unwrap_err().is_skippable());
    }
}
