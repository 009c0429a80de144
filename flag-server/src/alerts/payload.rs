//! Prometheus Alertmanager's webhook notification (payload version 4) and reading it: a
//! body that is not that format is refused naming the field.

use std::collections::BTreeMap;

use flag_sdk::validate::ValidationErrors;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::field;
use crate::error::ApiError;

/// The payload version this server reads (Alertmanager's `webhook_config` sends `"4"`).
pub const PAYLOAD_VERSION: &str = "4";

/// The most characters of an alert's `summary` annotation the audit row keeps.
const MAX_SUMMARY: usize = 500;

/// Firing or resolved (a notification's and each alert's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The alert is active.
    Firing,
    /// The alert has ended.
    Resolved,
}

/// Alertmanager's webhook notification (payload version 4). Fields it may add later are
/// ignored.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// `"4"`.
    #[schema(example = "4")]
    pub version: String,
    /// The group the alerts belong to.
    #[serde(default)]
    pub group_key: Option<String>,
    /// Alerts Alertmanager left out of this notification (`max_alerts`).
    #[serde(default)]
    pub truncated_alerts: Option<u64>,
    /// `firing` while any alert of the group fires.
    pub status: AlertStatus,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: Option<String>,
    /// The labels the group is formed by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert of the group has.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert of the group has.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's own URL.
    #[serde(default, rename = "externalURL")]
    pub external_url: Option<String>,
    /// The alerts; each acts by its own `status`.
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Firing or resolved.
    pub status: AlertStatus,
    /// The alert's labels (`alertname` among them).
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`summary` goes into the audit row).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing, RFC 3339; with `fingerprint` it names one occurrence.
    pub starts_at: String,
    /// When it ended (resolved) or will be considered ended.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// The alerting rule's URL.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    /// Alertmanager's identity of the alert (a hash of its labels).
    pub fingerprint: String,
}

impl Alert {
    /// The `alertname` label (empty when missing).
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// What the audit row says: alert name, summary, fingerprint, start and generator URL.
    pub fn reason(&self) -> String {
        let mut out = format!("alert {} {}", self.name(), status_word(self.status));
        if let Some(summary) = self.annotations.get("summary") {
            let summary: String = summary.chars().take(MAX_SUMMARY).collect();
            out.push_str(&format!(": {summary}"));
        }
        out.push_str(&format!(
            " (fingerprint {}, started {}",
            self.fingerprint, self.starts_at
        ));
        if let Some(url) = self.generator_url.as_deref().filter(|u| !u.is_empty()) {
            out.push_str(&format!(", {url}"));
        }
        out.push(')');
        out
    }
}

fn status_word(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    }
}

/// Reads a notification: 400 for malformed JSON, 422 naming the field for anything that is
/// not Alertmanager's payload version 4.
pub fn parse_payload(body: &[u8]) -> Result<AlertmanagerPayload, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let payload: AlertmanagerPayload = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| crate::error::from_json_error_at(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| crate::error::from_json_error(&e))?;
    let mut errors = Vec::new();
    if payload.version != PAYLOAD_VERSION {
        errors.push(field(
            "version",
            format!(
                "payload version `{}`; this server reads Alertmanager's version {PAYLOAD_VERSION}",
                payload.version
            ),
        ));
    }
    for (i, alert) in payload.alerts.iter().enumerate() {
        if alert.fingerprint.trim().is_empty() {
            errors.push(field(
                format!("alerts[{i}].fingerprint"),
                "must not be empty",
            ));
        }
        if crate::clock::parse_rfc3339(&alert.starts_at).is_none() {
            errors.push(field(
                format!("alerts[{i}].startsAt"),
                "must be an RFC 3339 date-time",
            ));
        }
    }
    if errors.is_empty() {
        Ok(payload)
    } else {
        Err(ApiError::Validation(ValidationErrors(errors)))
    }
}
