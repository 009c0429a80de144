//! The feature-flag server: REST API (contract section 4) on SQLite, tokens, audit log, metrics.
//!
//! [`app`] builds the actix `App` that production and the tests both run; [`start`] binds it
//! (port 0 in tests and benches) and returns the address and a handle.
//!
//! Module map: `config` (CLI/env), `error` (problem+json), `auth` (tokens), `scopes` (what
//! each admin token scope may do, by route), `api/` (thin handlers, one file per resource),
//! `console/` (the web console's files and session), `store/` (all SQL; the group-commit writer), `snapshots` (live compiled snapshots per
//! environment), `flag_list` (the filters and pages of `GET /api/v1/flags`), `stream` (commit point → SSE subscribers), `metrics`, `release/`
//! (progressive delivery and the scheduler that also applies scheduled changes), `ofrep/`
//! (the OpenFeature Remote Evaluation Protocol).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod flag_list;
pub mod metrics;
pub mod ofrep;
pub mod release;
pub mod scopes;
pub mod snapshots;
pub mod state;
pub mod store;
pub mod stream;
pub mod webhooks;

use std::any::Any;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpMessage, HttpServer};

pub use config::Config;
pub use state::AppState;

use crate::auth::Principal;
use crate::error::{is_json, is_problem, problem_for_status};

/// The application: routes, extractor limits, the request log and metrics, the 404 fallback.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .configure(api::configure)
        .configure(api::sdk::configure)
        .configure(api::ofrep::configure)
        .configure(console::configure)
        .default_service(web::to(api::not_found))
        .wrap_fn(|req, srv| {
            let started = Instant::now();
            let route = req
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            let method = req.method().clone();
            let state = req.app_data::<web::Data<AppState>>().cloned();
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                // Every error is problem+json, also those actix raises before a handler runs;
                // OFREP's errors are its own JSON (`ofrep::OfrepError`).
                let res = if res.status().as_u16() >= 400
                    && !is_problem(res.headers())
                    && !is_json(res.headers())
                {
                    let status = res.status();
                    let (req, _) = res.into_parts();
                    ServiceResponse::new(req, problem_for_status(status))
                } else {
                    res.map_into_boxed_body()
                };
                let elapsed = started.elapsed();
                let status = res.status().as_u16();
                let token = res
                    .request()
                    .extensions()
                    .get::<Principal>()
                    .map(|p| p.name.clone());
                if let Some(state) = state {
                    state
                        .metrics
                        .requests
                        .with_label_values(&[route.as_str(), &status.to_string()])
                        .inc();
                    state
                        .metrics
                        .latency
                        .with_label_values(&[route.as_str()])
                        .observe(elapsed.as_secs_f64());
                }
                tracing::info!(
                    %method,
                    route,
                    status,
                    latency_us = elapsed.as_micros() as u64,
                    token = token.as_deref().unwrap_or("-"),
                    "request"
                );
                Ok(res)
            }
        })
}

/// A running server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Stops it (`handle.stop(true)` is graceful).
    pub handle: actix_web::dev::ServerHandle,
    /// The shared state (store, snapshots, tokens, broadcaster).
    pub state: web::Data<AppState>,
    /// Resolves when the server has stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The secret of an admin token created on this start: print it once, then call
    /// [`Running::admin_token_shown`].
    pub created_admin_token: Option<String>,
    /// Held while the server runs on a SQLite file: no other server opens it meanwhile.
    _db_lock: Option<store::DbLock>,
}

impl Running {
    /// Records that [`Running::created_admin_token`] has been shown. Until then the token is
    /// pending: after a start that fails before this, the next start deletes it and creates
    /// and prints another, so a secret nobody saw never locks the admin out.
    pub async fn admin_token_shown(&self) -> anyhow::Result<()> {
        let Some(secret) = self.created_admin_token.clone() else {
            return Ok(());
        };
        self.state
            .store
            .write(move |ctx| store::tokens::shown(ctx.conn, &secret))
            .await
            .map_err(|e| anyhow::anyhow!("cannot record that the admin token was shown ({e}); the next start creates another"))
    }
}

