//! Webhooks and their delivery outbox. A notifying change inserts its deliveries in its own
//! transaction ([`enqueue`]); the delivery task reads what is due and records each attempt.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::audit::{self, NewAudit};
use super::sql::{params, Conn, Row};
use super::{json, to_json, WriteCtx};
use crate::clock::Millis;
use crate::error::ApiError;

/// The events a webhook can subscribe to (`*` is every one).
pub const EVENTS: &[&str] = &[
    "flag.changed",
    "release.started",
    "release.advanced",
    "release.completed",
    "release.paused",
    "release.resumed",
    "release.aborted",
    "release.rolled_back",
    "schedule.created",
    "schedule.applied",
    "schedule.failed",
    "schedule.paused",
    "schedule.resumed",
    "schedule.cancelled",
    "change_request.created",
    "change_request.approved",
    "change_request.applied",
    "change_request.stale",
    "change_request.rejected",
    "change_request.withdrawn",
];

/// `POST /api/v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST (http or https; see the SSRF rules).
    pub url: String,
    /// The HMAC-SHA256 key for `X-Flag-Signature`; at least 16 characters.
    pub secret: String,
    /// Events to send: names from the list, or `*`.
    pub events: Vec<String>,
}

/// A webhook as listed (the secret is never shown again).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Webhook {
    /// Its id.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// When it was created, RFC 3339.
    pub created_at: String,
}

/// A delivery the task must attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The delivery's id.
    pub id: i64,
    /// The webhook's id.
    pub webhook_id: i64,
    /// The target URL.
    pub url: String,
    /// The signing key.
    pub secret: String,
    /// The event name.
    pub event: String,
    /// The JSON body, exactly as signed.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// A delivery as the delivery log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryRecord {
    /// The delivery's id.
    pub id: i64,
    /// The event name.
    pub event: String,
    /// `pending`, `sending` (an attempt in flight), `delivered` or `failed` (given up after
    /// the last attempt, or interrupted: see `last_error`).
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// The HTTP status of the successful attempt.
    pub response_status: Option<u16>,
    /// When it was queued, RFC 3339.
    pub created_at: String,
    /// The body sent.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// Saves a webhook (the URL was checked by the caller against the SSRF rules).
pub fn create(ctx: &mut WriteCtx<'_>, actor: &str, new: NewWebhook) -> Result<Webhook, ApiError> {
    if new.secret.chars().count() < 16 {
        return Err(ApiError::invalid(
            "secret",
            "must be at least 16 characters",
        ));
    }
    if new.events.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "subscribe to at least one event, or `*`",
        ));
    }
    for (i, event) in new.events.iter().enumerate() {
        if event != "*" && !EVENTS.contains(&event.as_str()) {
            return Err(ApiError::invalid(
                format!("events[{i}]"),
                format!("unknown event `{event}`; known: {}", EVENTS.join(", ")),
            ));
        }
    }
    ctx.cache().webhooks.take();
    let id: i64 = ctx
        .conn
        .query_one(
            "INSERT INTO webhooks (url, secret, events, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![&new.url, &new.secret, &to_json(&new.events), ctx.now],
        )?
        .get(0)?;
    let hook = Webhook {
        id,
        url: new.url,
        events: new.events,
        created_at: ctx.now.to_owned(),
    };
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "webhook.create",
            after: audit::text(&hook),
            ..NewAudit::default()
        },
    );
    Ok(hook)
}

/// Live webhooks' ids and events, as a group commit keeps them between its requests
/// (`WriteCtx::webhooks`).
pub type Subscriptions = Vec<(i64, Vec<String>)>;

/// Every live webhook.
pub fn list(conn: &Conn) -> Result<Vec<Webhook>, ApiError> {
    from_rows(&conn.query(LIST, params![])?)
}

/// The read of [`list`].
pub(super) const LIST: &str =
    "SELECT id, url, events, created_at FROM webhooks WHERE deleted_at IS NULL ORDER BY id";

/// [`list`] of the rows of a [`LIST`] read.
pub(super) fn from_rows(rows: &[Row]) -> Result<Vec<Webhook>, ApiError> {
    rows.iter()
        .map(|r| {
            Ok(Webhook {
                id: r.get(0)?,
                url: r.get(1)?,
                events: json(&r.get::<String>(2)?)?,
                created_at: r.get(3)?,
            })
        })
        .collect()
}

/// Stops a webhook; its pending deliveries are dropped.
pub fn delete(ctx: &mut WriteCtx<'_>, actor: &str, id: i64) -> Result<(), ApiError> {
    ctx.cache().webhooks.take();
    let changed = ctx.conn.execute(
        "UPDATE webhooks SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
        params![id, ctx.now],
    )?;
    if changed == 0 {
        return Err(ApiError::NotFound(format!("no webhook {id}")));
    }
    ctx.conn.execute(
        "UPDATE webhook_deliveries SET status = 'failed', next_at = NULL, last_error = 'webhook deleted'
         WHERE webhook_id = ?1 AND status = 'pending'",
        params![id],
    )?;
    audit::record(
        ctx,
        NewAudit {
            actor,
            action: "webhook.delete",
            before: Some(serde_json::json!({ "id": id }).to_string()),
            ..NewAudit::default()
        },
    );
    Ok(())
}

/// What [`enqueue`] reads of the webhooks: each one's id and events.
pub(super) fn subscriptions(hooks: Vec<Webhook>) -> Subscriptions {
    hooks.into_iter().map(|h| (h.id, h.events)).collect()
}

