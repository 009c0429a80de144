//! Alerts that act on flags: Prometheus Alertmanager's webhook payload (version 4), the
//! bindings that say which alerts act on which flag and environment and how, and the plan
//! of one notification: which alert, through which binding, acts on which flag.
//!
//! Pure: no HTTP, no SQL. `store::alerts` runs a plan inside one write (the occurrences it
//! has already acted on, the kill, restore and release moves); `api::alerts` parses and
//! answers.

use std::collections::BTreeMap;

use flag_sdk::validate::{FieldError, ValidationErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

fn field(name: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: name.into(),
        message: message.into(),
    }
}

/// How a label must look for a matcher to accept it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Matcher {
    /// The label equals this value.
    Equals(String),
    /// The label matches this regular expression, anchored at both ends as in Prometheus
    /// (`{"regex": "Checkout.*"}`).
    Regex {
        /// Rust `regex` syntax.
        regex: String,
    },
}

/// Where a binding's flag or environment comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Target {
    /// This key.
    Fixed(String),
    /// The value of this label of the alert (`{"label": "flag"}`).
    Label {
        /// The label's name.
        label: String,
    },
}

impl Target {
    fn resolve<'a>(&'a self, alert: &'a Alert) -> Result<&'a str, &'a str> {
        match self {
            Target::Fixed(key) => Ok(key),
            Target::Label { label } => alert
                .labels
                .get(label)
                .map(String::as_str)
                .ok_or(label.as_str()),
        }
    }
}

/// What a firing alert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    /// The kill switch (`POST .../kill`).
    Kill,
    /// Pause the flag's running release (`POST .../release/pause`).
    PauseRelease,
    /// Roll the flag's release back: the fallthrough from before it (state `rolled_back`).
    RollbackRelease,
}

/// What the alert's resolution does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnResolved {
    /// Nothing: a person restores.
    #[default]
    Nothing,
    /// Undo what this alert did (`restore` after a kill, `resume` after a pause) unless the
    /// flag or release has changed since.
    Restore,
}

/// `POST /api/v1/integrations/alertmanager/bindings`: which alerts act on which flag and
/// environment, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    /// Label name → value (or `{"regex": ...}`); an alert matches when every one holds.
    #[schema(example = json!({"alertname": "CheckoutErrors"}))]
    pub matchers: BTreeMap<String, Matcher>,
    /// The flag: a key, or `{"label": "flag"}` to take it from the alert.
    #[schema(example = "new-checkout")]
    pub flag: Target,
    /// The environment: a key, or `{"label": "environment"}` to take it from the alert.
    #[schema(example = "production")]
    pub environment: Target,
    /// What a firing alert does.
    pub action: AlertAction,
    /// What its resolution does (default `nothing`).
    #[serde(default)]
    pub on_resolved: OnResolved,
}

/// A stored binding.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Binding {
    /// Its id (for `DELETE .../bindings/{id}`).
    pub id: i64,
    /// What it is.
    #[serde(flatten)]
    pub spec: BindingSpec,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The token that created it.
    pub created_by: String,
}

/// Whether `name` can be a Prometheus label name.
fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn anchored(regex: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{regex})$"))
        .size_limit(1 << 18)
        .build()
}

impl BindingSpec {
    /// Every problem of the binding that does not need the database, each naming its field.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if self.matchers.is_empty() {
            out.push(field(
                "matchers",
                "at least one label, e.g. {\"alertname\": \"CheckoutErrors\"}",
            ));
        }
        for (name, matcher) in &self.matchers {
            if !label_name(name) {
                out.push(field(
                    format!("matchers.{name}"),
                    "not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                ));
            }
            if let Matcher::Regex { regex } = matcher {
                if let Err(e) = anchored(regex) {
                    out.push(field(format!("matchers.{name}.regex"), e.to_string()));
                }
            }
        }
        for (name, target) in [("flag", &self.flag), ("environment", &self.environment)] {
            if let Target::Label { label } = target {
                if !label_name(label) {
                    out.push(field(
                        format!("{name}.label"),
                        "not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                    ));
                }
            }
        }
        if self.action == AlertAction::RollbackRelease && self.on_resolved == OnResolved::Restore {
            out.push(field(
                "on_resolved",
                "a rolled-back release cannot be put back; use `nothing` and start a new release",
            ));
        }
        out
    }

    /// Whether every matcher holds for `labels` (a regex that does not compile never holds).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|(name, matcher)| {
            let Some(value) = labels.get(name) else {
                return false;
            };
            match matcher {
                Matcher::Equals(expected) => value == expected,
                Matcher::Regex { regex } => anchored(regex).is_ok_and(|r| r.is_match(value)),
            }
        })
    }
}

/// One thing a notification does: alert `alert` (its index), through `binding`, on `flag` in
/// `environment`.
#[derive(Debug, Clone, PartialEq)]
pub struct Task<'a> {
    /// The alert's index in the payload.
    pub alert: usize,
    /// The binding it matched.
    pub binding: &'a Binding,
    /// The flag.
    pub flag: String,
    /// The environment.
    pub environment: String,
}

