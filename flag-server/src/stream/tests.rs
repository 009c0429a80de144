//! The broadcaster's unit tests: what each subscriber is sent, in what order, in what
//! pieces, and when it is cut off.

use std::task::{Context, Poll};

use super::subscription::PIECE;
use super::*;
use flag_sdk::client::sse::{Decoder, Frame as SseFrame};
use futures_util::StreamExt;
use serde_json::json;

fn snapshot(revision: u64) -> CompiledSnapshot {
    CompiledSnapshot::new(flag_sdk::Snapshot {
        environment: "production".to_owned(),
        revision,
        ..Default::default()
    })
}

fn sub(
    b: &Arc<Broadcaster>,
    revision: u64,
    last_event_id: Option<u64>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    b.subscribe(
        "production",
        &|| Some(Arc::new(snapshot(revision))),
        last_event_id,
        || true,
    )
    .unwrap()
    .start(None)
}

fn change(revision: u64) -> Change {
    Change::FlagDeleted {
        revision,
        key: "f".to_owned(),
    }
}

async fn events(
    stream: &mut (impl Stream<Item = Result<Bytes, Infallible>> + Unpin),
    n: usize,
) -> Vec<(String, String)> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut frames = Vec::new();
    while out.len() < n {
        let bytes = stream.next().await.unwrap().unwrap();
        decoder.feed(&bytes, &mut frames).unwrap();
        for frame in frames.drain(..) {
            if let SseFrame::Event(e) = frame {
                out.push((e.event, e.id));
            }
        }
    }
    out
}

/// A subscriber at revision 0 that has read its `put`.
async fn past_the_put(
    b: &Arc<Broadcaster>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin {
    let mut s = Box::pin(sub(b, 0, None));
    assert_eq!(ids(&events(&mut s, 1).await), ["put"]);
    s
}

/// The ids of the events `bytes` completes.
fn event_ids(decoder: &mut Decoder, bytes: &[u8]) -> Vec<String> {
    let mut frames = Vec::new();
    decoder.feed(bytes, &mut frames).unwrap();
    frames
        .into_iter()
        .filter_map(|f| match f {
            SseFrame::Event(e) => Some(e.id),
            _ => None,
        })
        .collect()
}

fn ids(events: &[(String, String)]) -> Vec<&str> {
    events
        .iter()
        .map(|(e, id)| if e == "put" { "put" } else { id.as_str() })
        .collect()
}

#[tokio::test]
async fn put_first_then_newer_changes_only() {
    let b = Arc::new(Broadcaster::default());
    b.publish("production", &change(5));
    let mut s = Box::pin(sub(&b, 5, None));
    assert_eq!(b.subscribers("production"), 1);
    b.publish("production", &change(5)); // already in the put
    b.publish("production", &change(6));
    assert_eq!(ids(&events(&mut s, 2).await), ["put", "6"]);
    drop(s);
    assert_eq!(b.subscribers("production"), 0);
}

#[tokio::test]
async fn a_burst_already_waiting_is_one_write() {
    let b = Arc::new(Broadcaster::default());
    let mut s = past_the_put(&b).await;
    for r in 1..=3 {
        b.publish("production", &change(r));
    }
    let burst = s.next().await.unwrap().unwrap();
    assert_eq!(event_ids(&mut Decoder::new(), &burst), ["1", "2", "3"]);
}

#[tokio::test]
async fn last_event_id_replays_or_falls_back_to_put() {
    let b = Arc::new(Broadcaster::new(StreamSettings {
        replay: 2,
        ..Default::default()
    }));
    for r in 1..=4 {
        b.publish("production", &change(r));
    }
    let mut s = Box::pin(sub(&b, 4, Some(2)));
    assert_eq!(ids(&events(&mut s, 2).await), ["3", "4"]);
    let mut s = Box::pin(sub(&b, 4, Some(1)));
    assert_eq!(
        ids(&events(&mut s, 1).await),
        ["put"],
        "revision 2 is no longer held"
    );
    let mut s = Box::pin(sub(&b, 4, Some(9)));
    assert_eq!(
        ids(&events(&mut s, 1).await),
        ["put"],
        "ahead of the server"
    );
}

#[tokio::test]
async fn a_lagging_subscriber_is_cut_off_without_slowing_others() {
    let b = Arc::new(Broadcaster::new(StreamSettings {
        buffer: 4,
        ..Default::default()
    }));
    let mut slow = Box::pin(sub(&b, 0, None));
    let mut fast = Box::pin(sub(&b, 0, None));
    assert_eq!(ids(&events(&mut fast, 1).await), ["put"]);
    for r in 1..=20 {
        b.publish("production", &change(r));
        let got = events(&mut fast, 1).await;
        assert_eq!(got[0].1, r.to_string());
    }
    // The slow one gets its start frames, then the end of its stream.
    let mut count = 0;
    while slow.next().await.is_some() {
        count += 1;
    }
    assert!(count <= 2, "retry and put only, then cut off");
}

/// A snapshot of `n` flags, about 200 bytes of JSON each.
fn big_snapshot(n: usize) -> CompiledSnapshot {
    let flags: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| {
            let key = format!("flag-{i:05}");
            let flag = json!({"key": key, "kind": "boolean", "version": 1, "enabled": true,
                "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                "off_variation": "off", "fallthrough": {"variation": "on"}});
            (key, flag)
        })
        .collect();
    let snapshot: flag_sdk::Snapshot = serde_json::from_value(json!({
        "environment": "production", "revision": 7, "flags": flags, "segments": {}
    }))
    .unwrap();
    CompiledSnapshot::new(snapshot)
}

/// Polls `stream` as a connection does, without waiting: the pieces it yields between two
/// `Pending`s (the connection flushes at each), until it has nothing more (two `Pending`s
/// in a row).
fn writes(stream: &mut (impl Stream<Item = Result<Bytes, Infallible>> + Unpin)) -> Vec<Vec<Bytes>> {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    let mut writes = vec![Vec::new()];
    loop {
        match stream.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(Ok(piece))) => writes.last_mut().unwrap().push(piece),
            Poll::Ready(None) => break,
            Poll::Pending if writes.last().unwrap().is_empty() && writes.len() > 1 => break,
            Poll::Pending => writes.push(Vec::new()),
        }
    }
    writes.retain(|w| !w.is_empty());
    writes
}

