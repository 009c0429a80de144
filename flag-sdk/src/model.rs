//! The serde types of the contract (contract section 2): what the server stores, the stream
//! carries and snapshot files hold. Plain data: no evaluation, no I/O. Validation lives in
//! `validate`, the ready-to-run form in `compile`.
//!
//! Reading accepts the future: unknown fields are ignored, and an operator, a flag kind or a
//! serve form this version does not know is kept as `Unknown` (written back as it came), so
//! an SDK older than its server still loads the snapshot. Validation refuses all of them,
//! so a server never stores what its SDKs cannot evaluate.
//!
//! The enums ([`Op`], [`FlagKind`], [`Serve`]) are `#[non_exhaustive]`: a later version may
//! know more operators, kinds and serve forms. The structs are kept exhaustive on purpose:
//! each is a record of contract section 2 with every field public, which the server, the
//! CLI and users' tests build as struct literals and destructure; a field the contract adds
//! is a change of the contract, released as a new major version of this crate, not a silent
//! growth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "openapi")]
mod schema;
mod wire;

/// One environment's complete state: every flag and segment at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    /// The environment's key, e.g. `production`.
    pub environment: String,
    /// Bumped by every change in the environment.
    pub revision: u64,
    /// Flags by key.
    #[serde(default)]
    pub flags: BTreeMap<String, Flag>,
    /// Segments by key.
    #[serde(default)]
    pub segments: BTreeMap<String, Segment>,
}

/// The type every variation value of a flag has. A later version may know more kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FlagKind {
    /// `true` / `false`.
    Boolean,
    /// A JSON string.
    String,
    /// A JSON number.
    Number,
    /// Any JSON value.
    Json,
    /// A kind this version does not know (a newer server's), kept as written: the flag
    /// evaluates to `MALFORMED_FLAG` and validation refuses it.
    Unknown(String),
}

impl FlagKind {
    /// Whether `value` is of this kind (never, for an unknown kind).
    pub fn admits(&self, value: &Value) -> bool {
        match self {
            FlagKind::Boolean => value.is_boolean(),
            FlagKind::String => value.is_string(),
            FlagKind::Number => value.is_number(),
            FlagKind::Json => true,
            FlagKind::Unknown(_) => false,
        }
    }

    /// The kind's name as written in JSON.
    pub fn as_str(&self) -> &str {
        match self {
            FlagKind::Boolean => "boolean",
            FlagKind::String => "string",
            FlagKind::Number => "number",
            FlagKind::Json => "json",
            FlagKind::Unknown(name) => name,
        }
    }

    /// The kind named `name`; [`FlagKind::Unknown`] for a name this version does not know.
    pub fn from_name(name: &str) -> FlagKind {
        match name {
            "boolean" => FlagKind::Boolean,
            "string" => FlagKind::String,
            "number" => FlagKind::Number,
            "json" => FlagKind::Json,
            other => FlagKind::Unknown(other.to_owned()),
        }
    }
}

/// One environment's configuration of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Flag {
    /// The flag's key.
    pub key: String,
    /// The type of its values.
    pub kind: FlagKind,
    /// Bumped by every change of this configuration.
    #[serde(default)]
    pub version: u64,
    /// The values it can serve.
    pub variations: Vec<Variation>,
    /// `false` is the kill switch: serve `off_variation`.
    #[serde(default)]
    pub enabled: bool,
    /// The variation served when off or when a prerequisite fails.
    pub off_variation: String,
    /// Flags that must serve a given variation before this one is evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// Individual context keys pinned to a variation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    /// Targeting rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What everyone else gets.
    pub fallthrough: Serve,
}

/// A value a flag can serve, under a stable key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Variation {
    /// The variation's key, e.g. `on`.
    pub key: String,
    /// The value served.
    pub value: Value,
}

/// Another flag that must serve `variation` for this flag to go past its prerequisites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prerequisite {
    /// The prerequisite flag's key.
    pub flag: String,
    /// The variation it must serve.
    pub variation: String,
}

/// Context keys that get `variation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    /// The variation served to these keys.
    pub variation: String,
    /// The context keys.
    pub keys: Vec<String>,
}

/// A targeting rule: all clauses must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    /// An identifier that stays put when rules are reordered (reported in reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// AND-ed conditions.
    pub clauses: Vec<Clause>,
    /// What a matching context gets.
    pub serve: Serve,
}

/// One condition on a context attribute. Values are OR-ed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Clause {
    /// The attribute read from the context (`key` is the context key).
    #[serde(default)]
    pub attribute: String,
    /// The operator.
    pub op: Op,
    /// The values compared against; any one matching is enough.
    pub values: Vec<Value>,
    /// Inverts the clause's result (never makes a missing attribute match).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negate: bool,
}

/// Clause operators (contract section 2). A later version may know more operators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Equal, same JSON type.
    In,
    /// String prefix.
    StartsWith,
    /// String suffix.
    EndsWith,
    /// Substring.
    Contains,
    /// Rust `regex` syntax, unanchored.
    Matches,
    /// Number less than.
    Lt,
    /// Number less than or equal.
    Lte,
    /// Number greater than.
    Gt,
    /// Number greater than or equal.
    Gte,
    /// Instant before (RFC 3339 or Unix milliseconds).
    Before,
    /// Instant after (RFC 3339 or Unix milliseconds).
    After,
    /// SemVer equal precedence.
    SemverEq,
    /// SemVer lower precedence.
    SemverLt,
    /// SemVer higher precedence.
    SemverGt,
    /// The context is a member of one of the segments named in `values`.
    InSegment,
    /// An operator this version does not know (a newer server's), kept as written. In a
    /// flag's rule the clause never matches, negated or not; a segment with such a clause
    /// cannot be decided, so flags that use it evaluate to `MALFORMED_FLAG`. Validation
    /// refuses it.
    Unknown(String),
}

