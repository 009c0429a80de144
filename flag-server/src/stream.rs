//! The broadcaster: the commit point's fan-out to SSE subscribers (contract section 5).
//!
//! The store's writer thread calls [`Broadcaster::publish`] once per committed change, after
//! the SQLite COMMIT and after the in-memory snapshot of the environment was updated (see
//! `snapshots`), in revision order. It never blocks: each change is encoded once into an SSE
//! frame and sent into the environment's `tokio::sync::broadcast` ring, which every
//! subscriber of that environment reads at its own pace.
//!
//! - **Slow subscribers** are never waited for: a subscriber that falls more than
//!   [`StreamSettings::buffer`] frames behind gets `Lagged`, its stream ends, and the SDK
//!   reconnects and resyncs (replay or a fresh `put`).
//! - **Heartbeats** come from one shared thread that sends one comment frame per environment
//!   into the same ring every [`StreamSettings::heartbeat`]: no timer per connection.
//! - **Replay**: the last [`StreamSettings::replay`] changes per environment are held, so a
//!   client reconnecting with `Last-Event-ID` gets just what it missed when possible.
//! - Locks here are `std` locks taken for a few instructions, never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flag_sdk::CompiledSnapshot;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast;

/// One committed change, as the stream carries it (contract section 5 `patch`/`delete`).
#[derive(Debug, Clone)]
pub struct Change {
    /// The environment the change belongs to.
    pub environment: String,
    /// The environment's revision after this change.
    pub revision: u64,
    /// A flag or a segment.
    pub kind: ChangeKind,
    /// The flag's or segment's key.
    pub key: String,
    /// The section 2 JSON of the flag or segment; `None` = delete.
    pub data: Option<serde_json::Value>,
}

/// What a [`Change`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A flag's configuration in one environment.
    Flag,
    /// A segment.
    Segment,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Flag => "flag",
            ChangeKind::Segment => "segment",
        }
    }
}

/// The stream's tunables.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Interval between heartbeat comments (contract: at most 15 s).
    pub heartbeat: Duration,
    /// Frames a subscriber may fall behind before it is cut off.
    pub buffer: usize,
    /// Changes held per environment for `Last-Event-ID` replay.
    pub replay: usize,
    /// The reconnection delay advertised with `retry:`.
    pub retry: Duration,
}

/// The heartbeat interval by default: well inside the contract's 15 s.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            heartbeat: DEFAULT_HEARTBEAT,
            buffer: 256,
            replay: 1024,
            retry: Duration::from_secs(1),
        }
    }
}

/// One frame in an environment's ring: a change (with its revision) or a heartbeat.
#[derive(Debug, Clone)]
struct Frame {
    revision: Option<u64>,
    bytes: Bytes,
}

/// One environment's ring, replay buffer and encoded `put`.
struct EnvStream {
    tx: broadcast::Sender<Frame>,
    held: Mutex<Held>,
    put: Mutex<Option<(u64, Bytes)>>,
}

struct Held {
    /// Every published change with a revision above `floor` is in `frames`.
    floor: u64,
    frames: VecDeque<Frame>,
}

/// Fans committed changes out to subscribers.
pub struct Broadcaster {
    settings: StreamSettings,
    envs: RwLock<HashMap<String, Arc<EnvStream>>>,
    heartbeat: OnceLock<()>,
    heartbeat_frame: Bytes,
}

impl Default for Broadcaster {
    fn default() -> Self {
        Broadcaster::new(StreamSettings::default())
    }
}