#[tokio::test]
async fn a_large_put_is_shared_and_goes_out_a_piece_per_flush() {
    let b = Arc::new(Broadcaster::default());
    let big = Arc::new(big_snapshot(300));
    let json = b.snapshot_json(&big);
    assert!(json.len() > 10 * PIECE, "{} bytes", json.len());
    let head = format!("event: put\nid: {}\ndata: ", big.revision());
    let frame = (json.as_ptr() as usize - head.len())..(json.as_ptr() as usize + json.len() + 2);
    for _ in 0..2 {
        let mut s = Box::pin(
            b.subscribe("production", &|| Some(big.clone()), None, || true)
                .unwrap()
                .start(None),
        );
        let writes = writes(&mut s);
        for write in &writes {
            let len: usize = write.iter().map(Bytes::len).sum();
            assert!(len <= PIECE, "{len} bytes between two flushes");
        }
        let pieces: Vec<Bytes> = writes.into_iter().flatten().collect();
        let sent: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
        let expected = [
            b"retry: 1000\n\n".as_slice(),
            head.as_bytes(),
            &json,
            b"\n\n",
        ]
        .concat();
        assert_eq!(sent, expected);
        // Every piece of the put is a slice of the one encoded frame: no copy per subscriber.
        for piece in &pieces[1..] {
            let at = piece.as_ptr() as usize;
            assert!(frame.contains(&at) && at + piece.len() <= frame.end);
        }
    }
}

#[tokio::test]
async fn a_burst_larger_than_a_piece_is_joined_up_to_a_piece_per_write() {
    let b = Arc::new(Broadcaster::default());
    let mut s = past_the_put(&b).await;
    for r in 1..=100 {
        let flag = json!({"key": "f", "kind": "string", "version": r,
            "variations": [{"key": "long", "value": "x".repeat(100)}],
            "off_variation": "long", "fallthrough": {"variation": "long"}});
        b.publish(
            "production",
            &Change::Flag {
                revision: r,
                flag: serde_json::from_value(flag).unwrap(),
            },
        );
    }
    let writes = writes(&mut s);
    assert!(writes.len() > 1, "more than one piece of changes");
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    for write in &writes {
        let len: usize = write.iter().map(Bytes::len).sum();
        assert!(len <= PIECE, "{len} bytes between two flushes");
        assert_eq!(
            write.len(),
            1,
            "the changes waiting are joined into one chunk"
        );
        got.extend(event_ids(&mut decoder, &write[0]));
    }
    let expected: Vec<String> = (1..=100).map(|r| r.to_string()).collect();
    assert_eq!(got, expected);
}
