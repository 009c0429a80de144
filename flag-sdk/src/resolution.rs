//! The OpenFeature words for an evaluation: its resolution reason, and our own reason as flat
//! metadata. The one mapping shared by the OpenFeature provider (`openfeature`) and the
//! server's OFREP endpoints, so a Rust service and a Python or browser one read the same
//! reason for the same flag. Pure: no I/O, no OpenFeature crate.
//!
//! | contract reason                      | OpenFeature reason |
//! |--------------------------------------|--------------------|
//! | `OFF`                                | `DISABLED`         |
//! | `TARGET_MATCH`, `RULE_MATCH`         | `TARGETING_MATCH`  |
//! | `RULE_MATCH` / `FALLTHROUGH` rollout | `SPLIT`            |
//! | `FALLTHROUGH` of a flag with no targets, rules or prerequisites | `STATIC` |
//! | `FALLTHROUGH` after targeting        | `DEFAULT`          |
//! | `PREREQUISITE_FAILED`                | `DEFAULT` (the off variation stands in) |
//! | `ERROR`                              | `ERROR`            |
//!
//! Every one is in the reason list that OpenFeature clients know (a Python client refuses any
//! other); the contract's own reason travels in the metadata ([`metadata`]).

use crate::eval::{ErrorKind, Reason};
use crate::model::Flag;

/// An OpenFeature resolution reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenFeatureReason {
    /// The value is static: the flag has no targeting at all.
    Static,
    /// Targeting ran and fell back to the flag's default.
    Default,
    /// A target or a rule chose the value.
    TargetingMatch,
    /// A rollout's bucketing chose the value.
    Split,
    /// The flag is off.
    Disabled,
    /// The reason cannot be told.
    Unknown,
    /// An error: the caller's default applies.
    Error,
}

impl OpenFeatureReason {
    /// The reason as OpenFeature spells it (`TARGETING_MATCH`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpenFeatureReason::Static => "STATIC",
            OpenFeatureReason::Default => "DEFAULT",
            OpenFeatureReason::TargetingMatch => "TARGETING_MATCH",
            OpenFeatureReason::Split => "SPLIT",
            OpenFeatureReason::Disabled => "DISABLED",
            OpenFeatureReason::Unknown => "UNKNOWN",
            OpenFeatureReason::Error => "ERROR",
        }
    }
}

/// The OpenFeature reason of `reason`, for `flag` as the snapshot holds it (`None` when it
/// has no such flag): a fallthrough is `STATIC` only for a flag with nothing to target by.
pub fn reason(flag: Option<&Flag>, reason: &Reason<'_>) -> OpenFeatureReason {
    match reason {
        Reason::Off => OpenFeatureReason::Disabled,
        Reason::TargetMatch => OpenFeatureReason::TargetingMatch,
        Reason::RuleMatch {
            in_rollout: true, ..
        }
        | Reason::Fallthrough { in_rollout: true } => OpenFeatureReason::Split,
        Reason::RuleMatch { .. } => OpenFeatureReason::TargetingMatch,
        Reason::Fallthrough { .. } if flag.is_some_and(untargeted) => OpenFeatureReason::Static,
        Reason::Fallthrough { .. } | Reason::PrerequisiteFailed { .. } => {
            OpenFeatureReason::Default
        }
        Reason::Error { .. } => OpenFeatureReason::Error,
    }
}

fn untargeted(flag: &Flag) -> bool {
    flag.targets.is_empty() && flag.rules.is_empty() && flag.prerequisites.is_empty()
}

/// A metadata value: OpenFeature metadata is flat, of booleans, numbers and strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataValue<'a> {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(u64),
    /// A string.
    Str(&'a str),
}

/// Our own reason as flat metadata entries: `reason` (the contract's kind, e.g.
/// `RULE_MATCH`), then `ruleIndex`, `ruleId`, `inRollout`, `prerequisite` or `errorKind` as
/// the reason has them.
pub fn metadata<'a>(reason: &'a Reason<'_>) -> Vec<(&'static str, MetadataValue<'a>)> {
    use MetadataValue::{Bool, Int, Str};
    let kind = match reason {
        Reason::Off => "OFF",
        Reason::TargetMatch => "TARGET_MATCH",
        Reason::RuleMatch { .. } => "RULE_MATCH",
        Reason::Fallthrough { .. } => "FALLTHROUGH",
        Reason::PrerequisiteFailed { .. } => "PREREQUISITE_FAILED",
        Reason::Error { .. } => "ERROR",
    };
    let mut entries = vec![("reason", Str(kind))];
    match reason {
        Reason::RuleMatch {
            rule_index,
            rule_id,
            in_rollout,
        } => {
            entries.push(("ruleIndex", Int(*rule_index as u64)));
            if let Some(id) = rule_id {
                entries.push(("ruleId", Str(id)));
            }
            entries.push(("inRollout", Bool(*in_rollout)));
        }
        Reason::Fallthrough { in_rollout } => entries.push(("inRollout", Bool(*in_rollout))),
        Reason::PrerequisiteFailed { prerequisite } => {
            entries.push(("prerequisite", Str(prerequisite)))
        }
        Reason::Error { error } => entries.push(("errorKind", Str(error_kind(*error)))),
        Reason::Off | Reason::TargetMatch => {}
    }
    entries
}

fn error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::FlagNotFound => "FLAG_NOT_FOUND",
        ErrorKind::WrongType => "WRONG_TYPE",
        ErrorKind::ClientNotReady => "CLIENT_NOT_READY",
        ErrorKind::MalformedFlag => "MALFORMED_FLAG",
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn flag(json: serde_json::Value) -> Flag {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_reason_is_one_openfeature_clients_know() {
        let plain = flag(
            serde_json::json!({"key": "f", "kind": "boolean", "enabled": true,
            "variations": [{"key": "on", "value": true}], "off_variation": "on",
            "fallthrough": {"variation": "on"}}),
        );
        let mut targeted = plain.clone();
        targeted.targets =
            vec![
                serde_json::from_value(serde_json::json!({"variation": "on", "keys": ["u"]}))
                    .unwrap(),
            ];
        let fallthrough = Reason::Fallthrough { in_rollout: false };
        assert_eq!(
            reason(Some(&plain), &fallthrough),
            OpenFeatureReason::Static
        );
        assert_eq!(
            reason(Some(&targeted), &fallthrough),
            OpenFeatureReason::Default
        );
        let rule = Reason::RuleMatch {
            rule_index: 2,
            rule_id: Some(Cow::Borrowed("nl")),
            in_rollout: true,
        };
        assert_eq!(reason(None, &rule), OpenFeatureReason::Split);
        assert_eq!(reason(None, &Reason::Off), OpenFeatureReason::Disabled);
        let prerequisite = Reason::PrerequisiteFailed {
            prerequisite: Cow::Borrowed("base"),
        };
        assert_eq!(reason(None, &prerequisite).as_str(), "DEFAULT");
        assert_eq!(
            metadata(&rule),
            [
                ("reason", MetadataValue::Str("RULE_MATCH")),
                ("ruleIndex", MetadataValue::Int(2)),
                ("ruleId", MetadataValue::Str("nl")),
                ("inRollout", MetadataValue::Bool(true)),
            ]
        );
        assert_eq!(
            metadata(&prerequisite)[1],
            ("prerequisite", MetadataValue::Str("base"))
        );
    }
}
