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
//! - **Memory**: a `put` is encoded once per revision and shared; a subscriber's bytes reach
//!   its connection a few KiB at a time, so an idle connection costs the same whatever the
//!   size of its environment (see `subscription`).
//! - Locks here are `std` locks taken for a few instructions, never across an `.await`.
//!
//! Layout: `ring` (one environment's channel, replay and `put`), `subscription` (one
//! subscriber), `wire` (the SSE encoding).

mod ring;
mod subscription;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use flag_sdk::{Change, CompiledSnapshot};
use futures_util::Stream;

use ring::{EnvStream, Frame};
use subscription::Subscription;

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

/// Fans committed changes out to subscribers.
pub struct Broadcaster {
    settings: StreamSettings,
    envs: RwLock<HashMap<String, Arc<EnvStream>>>,
    heartbeat: OnceLock<()>,
    heartbeat_frame: Bytes,
    retry_frame: Bytes,
    /// Counts commits (local and other replicas'); the admin event stream wakes on it.
    /// `u64::MAX` means the server is stopping.
    commits: tokio::sync::watch::Sender<u64>,
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
            heartbeat_frame: Bytes::from_static(wire::HEARTBEAT),
            retry_frame: wire::retry(settings.retry),
            commits: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> StreamSettings {
        self.settings
    }

    /// Hands one committed change of `environment` to every subscriber of it. Never blocks.
    pub fn publish(&self, environment: &str, change: &Change) {
        let revision = change.revision();
        let frame = Frame {
            revision: Some(revision),
            bytes: wire::change(change),
        };
        self.env(environment, revision.saturating_sub(1))
            .publish(frame, self.settings.replay);
    }

    /// How many SDK subscribers `environment` has right now.
    pub fn subscribers(&self, environment: &str) -> usize {
        self.read_envs()
            .get(environment)
            .map_or(0, |env| env.receivers())
    }