/// Queues `event` with `payload` for every webhook subscribed to it, in the caller's
/// transaction. Returns how many deliveries were queued.
pub fn enqueue(ctx: &WriteCtx<'_>, event: &str, payload: &Value) -> Result<usize, ApiError> {
    let cache = &ctx.cache().webhooks;
    if cache.borrow().is_none() {
        *cache.borrow_mut() = Some(subscriptions(list(ctx.conn)?));
    }
    // Serialised once, and only when a webhook takes the event.
    let mut body: Option<String> = None;
    let now = crate::clock::now_millis();
    let mut queued = 0;
    for (id, events) in cache.borrow().iter().flatten() {
        if events.iter().any(|e| e == "*" || e == event) {
            let body = body.get_or_insert_with(|| {
                let mut body = payload.clone();
                if let Value::Object(map) = &mut body {
                    map.insert("event".into(), Value::from(event));
                    map.insert("at".into(), Value::from(ctx.now));
                }
                to_json(&body)
            });
            ctx.conn.defer(
                "INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, next_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![*id, event, &**body, ctx.now, now],
            )?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Whether any delivery is due at `now`, and when the next one after them is due.
pub fn due(conn: &Conn, now: Millis) -> Result<(bool, Option<Millis>), ApiError> {
    let due = conn
        .query_opt(
            "SELECT id FROM webhook_deliveries WHERE next_at IS NOT NULL AND next_at <= ?1 LIMIT 1",
            params![now],
        )?
        .is_some();
    let next = conn
        .query_opt(
            "SELECT MIN(next_at) FROM webhook_deliveries WHERE next_at > ?1",
            params![now],
        )?
        .map(|r| r.get::<Option<Millis>>(0))
        .transpose()?
        .flatten();
    Ok((due, next))
}

/// Takes the deliveries due at `now` (at most 100) for sending: in the same transaction they
/// become `sending`, so no other sender (a replica that leads next) takes them again.
pub fn claim(ctx: &mut WriteCtx<'_>, now: Millis) -> Result<Vec<Delivery>, ApiError> {
    let due = ctx.conn.query_map(
        "SELECT d.id, d.webhook_id, w.url, w.secret, d.event, d.payload, d.attempts
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.next_at IS NOT NULL AND d.next_at <= ?1 ORDER BY d.next_at LIMIT 100",
        params![now],
        |r| {
            Ok(Delivery {
                id: r.get(0)?,
                webhook_id: r.get(1)?,
                url: r.get(2)?,
                secret: r.get(3)?,
                event: r.get(4)?,
                payload: r.get(5)?,
                attempts: r.get(6)?,
            })
        },
    )?;
    for d in &due {
        ctx.conn.execute(
            "UPDATE webhook_deliveries SET status = 'sending', next_at = NULL WHERE id = ?1",
            params![d.id],
        )?;
    }
    Ok(due)
}

/// What a delivery left `sending` by a sender that stopped (a crash, a lost lead) says.
pub const INTERRUPTED: &str = "the server sending it stopped before it recorded the outcome; \
                               it is not sent again, so that it is never received twice";

/// Gives up deliveries that a previous sender took and never finished (see [`INTERRUPTED`]);
/// how many. Run by a sender when it starts leading, before it claims anything.
pub fn give_up_interrupted(ctx: &mut WriteCtx<'_>) -> Result<u64, ApiError> {
    Ok(ctx.conn.execute(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = ?1 WHERE status = 'sending'",
        params![INTERRUPTED],
    )?)
}

/// Records an attempt: delivered, retry at `retry_at`, or given up.
pub fn record_attempt(
    ctx: &mut WriteCtx<'_>,
    id: i64,
    attempts: u32,
    result: Result<u16, String>,
    retry_at: Option<Millis>,
) -> Result<(), ApiError> {
    let (status, error, code) = match &result {
        Ok(code) => ("delivered", None, Some(*code)),
        Err(e) if retry_at.is_some() => ("pending", Some(e.as_str()), None),
        Err(e) => ("failed", Some(e.as_str()), None),
    };
    ctx.conn.execute(
        "UPDATE webhook_deliveries SET attempts = ?2, status = ?3, last_error = ?4,
            response_status = ?5, next_at = ?6, delivered_at = CASE WHEN ?3 = 'delivered' THEN ?7 END
         WHERE id = ?1",
        params![id, attempts, status, error, code, if result.is_ok() { None } else { retry_at }, ctx.now],
    )?;
    Ok(())
}

/// A webhook's deliveries, newest first.
pub fn deliveries(conn: &Conn, webhook: i64, limit: u32) -> Result<Vec<DeliveryRecord>, ApiError> {
    let exists = conn.query_opt("SELECT id FROM webhooks WHERE id = ?1", params![webhook])?;
    if exists.is_none() {
        return Err(ApiError::NotFound(format!("no webhook {webhook}")));
    }
    let rows = conn.query_map(
        "SELECT id, event, status, attempts, last_error, response_status, created_at, payload
         FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2",
        params![webhook, limit],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get::<String>(7)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(
            |(id, event, status, attempts, last_error, response_status, created_at, payload)| {
                Ok(DeliveryRecord {
                    id,
                    event,
                    status,
                    attempts,
                    last_error,
                    response_status,
                    created_at,
                    payload: json(&payload)?,
                })
            },
        )
        .collect()
}
