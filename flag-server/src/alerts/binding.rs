//! Bindings: which alerts (label matchers) act on which flag and environment (fixed, or
//! from the alert's labels), and how (`kill`, `pause_release`, `rollback_release`; on
//! resolution `nothing` or `restore`).

use std::collections::BTreeMap;

use flag_sdk::validate::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{field, Alert};

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
    pub(super) fn resolve<'a>(&'a self, alert: &'a Alert) -> Result<&'a str, &'a str> {
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
