//! The stream's events (contract section 5) as typed updates: `put` (a whole snapshot), or a
//! `patch`/`delete` read into the one [`Change`] type. Parsing only; applying them is
//! `state`'s job.
//!
//! Forward compatible: a newer server may send event types, or patch and delete `kind`s, this
//! client does not know; they parse as "nothing to do" (`Ok(None)`), never as an error, so the
//! stream carries on and every later update applies.

use crate::change::{Change, ChangeError};
use crate::model::Snapshot;

use super::sse::Event;

/// One update of the held snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The whole snapshot.
    Put(Snapshot),
    /// One flag or segment, new, changed or deleted.
    Change(Change),
}

impl Update {
    /// The environment revision after this update.
    pub fn revision(&self) -> u64 {
        match self {
            Update::Put(snapshot) => snapshot.revision,
            Update::Change(change) => change.revision(),
        }
    }
}

/// Why an event could not be used. The stream task logs a bad `patch` or `delete` and skips
/// it (see [`UpdateError::is_skippable`]); a bad `put` drops the connection, the client keeps
/// its data and reconnects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The `put` event's data is not a snapshot.
    #[error("malformed `put` event")]
    Put(#[source] serde_json::Error),
    /// A `patch` or `delete` that cannot be read.
    #[error(transparent)]
    Change(#[from] ChangeError),
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
            UpdateError::Change(_) => true,
            UpdateError::Put(_) | UpdateError::PatchBeforePut => false,
        }
    }
}

/// Parses an event; `Ok(None)` for event types, and patch or delete kinds, this client does
/// not know (ignored).
pub fn parse(event: &Event) -> Result<Option<Update>, UpdateError> {
    if event.event == "put" {
        let snapshot = serde_json::from_str(&event.data).map_err(UpdateError::Put)?;
        return Ok(Some(Update::Put(snapshot)));
    }
    let change = Change::from_event(&event.event, &event.data)?;
    if change.is_none() {
        tracing::debug!(event = %event.event, id = %event.id,
            "stream event of unknown type or kind ignored");
    }
    Ok(change.map(Update::Change))
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
            matches!(patch, Update::Change(Change::Flag { revision: 4, ref flag }) if flag.key == "a")
        );
        let delete = parse(&event(
            "delete",
            r#"{"revision": 5, "kind": "segment", "key": "b"}"#,
        ));
        assert!(matches!(
            delete.unwrap().unwrap(),
            Update::Change(Change::SegmentDeleted { revision: 5, .. })
        ));
        assert!(parse(&event("message", "whatever")).unwrap().is_none());
    }

    #[test]
    fn unknown_types_and_kinds_are_ignored() {
        assert!(parse(&event("experiment", "{not json")).unwrap().is_none());
        let patch = r#"{"revision": 4, "kind": "webhook", "key": "w", "data": {"url": 1}}"#;
        assert!(parse(&event("patch", patch)).unwrap().is_none());
    }

    #[test]
    fn a_bad_patch_or_delete_is_skipped_and_a_bad_put_is_not() {
        let mismatch = format!(r#"{{"revision": 4, "kind": "flag", "key": "b", "data": {FLAG}}}"#);
        assert!(parse(&event("patch", &mismatch))
            .unwrap_err()
            .is_skippable());
        assert!(parse(&event("patch", "{")).unwrap_err().is_skippable());
        assert!(parse(&event("delete", "{")).unwrap_err().is_skippable());
        assert!(!parse(&event("put", "{")).unwrap_err().is_skippable());
    }
}