/// How long sent data may stay unacknowledged before the kernel closes the connection: three
/// heartbeats (at least a second). An SDK stream always has data in flight within one
/// heartbeat, so a subscriber whose network died without a FIN is dropped after about three
/// heartbeats, not after the kernel's default of ~15 minutes of retransmissions.
fn dead_peer_timeout(heartbeat: Duration) -> Duration {
    (heartbeat * 3).max(Duration::from_secs(1))
}

/// Sets `TCP_USER_TIMEOUT` on an accepted connection (see [`dead_peer_timeout`]).
#[cfg(target_os = "linux")]
fn close_when_unacknowledged(io: &dyn Any, timeout: Duration) {
    let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::warn!(%error, "cannot set TCP_USER_TIMEOUT; dead peers linger longer");
    }
}

/// Elsewhere, dead peers are dropped when the kernel gives up retransmitting.
#[cfg(not(target_os = "linux"))]
fn close_when_unacknowledged(_: &dyn Any, _: Duration) {}

/// Serves on `config.listen` (use port 0 for an ephemeral port) from inside a tokio runtime.
/// Signals are left to the caller (see `main`).
///
/// The order makes a failed start leave nothing behind: it binds the address first (a busy
/// port fails before any file is created), then takes the database's lock (a second server
/// on the same file refuses to start, see [`store::DbLock`]), then opens the store.
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let listener = listen(config.listen)?;
    let db_lock = match &config.db {
        store::Location::Sqlite(path) => Some(store::DbLock::acquire(path)?),
        store::Location::Postgres(_) => None,
    };
    // Opening migrates and loads the database: blocking work, off the async threads.
    let opening = config.clone();
    let (state, created_admin_token) =
        tokio::task::spawn_blocking(move || AppState::open(&opening)).await??;
    let state = web::Data::new(state);
    let data = state.clone();
    let dead_after = dead_peer_timeout(Duration::from_millis(config.sse_heartbeat_ms));
    let mut server = HttpServer::new(move || app(data.clone()))
        .on_connect(move |io, _| close_when_unacknowledged(io, dead_after))
        // A client that closes its side of the connection is gone: its response ends (an
        // SDK stream would otherwise be noticed only when a heartbeat write fails).
        .h1_allow_half_closed(false)
        // A stream's event goes out when it is written. With Nagle's algorithm (the socket's
        // default), an event written while the previous one (a heartbeat, the last change)
        // is still unacknowledged waits for that ACK, which the client may delay by up to
        // 200 ms: a kill would reach some SDKs that much later.
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(10);
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let addr = listener.local_addr()?;
    let server = server.listen(listener)?.run();
    let handle = server.handle();
    // Background work stops with the server: the release scheduler and webhook deliveries,
    // each given what it uses.
    let s = state.get_ref();
    let background = [
        tokio::spawn(release::scheduler::run(
            s.store.clone(),
            s.leadership.clone(),
            s.scheduler.clone(),
            s.outbox.clone(),
            release::scheduler::Sources {
                prometheus: s.prometheus.clone(),
                snapshots: s.snapshots.clone(),
            },
        )),
        tokio::spawn(webhooks::run(
            s.store.clone(),
            s.leadership.clone(),
            s.outbox.clone(),
            s.webhook_allow_private,
        )),
        tokio::spawn(ofrep::tally::run(
            s.ofrep.tally.clone(),
            s.store.clone(),
            s.outbox.clone(),
        )),
    ];
    let task = tokio::spawn(async move {
        let result = server.await;
        background.iter().for_each(tokio::task::JoinHandle::abort);
        result
    });
    Ok(Running {
        addr,
        handle,
        state,
        task,
        created_admin_token,
        _db_lock: db_lock,
    })
}

/// Binds `addr` as actix would (address reuse, a backlog of 1024); the error names the
/// address and the option that changes it.
fn listen(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        #[cfg(not(windows))]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    };
    bind().map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "another process holds it: stop it or choose",
            std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges: choose",
            _ => "choose",
        };
        anyhow::anyhow!(
            "cannot listen on {addr}: {e}; {why} another address with --listen / FLAG_SERVER_LISTEN"
        )
    })
}
