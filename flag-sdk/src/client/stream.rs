//! The one background task that owns a client's stream: connect, decode, apply, and on any
//! failure keep the data held and reconnect with [`backoff`](super::backoff). It stops when
//! its cancellation token fires.
//!
//! Errors are sorted here:
//! - 401/403: the server refused the token. Status [`Status::Refused`]; `build()` returns
//!   [`ClientError::Refused`](super::ClientError::Refused) when it happens during start-up.
//!   The task keeps trying, but slowly ([`Failure::Auth`]: minutes between tries), so a token
//!   fixed on the server side is picked up without a hot loop against an auth failure.
//! - A `patch` or `delete` whose data cannot be used is logged and skipped: the server would
//!   replay the same event to a reconnection, so dropping the connection would stop every
//!   later update. Unknown event types and kinds are ignored (see `update`).
//! - Everything else (network, 5xx, a `put` that cannot be used, an overlong line, silence
//!   past `stale_after`) is recoverable: keep the data, reconnect with backoff.

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
    Failed,
    /// The server answered 401 or 403.
    Refused(StatusCode),
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
        let (failure, status) = match end {
            End::Cancelled => return,
            End::Refused(code) => (
                Failure::Auth,
                Status::Refused {
                    http_status: code.as_u16(),
                },
            ),
            End::Failed if shared.load().is_some() => (Failure::Recoverable, Status::Stale),
            End::Failed => (Failure::Recoverable, Status::Initializing),
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
            return End::Failed;
        }
        Err(_) => {
            tracing::warn!("flag stream connection timed out");
            return End::Failed;
        }
    };
    match response.status() {
        StatusCode::OK => {}
        status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            tracing::error!(%status, url = %config.url,
                "flag server refused the SDK token; is it an SDK token for this environment? \
                 retrying every few minutes");
            return End::Refused(status);
        }
        status => {
            tracing::warn!(%status, "flag stream refused");
            return End::Failed;
        }
    }
    let mut body = response.bytes_stream();
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(config.stale_after, body.next()).await {
            Err(_) => {
                tracing::warn!(after = ?config.stale_after, "flag stream silent; reconnecting");
                return End::Failed;
            }
            Ok(None) => {
                tracing::info!("flag stream closed by the server");
                return End::Failed;
            }
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "flag stream read failed");
                return End::Failed;
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if let Err(error) = decoder.feed(&chunk, &mut frames) {
            tracing::warn!(%error, "flag stream malformed; reconnecting");
            return End::Failed;
        }
        // Every event of this chunk is applied at once: a burst compiles one snapshot. The
        // events before an unusable `put` are still applied, so the reconnection asks the
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
                    Err(error) if error.is_skippable() => {
                        let cause = std::error::Error::source(&error).map(ToString::to_string);
                        tracing::warn!(%error, ?cause, id = %event.id,
                            "flag stream event unusable; skipped, later events still apply");
                    }
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
                return End::Failed;
            }
        }
        if let Some(error) = malformed {
            let cause = std::error::Error::source(&error).map(ToString::to_string);
            tracing::warn!(%error, ?cause, "flag stream event unusable; reconnecting");
            return End::Failed;
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
            let target = path.clone();
            let written =
                tokio::task::spawn_blocking(move || cache::store(&target, flags.snapshot()));
            match written.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(path = %path.display(), %error, "flag cache file not written");
                }
                Err(error) => tracing::warn!(%error, "flag cache writer failed"),
            }
        }
    });
    Some(tx)
}