/// The plan of a notification: a task per (alert, matching binding), and the indexes of
/// the alerts no binding matches. An alert that matches a binding taking its flag or
/// environment from a label it lacks, or naming a flag or environment `exists` denies, is a
/// 422 naming the label (`alerts[0].labels.flag`): nothing of the notification acts.
pub fn plan<'a>(
    payload: &AlertmanagerPayload,
    bindings: &'a [Binding],
    exists: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<(Vec<Task<'a>>, Vec<usize>), ApiError> {
    let mut tasks = Vec::new();
    let mut unmatched = Vec::new();
    let mut errors = Vec::new();
    for (i, alert) in payload.alerts.iter().enumerate() {
        let mut matched = false;
        for binding in bindings.iter().filter(|b| b.spec.matches(&alert.labels)) {
            matched = true;
            let flag = binding.spec.flag.resolve(alert);
            let environment = binding.spec.environment.resolve(alert);
            let (flag, environment) = match (flag, environment) {
                (Ok(flag), Ok(environment)) => (flag, environment),
                (Err(label), _) | (_, Err(label)) => {
                    errors.push(field(
                        format!("alerts[{i}].labels.{label}"),
                        format!(
                            "binding {} takes the {} from this label, and the alert has none",
                            binding.id,
                            if binding.spec.flag.resolve(alert).is_err() {
                                "flag"
                            } else {
                                "environment"
                            }
                        ),
                    ));
                    continue;
                }
            };
            if let Err(message) = exists(flag, environment) {
                // Only a key that came from the alert is the payload's fault; a binding
                // whose own flag was archived since acts on nothing (the answer says so).
                let from_label = [&binding.spec.flag, &binding.spec.environment]
                    .into_iter()
                    .find_map(|t| match t {
                        Target::Label { label } => Some(label),
                        Target::Fixed(_) => None,
                    });
                if let Some(label) = from_label {
                    errors.push(field(format!("alerts[{i}].labels.{label}"), message));
                    continue;
                }
            }
            tasks.push(Task {
                alert: i,
                binding,
                flag: flag.to_owned(),
                environment: environment.to_owned(),
            });
        }
        if !matched {
            unmatched.push(i);
        }
    }
    if errors.is_empty() {
        Ok((tasks, unmatched))
    } else {
        Err(ApiError::Validation(ValidationErrors(errors)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(id: i64, spec: serde_json::Value) -> Binding {
        Binding {
            id,
            spec: serde_json::from_value(spec).unwrap(),
            created_at: String::new(),
            created_by: String::new(),
        }
    }

    fn payload(labels: serde_json::Value) -> AlertmanagerPayload {
        serde_json::from_value(json!({
            "version": "4", "status": "firing",
            "alerts": [{"status": "firing", "labels": labels, "startsAt": "2026-12-01T03:00:00Z",
                        "fingerprint": "f1"}]
        }))
        .unwrap()
    }

    #[test]
    fn matchers_are_exact_or_anchored_regexes() {
        let b = binding(
            1,
            json!({"matchers": {"alertname": {"regex": "Checkout.*"}, "team": "pay"},
                   "flag": "x", "environment": "production", "action": "kill"}),
        );
        let labels = |name: &str, team: &str| {
            BTreeMap::from([
                ("alertname".to_owned(), name.to_owned()),
                ("team".to_owned(), team.to_owned()),
            ])
        };
        assert!(b.spec.matches(&labels("CheckoutErrors", "pay")));
        assert!(!b.spec.matches(&labels("MyCheckoutErrors", "pay")));
        assert!(!b.spec.matches(&labels("CheckoutErrors", "payments")));
        assert!(!b.spec.matches(&BTreeMap::new()));
        assert_eq!(b.spec.on_resolved, OnResolved::Nothing);
    }

    #[test]
    fn a_label_target_missing_from_the_alert_is_named() {
        let bindings = [binding(
            7,
            json!({"matchers": {"alertname": "A"}, "flag": {"label": "flag"},
                   "environment": "production", "action": "kill"}),
        )];
        let p = payload(json!({"alertname": "A"}));
        let Err(ApiError::Validation(errors)) = plan(&p, &bindings, |_, _| Ok(())) else {
            panic!("refused");
        };
        assert_eq!(errors.0[0].field, "alerts[0].labels.flag");
        let p = payload(json!({"alertname": "A", "flag": "checkout"}));
        let (tasks, unmatched) = plan(&p, &bindings, |_, _| Ok(())).unwrap();
        assert_eq!(tasks[0].flag, "checkout");
        assert!(unmatched.is_empty());
        let p = payload(json!({"alertname": "B"}));
        let (tasks, unmatched) = plan(&p, &bindings, |_, _| Ok(())).unwrap();
        assert!(tasks.is_empty());
        assert_eq!(unmatched, [0]);
    }

    #[test]
    fn bad_bindings_name_their_fields() {
        let spec: BindingSpec = serde_json::from_value(json!({
            "matchers": {"9x": "a", "alertname": {"regex": "("}},
            "flag": {"label": "bad-label"}, "environment": "production",
            "action": "rollback_release", "on_resolved": "restore"
        }))
        .unwrap();
        let fields: Vec<String> = spec.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "matchers.9x",
                "matchers.alertname.regex",
                "flag.label",
                "on_resolved"
            ]
        );
    }
}
