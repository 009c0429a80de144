//! The stream's wire format (contract section 5): each frame encoded once, as `Bytes` that
//! every subscriber shares (a clone is a reference count, never a copy).

use std::ops::Range;

use bytes::Bytes;
use flag_sdk::{Change, CompiledSnapshot};

/// A heartbeat: an SSE comment.
pub(super) const HEARTBEAT: &[u8] = b":\n\n";

/// The `retry:` frame that opens every stream.
pub(super) fn retry(retry: std::time::Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", retry.as_millis()))
}

/// A change's `patch` or `delete` event, with `id:` = the revision and `data:` its wire form.
pub(super) fn change(change: &Change) -> Bytes {
    let data = serde_json::to_string(change).unwrap_or_default();
    Bytes::from(format!(
        "event: {}\nid: {}\ndata: {data}\n\n",
        change.event(),
        change.revision()
    ))
}

/// An OFREP change notification (ADR-0008): the SSE event is always `message`, its data says
/// `refetchEvaluation`, and `etag` the revision the environment is at.
pub(super) fn refetch(revision: u64) -> Bytes {
    Bytes::from(format!(
        "event: message\nid: {revision}\ndata: {{\"type\":\"refetchEvaluation\",\"etag\":\"{revision}\"}}\n\n"
    ))
}

/// An environment's `put` event for one revision, encoded once and shared by every
/// subscriber it is sent to; its `data:` line is the snapshot JSON that `/sdk/v1/snapshot`
/// serves, a slice of the same bytes.
#[derive(Debug, Clone)]
pub(super) struct Put {
    revision: u64,
    frame: Bytes,
    json: Range<usize>,
}

impl Put {
    /// Encodes `snapshot`'s `put`.
    pub(super) fn encode(snapshot: &CompiledSnapshot) -> Put {
        let json = serde_json::to_vec(snapshot.snapshot()).unwrap_or_default();
        let head = format!("event: put\nid: {}\ndata: ", snapshot.revision());
        let mut frame = Vec::with_capacity(head.len() + json.len() + 2);
        frame.extend_from_slice(head.as_bytes());
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b"\n\n");
        Put {
            revision: snapshot.revision(),
            json: head.len()..head.len() + json.len(),
            frame: Bytes::from(frame),
        }
    }

    /// The revision this `put` brings a subscriber to.
    pub(super) fn revision(&self) -> u64 {
        self.revision
    }

    /// The whole SSE frame.
    pub(super) fn frame(&self) -> Bytes {
        self.frame.clone()
    }

    /// The snapshot JSON alone.
    pub(super) fn json(&self) -> Bytes {
        self.frame.slice(self.json.clone())
    }
}
