//! What a notification did: per alert and matching binding, the outcome; and the alerts no
//! binding matched. The answer of `POST /api/v1/integrations/alertmanager`.

use serde::Serialize;
use utoipa::ToSchema;

use super::{AlertAction, AlertStatus};

/// What one alert did through one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action changed the flag or its release.
    Acted,
    /// The action had nothing to change (already killed, no running release...).
    Unchanged,
    /// This occurrence (fingerprint + `startsAt`) was already handled: nothing done.
    Repeat,
    /// Resolved: what the alert did is undone (`on_resolved: restore`).
    Restored,
    /// Resolved: left as it is (`on_resolved: nothing`, or changed since by someone else).
    Kept,
}

/// One action of a notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActionReport {
    /// The alert's `alertname`.
    pub alert: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its status in this notification.
    pub status: AlertStatus,
    /// The binding it matched.
    pub binding: i64,
    /// The flag acted on.
    pub flag: String,
    /// The environment.
    pub environment: String,
    /// The binding's action.
    pub action: AlertAction,
    /// What happened.
    pub outcome: Outcome,
    /// Why, in words.
    pub detail: String,
}

/// An alert no binding matches: it changes nothing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnmatchedAlert {
    /// The alert's `alertname`.
    pub alert: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its status.
    pub status: AlertStatus,
}

/// The answer to a notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Receipt {
    /// Alerts in the notification.
    pub alerts: usize,
    /// What each (alert, matching binding) did.
    pub actions: Vec<ActionReport>,
    /// Alerts that matched no binding (nothing changed for them).
    pub unmatched: Vec<UnmatchedAlert>,
}