impl Op {
    /// Every operator this version knows.
    pub const KNOWN: [Op; 15] = [
        Op::In,
        Op::StartsWith,
        Op::EndsWith,
        Op::Contains,
        Op::Matches,
        Op::Lt,
        Op::Lte,
        Op::Gt,
        Op::Gte,
        Op::Before,
        Op::After,
        Op::SemverEq,
        Op::SemverLt,
        Op::SemverGt,
        Op::InSegment,
    ];

    /// The operator's name as written in JSON.
    pub fn as_str(&self) -> &str {
        match self {
            Op::In => "in",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::Contains => "contains",
            Op::Matches => "matches",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Before => "before",
            Op::After => "after",
            Op::SemverEq => "semver_eq",
            Op::SemverLt => "semver_lt",
            Op::SemverGt => "semver_gt",
            Op::InSegment => "in_segment",
            Op::Unknown(name) => name,
        }
    }

    /// The operator named `name`; [`Op::Unknown`] for a name this version does not know.
    pub fn from_name(name: &str) -> Op {
        Op::KNOWN
            .into_iter()
            .find(|op| op.as_str() == name)
            .unwrap_or_else(|| Op::Unknown(name.to_owned()))
    }
}

/// What to serve: one variation, or a percentage rollout. A later version may know more
/// forms.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Serve {
    /// `{"variation": KEY}`
    Variation(String),
    /// `{"rollout": {...}}`
    Rollout(Rollout),
    /// An object that is neither of the above (a newer server's serve, or one with extra
    /// keys), kept as written: the flag evaluates to `MALFORMED_FLAG` and validation
    /// refuses it.
    Unknown(Value),
}

/// A percentage rollout, bucketed by murmur3 (contract section 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rollout {
    /// The attribute hashed into a bucket; `key` by default.
    #[serde(default = "default_bucket_by")]
    pub bucket_by: String,
    /// The hash salt; the flag key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Weights in thousandths of a percent, summing to 100000.
    pub weights: Vec<WeightedVariation>,
}

fn default_bucket_by() -> String {
    "key".to_owned()
}

/// One variation's share of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WeightedVariation {
    /// The variation key.
    pub variation: String,
    /// Thousandths of a percent: 25000 is 25%.
    pub weight: u32,
}

/// The total of a rollout's weights: 100% in thousandths of a percent.
pub const TOTAL_WEIGHT: u32 = 100_000;

/// A reusable set of contexts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    /// The segment's key.
    pub key: String,
    /// Bumped by every change.
    #[serde(default)]
    pub version: u64,
    /// Context keys that are always members.
    #[serde(default)]
    pub included: Vec<String>,
    /// Context keys that are never members (unless included).
    #[serde(default)]
    pub excluded: Vec<String>,
    /// Any rule matching makes a context a member.
    #[serde(default)]
    pub rules: Vec<SegmentRule>,
}

/// A segment rule: all clauses must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentRule {
    /// AND-ed conditions.
    pub clauses: Vec<Clause>,
}

impl Serve {
    /// The attribute and salt this serve buckets by: a rollout's own, else `key` and no salt
    /// (the flag key). A new rollout that keeps them keeps every context in its bucket.
    pub fn bucketing(&self) -> (&str, Option<&str>) {
        match self {
            Serve::Rollout(r) => (r.bucket_by.as_str(), r.salt.as_deref()),
            Serve::Variation(_) | Serve::Unknown(_) => ("key", None),
        }
    }

    /// The sticky rollout that replaces `current`: `variation` gets `weight` (thousandths of
    /// a percent, at most [`TOTAL_WEIGHT`]) and is listed first, so raising its weight never
    /// moves a context out of it (contract section 3); the rest is shared among `rest` in
    /// proportion to their weights (the last one takes the rounding; `variation` itself is
    /// skipped). `current`'s `bucket_by` and salt are kept; `bucket_by` replaces the attribute.
    /// `flag rollout` and the release stages both build their fallthrough here.
    pub fn sticky_rollout(
        current: &Serve,
        bucket_by: Option<&str>,
        variation: &str,
        weight: u32,
        rest: &[WeightedVariation],
    ) -> Serve {
        let (kept, salt) = current.bucketing();
        let weight = weight.min(TOTAL_WEIGHT);
        let remaining = TOTAL_WEIGHT - weight;
        let others: Vec<&WeightedVariation> =
            rest.iter().filter(|w| w.variation != variation).collect();
        let total: u64 = others.iter().map(|w| u64::from(w.weight)).sum();
        let mut weights = vec![WeightedVariation {
            variation: variation.to_owned(),
            weight,
        }];
        let mut given = 0;
        for (i, w) in others.iter().enumerate() {
            let share = if i + 1 == others.len() {
                remaining - given
            } else {
                (u64::from(remaining) * u64::from(w.weight))
                    .checked_div(total)
                    .unwrap_or(0) as u32
            };
            given += share;
            weights.push(WeightedVariation {
                variation: w.variation.clone(),
                weight: share,
            });
        }
        Serve::Rollout(Rollout {
            bucket_by: bucket_by.unwrap_or(kept).to_owned(),
            salt: salt.map(str::to_owned),
            weights,
        })
    }
}
