//! [`ClientBuilder`]: a streaming client's configuration and its start-up (cache cold start,
//! starting the stream task, waiting up to the init timeout for the first snapshot).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backoff;
use super::cache;
use super::events;
use super::state::{Shared, Status};
use super::stream::{self, StreamConfig, STREAM_PATH};
use super::{Client, StreamHandle};

/// How long [`ClientBuilder::build`] waits for the first snapshot by default.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server's heartbeat interval assumed by default (contract section 5: at least every 15 s).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// How long connecting to the server may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL does not parse.
    #[error("invalid flag server URL `{url}`")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// The parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTP client could not be created (TLS set-up).
    #[error("cannot create the HTTP client")]
    Http(#[source] HttpError),
    /// A snapshot file could not be read.
    #[error("cannot read snapshot file {path}")]
    ReadSnapshot {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server refused the SDK token while the client started (HTTP 401: unknown or
    /// revoked token; 403: not an SDK token, e.g. an admin token). Retrying will not help.
    #[error(
        "the server refused the SDK token ({}): check the token is an SDK token for this \
         environment (`flag token create --kind sdk`)",
        describe_status(*http_status)
    )]
    Refused {
        /// The HTTP status the server answered (401 or 403).
        http_status: u16,
    },
    /// The cache file cannot be written: its folder cannot be created, or a file cannot be
    /// created in it.
    #[error("cannot write the cache file {path}: check the folder exists or can be created, and is writable")]
    CacheFile {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A root certificate given to [`ClientBuilder::root_certificate_pem`] does not parse.
    #[error("invalid root certificate (PEM expected)")]
    Certificate(#[source] HttpError),
    /// A snapshot file is not a section 2 snapshot.
    #[error("snapshot file {path} is not a valid snapshot")]
    ParseSnapshot {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// What the HTTP layer reported, opaque so that the HTTP crate's types stay out of the SDK's
/// API: its message is the HTTP layer's, and [`source`](std::error::Error::source) goes on
/// down the chain (e.g. to the TLS back end's error).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HttpError(reqwest::Error);

/// Configures a streaming [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    token: String,
    init_timeout: Duration,
    heartbeat: Duration,
    reconnect_delay: Duration,
    cache_file: Option<PathBuf>,
    http: Option<reqwest::Client>,
    events_interval: Duration,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    root_certificates: Vec<Vec<u8>>,
}

impl ClientBuilder {
    pub(super) fn new(url: String, token: String) -> Self {
        ClientBuilder {
            url,
            token,
            init_timeout: DEFAULT_INIT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            reconnect_delay: backoff::INITIAL,
            cache_file: None,
            http: None,
            events_interval: events::DEFAULT_EVENTS_INTERVAL,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: None,
            root_certificates: Vec::new(),
        }
    }

    /// How long `build()` waits for the first snapshot (default 5 s; zero: not at all). On
    /// timeout the client is returned anyway, serving the cache file or the callers'
    /// defaults, and keeps trying.
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Keep the last good snapshot in `path`, and start from it while the server is down.
    /// `build()` creates the folder if needed and checks a file can be written there; if not,
    /// it fails with [`ClientError::CacheFile`] naming the path.
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_file = Some(path.into());
        self
    }

    /// The server's heartbeat interval (default 15 s). A stream silent for twice this long
    /// counts as stale and is reconnected.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// The first reconnection delay (default 1 s, doubling to 30 s, with jitter). The server's
    /// `retry:` overrides it.
    pub fn reconnect_delay(mut self, delay: Duration) -> Self {
        self.reconnect_delay = delay;
        self
    }

    /// How long connecting to the server may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one read from the server may wait (default: none, since a stream silent
    /// for twice the [heartbeat](Self::heartbeat_interval) is already treated as lost). Keep
    /// it above the heartbeat interval, or a healthy quiet stream is cut.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Trust this root certificate (PEM) besides the built-in roots, e.g. a company CA in
    /// front of the server. May be called more than once.
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Use this HTTP client (shares its connection settings; e.g. many clients in one
    /// process). This is the escape hatch for what the builder does not offer (a proxy set in
    /// code, client certificates, DNS overrides), and the one place the SDK's API names the
    /// `reqwest` crate: its major version is part of this method's signature. It must not
    /// have a total request timeout: the stream is long-lived. The timeouts and root
    /// certificates set on this builder are then not used.
    ///
    /// Without one, the client's own HTTP client takes its proxy from the environment
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, as curl reads them).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// How often evaluation and error counters are flushed to the server for the release
    /// guard (default 10 s, at least 10 ms; `close()` sends the rest). The first flush comes
    /// after a random part of the interval, so a fleet started together spreads its flushes.
    pub fn events_interval(mut self, interval: Duration) -> Self {
        self.events_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Starts the client: loads the cache file, starts the stream task, and waits until the
    /// first snapshot arrives, the server refuses the token, the first attempt fails while a
    /// cache file was loaded, or the init timeout passes.
    ///
    /// Errors are configuration that will not heal by waiting: a bad URL, a cache file that
    /// cannot be written ([`ClientError::CacheFile`]), and a token the server refuses (401 or
    /// 403, [`ClientError::Refused`], even when a cache file was loaded). A server that is
    /// down or slow is not an error: the client is returned serving the cache file or the
    /// callers' defaults and keeps trying. A refusal that comes only after the init timeout
    /// shows as [`Status::Refused`].
    pub async fn build(self) -> Result<Client, ClientError> {
        let base = self.url.trim_end_matches('/');
        let url = format!("{base}{STREAM_PATH}");
        reqwest::Url::parse(&url).map_err(|e| ClientError::InvalidUrl {
            url: self.url.clone(),
            source: Box::new(e),
        })?;
        let http = match self.http {
            Some(http) => http,
            None => {
                let mut http = reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .tcp_keepalive(Some(Duration::from_secs(30)));
                if let Some(timeout) = self.read_timeout {
                    http = http.read_timeout(timeout);
                }
                for pem in &self.root_certificates {
                    let certificate =
                        reqwest::Certificate::from_pem(pem).map_err(certificate_error)?;
                    // The TLS back end decodes certificates only when a client is built: try
                    // this one alone, so a bad certificate is named as such.
                    reqwest::Client::builder()
                        .add_root_certificate(certificate.clone())
                        .build()
                        .map_err(certificate_error)?;
                    http = http.add_root_certificate(certificate);
                }
                http.build().map_err(|e| ClientError::Http(HttpError(e)))?
            }
        };

        if let Some(path) = self.cache_file.clone() {
            let target = path.clone();
            let checked = tokio::task::spawn_blocking(move || cache::check_writable(&target));
            let checked = checked
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            checked.map_err(|source| ClientError::CacheFile { path, source })?;
        }

        let shared = Arc::new(Shared::new());
        let from_cache = match self.cache_file.clone() {
            Some(path) => load_cache(path, &shared).await,
            None => false,
        };

        let sink = events::Sink {
            http: http.clone(),
            url: format!("{base}/sdk/v1/events"),
            token: self.token.clone(),
        };
        let config = StreamConfig {
            url,
            token: self.token,
            http,
            stale_after: self.heartbeat.saturating_mul(2),
            initial_delay: self.reconnect_delay,
            cache_file: self.cache_file,
        };
        let mut status = shared.watch_status();
        status.mark_unchanged();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(stream::run(config, shared.clone(), cancel.clone()));
        let recorder = Arc::new(events::Recorder::default());
        let events_task = tokio::spawn(events::run(
            sink.clone(),
            recorder.clone(),
            self.events_interval,
            cancel.clone(),
        ));
        let client = Client {
            shared,
            stream: Arc::new(StreamHandle {
                cancel,
                task: Mutex::new(Some(task)),
                events: recorder,
                sink: Some(sink),
                events_task: Mutex::new(Some(events_task)),
            }),
        };

        // A zero timeout means "do not wait": without this, whether a fast refusal beats the
        // timer's first tick would decide between an error and a client.
        if self.init_timeout.is_zero() {
            return Ok(client);
        }
        let ready = async {
            while status.changed().await.is_ok() {
                match *status.borrow_and_update() {
                    Status::Refused { http_status } => return Some(http_status),
                    Status::Valid | Status::Offline => return None,
                    Status::Stale if from_cache => return None,
                    _ => {}
                }
            }
            None
        };
        let cached_revision = client.revision();
        match tokio::time::timeout(self.init_timeout, ready).await {
            // Status changes coalesce: a snapshot that arrived just before the refusal means
            // the token worked at start-up and was revoked since, which `status()` reports.
            Ok(Some(_)) if client.revision() != cached_revision => {}
            // Dropping the client stops its tasks.
            Ok(Some(http_status)) => return Err(ClientError::Refused { http_status }),
            Ok(None) => {}
            Err(_) => tracing::warn!(
                timeout = ?self.init_timeout,
                status = ?client.status(),
                "flag client not initialised in time; serving cache or defaults"
            ),
        }
        Ok(client)
    }
}

fn certificate_error(e: reqwest::Error) -> ClientError {
    ClientError::Certificate(HttpError(e))
}

/// `401 Unauthorized` for 401: the code with its reason phrase.
fn describe_status(code: u16) -> String {
    reqwest::StatusCode::from_u16(code).map_or_else(|_| code.to_string(), |s| s.to_string())
}

async fn load_cache(path: PathBuf, shared: &Shared) -> bool {
    let cached = tokio::task::spawn_blocking(move || cache::load(&path))
        .await
        .ok()
        .flatten();
    let Some(cached) = cached else {
        return false;
    };
    shared.replace(cached.snapshot);
    shared.touch(cached.written.unwrap_or(std::time::UNIX_EPOCH));
    shared.set_status(Status::Stale);
    true
}
