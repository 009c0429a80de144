//! The application state every handler receives: the store, the live snapshots, the token
//! cache, the broadcaster and the metrics.

use std::sync::Arc;

use crate::auth::Tokens;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::ofrep::Ofrep;
use crate::release::prometheus::Prometheus;
use crate::release::scheduler::Scheduler;
use crate::snapshots::Snapshots;
use crate::store::{Leadership, Location, Published, Store};
use crate::stream::{Broadcaster, StreamSettings};
use crate::webhooks::Outbox;

/// Shared by every request (`web::Data<AppState>`).
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Every environment's current compiled snapshot (revision = committed revision).
    pub snapshots: Arc<Snapshots>,
    /// The active tokens.
    pub tokens: Arc<Tokens>,
    /// The commit point's fan-out to SSE subscribers.
    pub broadcaster: Arc<Broadcaster>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// OFREP: evaluation for OpenFeature providers, its rate limit and tally.
    pub ofrep: Arc<Ofrep>,
    /// Wakes the release scheduler after a person's move.
    pub scheduler: Arc<Scheduler>,
    /// Wakes the webhook delivery task after a change queued deliveries.
    pub outbox: Arc<Outbox>,
    /// Whether this replica runs the release scheduler and the webhook sender now.
    pub leadership: Leadership,
    /// Whether webhooks may target loopback and private addresses.
    pub webhook_allow_private: bool,
    /// The Prometheus the release guard asks (`--prometheus-url`), when configured.
    pub prometheus: Option<Arc<Prometheus>>,
}

impl AppState {
    /// Opens the database and loads everything; returns the secret of an admin token created
    /// on this start, if any (to print once).
    pub fn open(config: &Config) -> anyhow::Result<(AppState, Option<String>)> {
        let published = Published {
            snapshots: Arc::new(Snapshots::default()),
            tokens: Arc::new(Tokens::default()),
            broadcaster: Arc::new(Broadcaster::new(StreamSettings {
                heartbeat: std::time::Duration::from_millis(config.sse_heartbeat_ms),
                buffer: config.sse_buffer,
                ..StreamSettings::default()
            })),
            metrics: Arc::new(Metrics::new()),
        };
        let (store, created) =
            Store::open(&config.db, config.admin_token.as_deref(), published.clone())?;
        Ok((
            AppState {
                store,
                ofrep: Arc::new(Ofrep::new(
                    published.snapshots.clone(),
                    config.ofrep_rate_limit,
                )),
                snapshots: published.snapshots,
                tokens: published.tokens,
                broadcaster: published.broadcaster,
                metrics: published.metrics,
                scheduler: Arc::default(),
                outbox: Arc::default(),
                leadership: match &config.db {
                    Location::Sqlite(_) => Leadership::always(),
                    Location::Postgres(url) => Leadership::campaign(url.clone())?,
                },
                webhook_allow_private: config.webhook_allow_private,
                prometheus: match &config.prometheus_url {
                    Some(url) => Some(Arc::new(Prometheus::new(
                        url,
                        std::time::Duration::from_secs(config.prometheus_interval_seconds.max(1)),
                    )?)),
                    None => None,
                },
            },
            created,
        ))
    }
}
