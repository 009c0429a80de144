//! The SSE decoder against recorded streams: the same events from LF, CRLF (with a BOM) and
//! CR line endings, whatever the chunking.

use std::time::Duration;

use flag_sdk::client::sse::{Decoder, Frame};
use serde_json::{json, Value};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn as_json(frames: &[Frame]) -> Value {
    Value::Array(
        frames
            .iter()
            .map(|frame| match frame {
                Frame::Comment(text) => json!({"comment": text}),
                Frame::Retry(delay) => json!({"retry_ms": delay.as_millis() as u64}),
                Frame::Event(e) => json!({"event": e.event, "id": e.id, "data": e.data}),
            })
            .collect(),
    )
}

fn decode(bytes: &[u8], chunk: usize) -> Vec<Frame> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        decoder.feed(piece, &mut out).unwrap();
    }
    out
}

#[test]
fn recorded_streams_decode_the_same_with_any_line_ending_and_chunking() {
    let expected: Value = serde_json::from_slice(&data("stream.expected.json")).unwrap();
    for name in ["stream_lf.sse", "stream_crlf.sse", "stream_cr.sse"] {
        let bytes = data(name);
        for chunk in [bytes.len(), 1, 2, 3, 7, 64] {
            assert_eq!(
                as_json(&decode(&bytes, chunk)),
                expected,
                "{name} in chunks of {chunk}"
            );
        }
    }
}

#[test]
fn retry_is_reported_as_a_duration() {
    let frames = decode(&data("stream_lf.sse"), 5);
    assert!(frames.contains(&Frame::Retry(Duration::from_secs(1))));
}
