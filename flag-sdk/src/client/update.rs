//! The stream's events (contract section 5) as typed updates: `put` (a whole snapshot), `patch`
//! (one flag or segment) and `delete`. Parsing only; applying them is `state`'s job.

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

/// Why an event could not be used. Any of these drops the connection; the client keeps its
/// data and reconnects.
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

#[derive(Deserialize)]
struct PatchBody {
    revision: u64,
    kind: ItemKind,
    key: String,
    data: Value,
}

#[derive(Deserialize)]
struct DeleteBody {
    revision: u64,
    kind: ItemKind,
    key: String,
}

/// Parses an event; `Ok(None)` for event types this client does not know (ignored).
pub fn parse(event: &Event) -> Result<Option<Update>, UpdateError> {
    let data_error = |source| UpdateError::Data {
        event: event.event.clone(),
        source,
    };
    Ok(Some(match event.event.as_str() {
        "put" => Update::Put(serde_json::from_str(&event.data).map_err(data_error)?),
        "patch" => {
            let body: PatchBody = serde_json::from_str(&event.data).map_err(data_error)?;
            let (item, inner) = match body.kind {
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
            let body: DeleteBody = serde_json::from_str(&event.data).map_err(data_error)?;
            Update::Delete {
                revision: body.revision,
                kind: body.kind,
                key: body.key,
            }
        }
        _ => return Ok(None),
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
    }
}
