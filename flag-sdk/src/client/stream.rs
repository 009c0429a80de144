//! The one background task that owns a client's stream: connect, decode, apply, and on any
//! failure keep the data held and reconnect with [`backoff`](super::backoff). It stops when
//! its cancellation token fires.
//!
//! Errors are sorted here: 401/403 are [`Failure::Auth`] (minutes between tries); everything
//! else (network, 5xx, malformed events, silence past `stale_after`) is recoverable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CACHE_CONTROL};
use reqwest::StatusCode;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::compile::CompiledSnapshot;

use super::backoff::{Backoff, Failure};
use super::cache;
use super::sse::{Decoder, Frame};
use super::state::{Shared, Status};
use super::update;

/// The stream path under the server URL.
pub const STREAM_PATH: &str = "/sdk/v1/stream";

/// Everything the task needs, fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    pub stale_after: Duration,
    pub initial_delay: Duration,
    pub cache_file: Option<PathBuf>,
}

/// How one connection ended.
#[derive(Debug)]
enum End {
    Cancelled,
    Failed(Failure),
}

/// Runs until `cancel` fires.
pub(crate) async fn run(config: StreamConfig, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(config.initial_delay);
    let cache = cache_writer(config.cache_file.clone());
    loop {
        let started = Instant::now();
        let end = tokio::select! {
            biased;
            () = cancel.cancelled() => End::Cancelled,
            end = connect_once(&config, &shared, &mut backoff, &cache) => end,
        };
        let failure = match end {
            End::Cancelled => return,
            End::Failed(failure) => failure,
        };
        let status = match (failure, shared.load().is_some()) {
            (Failure::Auth, _) => Status::Offline,
            (Failure::Recoverable, true) => Status::Stale,
            (Failure::Recoverable, false) => Status::Initializing,
        };
        shared.set_status(status);
        let delay = backoff.next_delay(failure, started.elapsed(), rand::random::<f64>());
        tracing::debug!(?delay, ?failure, "flag stream reconnecting");
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn connect_once(
    config: &StreamConfig,
    shared: &Shared,
    backoff: &mut Backoff,
    cache: &CacheQueue,
) -> End {
    let mut request = config
        .http
        .get(&config.url)
        .bearer_auth(&config.token)
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    if let Some(revision) = shared.revision() {
        request = request.header("Last-Event-ID", revision.to_string());
    }
    let response = match tokio::time::timeout(config.stale_after, request.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            tracing::warn!(%error, "flag stream connection failed");
            return End::Failed(Failure::Recoverable);
        }
        Err(_) => {
            tracing::warn!("flag stream connection timed out");
            return End::Failed(Failure::Recoverable);
        }
    };
    match response.status() {
        StatusCode::OK => {}
        status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            tracing::error!(%status, "flag server refused the SDK token");
            return End::Failed(Failure::Auth);
        }
        status => {
            tracing::warn!(%status, "flag stream refused");
            return End::Failed(Failure::Recoverable);
        }
    }
    let mut body = response.bytes_stream();
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(config.stale_after, body.next()).await {
            Err(_) => {
                tracing::warn!(after = ?config.stale_after, "flag stream silent; reconnecting");
                return End::Failed(Failure::Recoverable);
            }
            Ok(None) => {
                tracing::info!("flag stream closed by the server");
                return End::Failed(Failure::Recoverable);
            }
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "flag stream read failed");
                return End::Failed(Failure::Recoverable);
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if let Err(error) = decoder.feed(&chunk, &mut frames) {
            tracing::warn!(%error, "flag stream malformed; reconnecting");
            return End::Failed(Failure::Recoverable);
        }
        // Every event of this chunk is applied at once: a burst compiles one snapshot. The
        // events before a malformed one are still applied, so the reconnection asks the
        // server to replay from the last good revision.
        let mut updates = Vec::new();
        let mut malformed = None;
        for frame in frames.drain(..) {
            match frame {
                Frame::Comment(_) => {}
                Frame::Retry(delay) => backoff.set_initial(delay.max(Duration::from_millis(100))),
                Frame::Event(event) => match update::parse(&event) {
                    Ok(Some(update)) => updates.push(update),
                    Ok(None) => {}
                    Err(error) => {
                        malformed = Some(error);
                        break;
                    }
                },
            }
        }
        match shared.apply(updates) {
            Ok(Some(change)) => {
                tracing::debug!(revision = change.revision, flags = ?change.flags, "flags updated");
                if let Some(cache) = cache {
                    cache.send_replace(shared.load_full());
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "flag stream event unusable; reconnecting");
                return End::Failed(Failure::Recoverable);
            }
        }
        if let Some(error) = malformed {
            tracing::warn!(%error, "flag stream event malformed; reconnecting");
            return End::Failed(Failure::Recoverable);
        }
        // Any bytes (an event or a heartbeat) prove the data is current.
        if shared.load().is_some() {
            shared.touch(SystemTime::now());
            if shared.status() != Status::Valid {
                shared.set_status(Status::Valid);
            }
        }
    }
}

/// Latest snapshot to write to the cache file; one writer task drains it, so writes never
/// overlap and a burst of updates costs one write of the newest.
type CacheQueue = Option<watch::Sender<Option<Arc<CompiledSnapshot>>>>;

fn cache_writer(path: Option<PathBuf>) -> CacheQueue {
    let path = path?;
    let (tx, mut rx) = watch::channel::<Option<Arc<CompiledSnapshot>>>(None);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let Some(flags) = rx.borrow_and_update().clone() else {
                continue;
            };
            let path = path.clone();
            let written =
                tokio::task::spawn_blocking(move || cache::store(&path, flags.snapshot()));
            match written.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "flag cache file not written"),
                Err(error) => tracing::warn!(%error, "flag cache writer failed"),
            }
        }
    });
    Some(tx)
}
