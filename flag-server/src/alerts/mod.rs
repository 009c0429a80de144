//! Alerts that act on flags: Prometheus Alertmanager's webhook payload (version 4,
//! `payload`), the bindings that say which alerts act on which flag and environment and how
//! (`binding`), and the plan of one notification: which alert, through which binding, acts
//! on which flag.
//!
//! Pure: no HTTP, no SQL. `store::alerts` runs a plan inside one write (the occurrences it
//! has already acted on, the kill, restore and release moves); `api::alerts` parses and
//! answers.

mod binding;
mod payload;
mod receipt;

use flag_sdk::validate::{FieldError, ValidationErrors};

pub use binding::{AlertAction, Binding, BindingSpec, Matcher, OnResolved, Target};
pub use payload::{parse_payload, Alert, AlertStatus, AlertmanagerPayload, PAYLOAD_VERSION};
pub use receipt::{ActionReport, Outcome, Receipt, UnmatchedAlert};

use crate::error::ApiError;

fn field(name: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: name.into(),
        message: message.into(),
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
    use std::collections::BTreeMap;

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
