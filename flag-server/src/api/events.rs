//! `GET /api/v1/events`: the admin event stream. Every audit entry, as SSE, once its write
//! has committed, on every replica: each commit this replica makes or reads from the change
//! log (`Broadcaster::committed`, the same after-commit point as the SDK stream) wakes the
//! stream, which then reads the audit rows it has not sent. A read every second as well
//! catches what no local commit announces (an audit-only write on another replica). The
//! console keeps its pages current with it.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use utoipa::ToSchema;

use super::method_not_allowed;
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::audit::{self, AuditEntry, AuditFilter};
use crate::store::Store;

/// How often the stream reads the audit log when nothing woke it (also its heartbeat).
const POLL: Duration = Duration::from_secs(1);
/// Heartbeat comments are sent after this many quiet polls.
const QUIET_POLLS: u32 = 15;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/events")
            .get(events)
            .default_service(web::to(method_not_allowed)),
    );
}

/// One event of `/api/v1/events` as an SSE parser reads it.
#[derive(Debug, ToSchema)]
pub struct AdminEvent {
    /// Always `audit`.
    #[schema(pattern = "^audit$")]
    pub event: String,
    /// The audit entry's id (send it back as `Last-Event-ID` to resume).
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    /// The audit entry, as JSON.
    #[schema(value_type = AuditEntry)]
    pub data: String,
}

/// Every audit entry as it commits, oldest first: `event: audit`, `id:` = the entry's id,
/// `data:` = the entry (as `GET /api/v1/audit` gives it). With `Last-Event-ID` the entries
/// after that id come first; without, the stream starts at the newest entry. Heartbeat
/// comments keep it open; the stream of a revoked token ends.
#[utoipa::path(get, operation_id = "admin_events", path = "/api/v1/events", tag = "audit",
    params(("Last-Event-ID" = Option<i64>, Header, description = "the last audit id received")),
    responses(
        (status = 200, description = "server-sent events", body = AdminEvent, content_type = "text/event-stream"),
        (status = 401, description = "no valid admin token or console session", body = Problem),
        (status = 403, description = "a token of another kind", body = Problem)))]
pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: AdminToken,
) -> Result<HttpResponse, ApiError> {
    let resume = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let last = match resume {
        Some(id) => id,
        None => newest(&state.store).await?,
    };
    let follower = Follower {
        store: state.store.clone(),
        commits: state.broadcaster.commits(),
        alive: {
            let tokens = state.tokens.clone();
            let id = admin.0.id;
            Box::new(move || tokens.is_active(id))
        },
        last,
        quiet: 0,
        started: false,
    };
    let body = stream::unfold(follower, |mut f| async move {
        let frame = f.next().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), f))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The id of the newest audit entry (0 when there is none).
async fn newest(store: &Store) -> Result<i64, ApiError> {
    let (page, _) = store
        .read(|conn| audit::list(conn, &AuditFilter::default(), 1, None))
        .await?;
    Ok(page.first().map_or(0, |e| e.id))
}

/// Every audit entry after `last`, oldest first (pages through the log newest first until
/// it reaches `last`).
async fn after(store: &Store, last: i64) -> Result<Vec<AuditEntry>, ApiError> {
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store
            .read(move |conn| audit::list(conn, &AuditFilter::default(), audit::MAX_LIMIT, cursor))
            .await?;
        let reached = page.iter().any(|e| e.id <= last);
        found.extend(page.into_iter().filter(|e| e.id > last));
        match next {
            Some(next) if !reached => cursor = next.parse().ok(),
            _ => break,
        }
    }
    found.reverse();
    Ok(found)
}

/// One subscriber's position in the audit log.
struct Follower {
    store: Store,
    commits: tokio::sync::watch::Receiver<u64>,
    alive: Box<dyn Fn() -> bool>,
    last: i64,
    quiet: u32,
    started: bool,
}

impl Follower {
    /// The next frame to send; `None` ends the stream (server stopping, token revoked).
    async fn next(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            return Some(Bytes::from_static(b"retry: 1000\n\n"));
        }
        loop {
            if *self.commits.borrow() == u64::MAX || !(self.alive)() {
                return None;
            }
            match after(&self.store, self.last).await {
                Ok(entries) if !entries.is_empty() => {
                    let mut frames = String::new();
                    for entry in &entries {
                        let data = serde_json::to_string(entry).unwrap_or_default();
                        frames
                            .push_str(&format!("event: audit\nid: {}\ndata: {data}\n\n", entry.id));
                    }
                    self.last = entries.last().map_or(self.last, |e| e.id);
                    self.quiet = 0;
                    return Some(Bytes::from(frames));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "admin events: cannot read the audit log"),
            }
            self.quiet += 1;
            if self.quiet >= QUIET_POLLS {
                self.quiet = 0;
                return Some(Bytes::from_static(b":\n\n"));
            }
            if let Ok(Err(_)) = tokio::time::timeout(POLL, self.commits.changed()).await {
                return None; // the broadcaster is gone: the server is stopping
            }
        }
    }
}