impl Broadcaster {
    /// A broadcaster with these settings.
    pub fn new(settings: StreamSettings) -> Self {
        Broadcaster {
            settings: StreamSettings {
                buffer: settings.buffer.max(1),
                ..settings
            },
            envs: RwLock::new(HashMap::new()),
            heartbeat: OnceLock::new(),
            heartbeat_frame: Bytes::from_static(b":\n\n"),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> StreamSettings {
        self.settings
    }

    /// Hands one committed change to every subscriber of its environment. Never blocks.
    pub fn publish(&self, change: &Change) {
        let frame = Frame {
            revision: Some(change.revision),
            bytes: encode_change(change),
        };
        let env = self.env(&change.environment, change.revision.saturating_sub(1));
        {
            let mut held = env.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.frames.push_back(frame.clone());
            while held.frames.len() > self.settings.replay {
                if let Some(evicted) = held.frames.pop_front() {
                    held.floor = evicted.revision.unwrap_or(held.floor);
                }
            }
            // Sent under the lock so a subscriber's replay and its ring never miss a frame
            // between them (the ring's send is a short, non-blocking operation).
            let _ = env.tx.send(frame); // no subscribers is fine
        }
    }

    /// How many SDK subscribers `environment` has right now.
    pub fn subscribers(&self, environment: &str) -> usize {
        self.read_envs()
            .get(environment)
            .map_or(0, |env| env.tx.receiver_count())
    }

    /// Subscriber counts of every environment that has had a stream, sorted by environment.
    pub fn subscriber_counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = self
            .read_envs()
            .iter()
            .map(|(k, env)| (k.clone(), env.tx.receiver_count()))
            .collect();
        counts.sort();
        counts
    }

    /// The JSON of `snapshot`, encoded once per revision and shared by every `put` and
    /// `/sdk/v1/snapshot` response.
    pub fn snapshot_json(&self, snapshot: &CompiledSnapshot) -> Bytes {
        let env = self.env(snapshot.environment(), snapshot.revision());
        let mut put = env.put.lock().unwrap_or_else(PoisonError::into_inner);
        match &*put {
            Some((revision, json)) if *revision == snapshot.revision() => json.clone(),
            _ => {
                let json = Bytes::from(serde_json::to_vec(snapshot.snapshot()).unwrap_or_default());
                *put = Some((snapshot.revision(), json.clone()));
                json
            }
        }
    }

    /// Subscribes to `environment`; `None` when `current` finds no such environment.
    ///
    /// `current` reads the environment's current snapshot. It is called after subscribing,
    /// under the lock `publish` sends under, so no change can fall between the snapshot and
    /// the stream. With `last_event_id`, the missed changes are replayed when still held;
    /// otherwise the stream starts with a `put`. `alive` is asked at every heartbeat (e.g.
    /// "is the token still valid"); `false` ends the stream.
    pub fn subscribe(
        self: &Arc<Self>,
        environment: &str,
        current: &dyn Fn() -> Option<Arc<CompiledSnapshot>>,
        last_event_id: Option<u64>,
        alive: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Option<impl Stream<Item = Result<Bytes, Infallible>> + 'static> {
        self.start_heartbeat();
        let retry = Bytes::from(format!("retry: {}\n\n", self.settings.retry.as_millis()));
        let mut start: VecDeque<Bytes> = VecDeque::from([retry]);
        let env = self.env(environment, 0);
        let (rx, snapshot, replayed) = {
            let mut held = env.held.lock().unwrap_or_else(PoisonError::into_inner);
            let rx = env.tx.subscribe();
            let snapshot = current()?;
            if held.frames.is_empty() && held.floor == 0 {
                // First sight of this environment: everything up to now is in the snapshot.
                held.floor = snapshot.revision();
            }
            let replayable =
                last_event_id.filter(|&id| id >= held.floor && id <= snapshot.revision());
            let replayed = replayable.map(|id| {
                let mut last = id;
                for frame in held.frames.iter().filter(|f| f.revision > Some(id)) {
                    start.push_back(frame.bytes.clone());
                    last = frame.revision.unwrap_or(last);
                }
                last
            });
            (rx, snapshot, replayed)
        };
        let last_sent = match replayed {
            Some(last) => last,
            None => {
                let json = self.snapshot_json(&snapshot);
                start.push_back(encode_put(snapshot.revision(), &json));
                snapshot.revision()
            }
        };
        tracing::debug!(
            environment,
            revision = snapshot.revision(),
            replay = ?last_event_id,
            replayed = replayed.is_some(),
            "SDK stream subscribed"
        );
        let state = Subscription {
            rx,
            start,
            last_sent,
            alive: Box::new(alive),
        };
        Some(futures_util::stream::unfold(state, |mut s| async move {
            let bytes = s.next().await?;
            Some((Ok(bytes), s))
        }))
    }

    /// Ends every open stream (before a graceful shutdown, which would otherwise wait for
    /// them). SDKs reconnect to whatever serves next.
    pub fn shutdown(&self) {
        self.envs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// `flag_server_sse_subscribers{environment}` in Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::from(
            "# HELP flag_server_sse_subscribers SDK stream subscribers per environment\n\
             # TYPE flag_server_sse_subscribers gauge\n",
        );
        for (environment, n) in self.subscriber_counts() {
            out.push_str(&format!(
                "flag_server_sse_subscribers{{environment=\"{environment}\"}} {n}\n"
            ));
        }
        out
    }