    /// Subscriber counts of every environment that has had a stream, sorted by environment.
    pub fn subscriber_counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = self
            .read_envs()
            .iter()
            .map(|(k, env)| (k.clone(), env.receivers()))
            .collect();
        counts.sort();
        counts
    }

    /// The JSON of `snapshot`, encoded once per revision and shared by every `put` and
    /// `/sdk/v1/snapshot` response.
    pub fn snapshot_json(&self, snapshot: &CompiledSnapshot) -> Bytes {
        self.env(snapshot.environment(), snapshot.revision())
            .put(snapshot)
            .json()
    }

    /// Subscribes to `environment`; `None` when `current` finds no such environment.
    ///
    /// `current` reads the environment's current snapshot. It is called after subscribing,
    /// under the lock `publish` sends under, so no change can fall between the snapshot and
    /// the stream. With `last_event_id`, the missed changes are replayed when this replica
    /// still holds them; when it does not, [`Joining::missing`] says which to read from the
    /// change log, and [`Joining::start`] takes them. `alive` is asked at every heartbeat
    /// (e.g. "is the token still valid"); `false` ends the stream.
    pub fn subscribe(
        self: &Arc<Self>,
        environment: &str,
        current: &dyn Fn() -> Option<Arc<CompiledSnapshot>>,
        last_event_id: Option<u64>,
        alive: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Option<Joining> {
        self.start_heartbeat();
        let env = self.env(environment, 0);
        let joined = env.join(current, last_event_id)?;
        Some(Joining {
            retry: self.retry_frame.clone(),
            env,
            joined,
            last_event_id,
            alive: Box::new(alive),
        })
    }

    /// Subscribes to `environment`'s change notifications (OFREP, ADR-0008): `retry:`, then
    /// one `refetchEvaluation` event per change committed from now on, and the heartbeats.
    /// A subscriber that last saw revision `seen` gets one at once if the environment has
    /// moved on since.
    /// The same ring as the SDK stream, so a notification leaves at the same instant as the
    /// SDKs' `patch`. `None` for an unknown environment.
    pub fn notifications(
        self: &Arc<Self>,
        environment: &str,
        current: &dyn Fn() -> Option<Arc<CompiledSnapshot>>,
        seen: Option<u64>,
        alive: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Option<impl Stream<Item = Result<Bytes, Infallible>> + 'static> {
        self.start_heartbeat();
        let joined = self.env(environment, 0).join(current, None)?;
        let mut start = VecDeque::from([self.retry_frame.clone()]);
        let revision = joined.snapshot.revision();
        if seen.is_some_and(|seen| seen < revision) {
            start.push_back(wire::refetch(revision));
        }
        let subscription = Subscription {
            rx: joined.rx,
            start,
            held_back: None,
            last_sent: joined.snapshot.revision(),
            alive: Box::new(alive),
            notify: true,
        };
        Some(subscription.into_body())
    }

    /// Records that a group of writes committed (here or on another replica): the admin
    /// event stream (`/api/v1/events`) then reads the audit rows it has not sent yet.
    pub fn committed(&self) {
        self.commits
            .send_modify(|n| *n = n.wrapping_add(1) % u64::MAX);
    }

    /// Wakes on every [`Broadcaster::committed`]; holds `u64::MAX` once the server stops.
    pub fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Ends every open stream (before a graceful shutdown, which would otherwise wait for
    /// them). SDKs reconnect to whatever serves next.
    pub fn shutdown(&self) {
        self.commits.send_replace(u64::MAX);
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
            .or_insert_with(|| Arc::new(EnvStream::new(self.settings.buffer, floor)))
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

    /// Sends every subscriber a heartbeat now, at which each checks its token: called after
    /// the token table changed (here or on another replica), so a revoked token's streams
    /// end at once rather than at the next beat.
    pub fn check_tokens(&self) {
        self.beat();
    }

    fn beat(&self) {
        let envs: Vec<Arc<EnvStream>> = self.read_envs().values().cloned().collect();
        for env in envs {
            env.beat(&self.heartbeat_frame);
        }
    }
}

/// A subscriber that has joined its environment's ring and not started yet: the changes it
/// missed may have to come from the change log first (another replica made them, or this
/// one no longer holds them).
pub struct Joining {
    retry: Bytes,
    env: Arc<EnvStream>,
    joined: ring::Joined,
    last_event_id: Option<u64>,
    alive: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Joining {
    /// `(after, upto)`: the revisions after `Last-Event-ID` up to the snapshot's that this
    /// replica does not hold; `None` when it needs nothing from the log (replayed from
    /// memory, nothing missed, or no `Last-Event-ID`).
    pub fn missing(&self) -> Option<(u64, u64)> {
        let upto = self.joined.snapshot.revision();
        match (self.last_event_id, &self.joined.replayed) {
            (Some(after), None) if after < upto => Some((after, upto)),
            _ => None,
        }
    }

    /// The stream's body: `retry:`, then the replay (from memory, or `from_log`: every change
    /// [`missing`](Self::missing) named, in order), else a `put`; then the ring.
    pub fn start(
        self,
        from_log: Option<Vec<Change>>,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> {
        let Joining {
            retry,
            env,
            joined,
            last_event_id,
            alive,
        } = self;
        let mut start = VecDeque::from([retry]);
        let from_log = from_log.filter(|changes| !changes.is_empty());
        let (last_sent, source) = match (joined.replayed, from_log) {
            (Some((frames, last)), _) => {
                start.extend(frames);
                (last, "memory")
            }
            (None, Some(changes)) => {
                start.extend(changes.iter().map(wire::change));
                (changes.last().map_or(0, Change::revision), "change log")
            }
            (None, None) => {
                start.push_back(env.put(&joined.snapshot).frame());
                (joined.snapshot.revision(), "put")
            }
        };
        tracing::debug!(
            environment = joined.snapshot.environment(),
            revision = joined.snapshot.revision(),
            replay = ?last_event_id,
            source,
            "SDK stream subscribed"
        );
        Subscription {
            rx: joined.rx,
            start,
            held_back: None,
            last_sent,
            alive,
            notify: false,
        }
        .into_body()
    }
}