    fn env(&self, environment: &str, floor: u64) -> Arc<EnvStream> {
        if let Some(env) = self.read_envs().get(environment) {
            return env.clone();
        }
        let mut envs = self.envs.write().unwrap_or_else(PoisonError::into_inner);
        envs.entry(environment.to_owned())
            .or_insert_with(|| {
                Arc::new(EnvStream {
                    tx: broadcast::channel(self.settings.buffer).0,
                    held: Mutex::new(Held {
                        floor,
                        frames: VecDeque::new(),
                    }),
                    put: Mutex::new(None),
                })
            })
            .clone()
    }

    fn read_envs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<EnvStream>>> {
        self.envs.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the one heartbeat thread on first use. It holds only a `Weak`, so it ends
    /// with the broadcaster.
    fn start_heartbeat(self: &Arc<Self>) {
        self.heartbeat.get_or_init(|| {
            let weak: Weak<Broadcaster> = Arc::downgrade(self);
            let interval = self.settings.heartbeat;
            let spawned = std::thread::Builder::new()
                .name("sse-heartbeat".into())
                .spawn(move || loop {
                    std::thread::sleep(interval);
                    let Some(broadcaster) = weak.upgrade() else {
                        return;
                    };
                    broadcaster.beat();
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the SSE heartbeat thread");
            }
        });
    }

    fn beat(&self) {
        let envs: Vec<Arc<EnvStream>> = self.read_envs().values().cloned().collect();
        for env in envs {
            if env.tx.receiver_count() > 0 {
                let _ = env.tx.send(Frame {
                    revision: None,
                    bytes: self.heartbeat_frame.clone(),
                });
            }
        }
    }
}

/// One subscriber's read position.
struct Subscription {
    rx: broadcast::Receiver<Frame>,
    start: VecDeque<Bytes>,
    last_sent: u64,
    alive: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Subscription {
    /// The next bytes to write; `None` ends the response (lagged or shut down). Frames that
    /// are already waiting in the ring are joined into one write, so during a burst of
    /// changes a subscriber costs one write per wake-up, and its SDK compiles once.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(bytes) = self.start.pop_front() {
            if self.start.is_empty() {
                self.start = VecDeque::new(); // an idle subscriber keeps no buffer
            }
            return Some(bytes);
        }
        let first = loop {
            let frame = match self.rx.recv().await {
                Ok(frame) => frame,
                Err(broadcast::error::RecvError::Lagged(missed)) => return lagged(missed),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let Some(bytes) = self.accept(frame)? {
                break bytes;
            }
        };
        let mut joined: Option<BytesMut> = None;
        loop {
            let frame = match self.rx.try_recv() {
                Ok(frame) => frame,
                Err(broadcast::error::TryRecvError::Lagged(missed)) => return lagged(missed),
                Err(_) => break, // empty, or closed after what is already here
            };
            if let Some(bytes) = self.accept(frame)? {
                joined
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&bytes);
            }
        }
        Some(joined.map_or(first, BytesMut::freeze))
    }

    /// What a frame adds to the stream: `Some(None)` for a change already sent, `None` when
    /// the stream must end because it is no longer authorized.
    fn accept(&mut self, frame: Frame) -> Option<Option<Bytes>> {
        match frame.revision {
            Some(revision) if revision <= self.last_sent => Some(None),
            Some(revision) => {
                self.last_sent = revision;
                Some(Some(frame.bytes))
            }
            // A heartbeat: the token is checked once per beat, off the path of a fan-out.
            None if !(self.alive)() => {
                tracing::info!("SDK stream closed: its token is no longer valid");
                None
            }
            None => Some(Some(frame.bytes)),
        }
    }
}

fn lagged(missed: u64) -> Option<Bytes> {
    tracing::info!(missed, "slow SDK subscriber cut off; it will resync");
    None
}

fn encode_change(change: &Change) -> Bytes {
    let (event, data) = match &change.data {
        Some(data) => (
            "patch",
            json!({"revision": change.revision, "kind": change.kind.as_str(),
                   "key": change.key, "data": data}),
        ),
        None => (
            "delete",
            json!({"revision": change.revision, "kind": change.kind.as_str(), "key": change.key}),
        ),
    };
    Bytes::from(format!(
        "event: {event}\nid: {}\ndata: {data}\n\n",
        change.revision
    ))
}

fn encode_put(revision: u64, json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 40);
    out.extend_from_slice(format!("event: put\nid: {revision}\ndata: ").as_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flag_sdk::client::sse::{Decoder, Frame as SseFrame};
    use futures_util::StreamExt;

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
    }

    fn change(revision: u64) -> Change {
        Change {
            environment: "production".to_owned(),
            revision,
            kind: ChangeKind::Flag,
            key: "f".to_owned(),
            data: None,
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

    fn ids(events: &[(String, String)]) -> Vec<&str> {
        events
            .iter()
            .map(|(e, id)| if e == "put" { "put" } else { id.as_str() })
            .collect()
    }

    #[tokio::test]
    async fn put_first_then_newer_changes_only() {
        let b = Arc::new(Broadcaster::default());
        b.publish(&change(5));
        let mut s = Box::pin(sub(&b, 5, None));
        assert_eq!(b.subscribers("production"), 1);
        b.publish(&change(5)); // already in the put
        b.publish(&change(6));
        assert_eq!(ids(&events(&mut s, 2).await), ["put", "6"]);
        drop(s);
        assert_eq!(b.subscribers("production"), 0);
    }

    #[tokio::test]
    async fn a_burst_already_waiting_is_one_write() {
        let b = Arc::new(Broadcaster::default());
        let mut s = Box::pin(sub(&b, 0, None));
        assert_eq!(ids(&events(&mut s, 1).await), ["put"]);
        for r in 1..=3 {
            b.publish(&change(r));
        }
        let burst = s.next().await.unwrap().unwrap();
        let mut frames = Vec::new();
        Decoder::new().feed(&burst, &mut frames).unwrap();
        let got: Vec<_> = frames
            .into_iter()
            .filter_map(|f| match f {
                SseFrame::Event(e) => Some(e.id),
                _ => None,
            })
            .collect();
        assert_eq!(got, ["1", "2", "3"]);
    }

    #[tokio::test]
    async fn last_event_id_replays_or_falls_back_to_put() {
        let b = Arc::new(Broadcaster::new(StreamSettings {
            replay: 2,
            ..Default::default()
        }));
        for r in 1..=4 {
            b.publish(&change(r));
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
            b.publish(&change(r));
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
}
