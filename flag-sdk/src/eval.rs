//! The evaluation order and reasons of contract section 3, over a [`CompiledSnapshot`].
//!
//! Evaluation borrows everything from the snapshot: it never allocates, never blocks and never
//! panics. Recursion (prerequisites, segments inside segments) is bounded by [`MAX_DEPTH`];
//! compilation has already marked as malformed the flags whose chains go deeper, so the bound
//! is never what decides an answer.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bucket::bucket_attribute;
use crate::compile::{CompiledClause, CompiledServe, CompiledSnapshot, Kind, Slot};
use crate::context::{Attribute, Context};
use crate::model::FlagKind;
use crate::operators::{Matcher, Scalar};

/// How deep prerequisites and nested segments may go before a flag counts as malformed:
/// a flag with a chain of more than `MAX_DEPTH` prerequisites below it, or more than
/// `MAX_DEPTH` nested segments, evaluates to `MALFORMED_FLAG`.
pub const MAX_DEPTH: usize = 32;

/// Why a flag served what it served (contract section 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Reason<'a> {
    /// The flag is off: the kill switch.
    Off,
    /// The context key is in a target list.
    TargetMatch,
    /// A rule matched.
    RuleMatch {
        /// The rule's position.
        rule_index: usize,
        /// The rule's id, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule_id: Option<Cow<'a, str>>,
        /// Whether the rule served a rollout.
        in_rollout: bool,
    },
    /// No target or rule matched.
    Fallthrough {
        /// Whether the fallthrough is a rollout.
        in_rollout: bool,
    },
    /// A prerequisite flag did not serve the required variation.
    PrerequisiteFailed {
        /// The prerequisite's key.
        prerequisite: Cow<'a, str>,
    },
    /// The default was served.
    Error {
        /// What went wrong.
        error: ErrorKind,
    },
}

impl Reason<'_> {
    /// Whether the value came through a rollout: the evaluations a release guard counts
    /// (the SDK's counters and the server's OFREP tally alike).
    pub fn in_rollout(&self) -> bool {
        matches!(
            self,
            Reason::Fallthrough { in_rollout: true }
                | Reason::RuleMatch {
                    in_rollout: true,
                    ..
                }
        )
    }

    /// A copy that owns its strings.
    pub fn into_owned(self) -> Reason<'static> {
        match self {
            Reason::Off => Reason::Off,
            Reason::TargetMatch => Reason::TargetMatch,
            Reason::RuleMatch {
                rule_index,
                rule_id,
                in_rollout,
            } => Reason::RuleMatch {
                rule_index,
                rule_id: rule_id.map(|id| Cow::Owned(id.into_owned())),
                in_rollout,
            },
            Reason::Fallthrough { in_rollout } => Reason::Fallthrough { in_rollout },
            Reason::PrerequisiteFailed { prerequisite } => Reason::PrerequisiteFailed {
                prerequisite: Cow::Owned(prerequisite.into_owned()),
            },
            Reason::Error { error } => Reason::Error { error },
        }
    }
}

/// Why the caller's default was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The snapshot has no such flag.
    FlagNotFound,
    /// A typed getter was asked for a flag of another kind.
    WrongType,
    /// The client has no data yet.
    ClientNotReady,
    /// The flag's configuration cannot be evaluated.
    MalformedFlag,
}

/// The outcome of evaluating one flag, borrowed from the snapshot.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Evaluation<'a> {
    /// The value served; `None` when the caller's default applies.
    pub value: Option<&'a Value>,
    /// The key of the variation served; `None` when the caller's default applies.
    pub variation: Option<&'a str>,
    /// The index of the variation served.
    pub variation_index: Option<usize>,
    /// Why.
    pub reason: Reason<'a>,
}

impl Evaluation<'_> {
    /// The caller's default, for `error`.
    pub fn error(error: ErrorKind) -> Self {
        Evaluation {
            value: None,
            variation: None,
            variation_index: None,
            reason: Reason::Error { error },
        }
    }
}

/// A reason in compact form, spelled out only when a caller asks for the detail.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Why {
    Off,
    Target,
    Rule { index: usize, in_rollout: bool },
    Fallthrough { in_rollout: bool },
    PrerequisiteFailed { index: usize },
}

impl Why {
    /// Whether the variation came from a rollout (what the release guard counts).
    #[cfg(feature = "client")]
    #[inline]
    pub(crate) fn in_rollout(self) -> bool {
        matches!(
            self,
            Why::Rule {
                in_rollout: true,
                ..
            } | Why::Fallthrough { in_rollout: true }
        )
    }
}

/// (flag index, variation index, why), or why the default applies.
pub(crate) type Outcome = Result<(usize, usize, Why), ErrorKind>;

impl CompiledSnapshot {
    /// Evaluates flag `key` for `ctx` (contract section 3).
    pub fn evaluate(&self, key: &str, ctx: &Context) -> Evaluation<'_> {
        self.detail(self.outcome(key, ctx, None))
    }

    /// Like [`evaluate`](Self::evaluate), but `WRONG_TYPE` unless the flag is of `kind`
    /// (`Json` reads a flag of any kind).
    pub fn evaluate_kind(&self, key: &str, ctx: &Context, kind: FlagKind) -> Evaluation<'_> {
        self.detail(self.outcome(key, ctx, Some(Kind::of(&kind))))
    }

    /// The compact outcome: which flag, which variation, and a reason code. Typed getters
    /// stop here; only `evaluate` spells the reason out. A flag whose answer is the same for
    /// every context is answered from the table's slot.
    #[inline(always)]
    pub(crate) fn outcome(&self, key: &str, ctx: &Context, kind: Option<Kind>) -> Outcome {
        let Some(slot) = self.index.get_inlined(key) else {
            return Err(ErrorKind::FlagNotFound);
        };
        self.outcome_of(slot, ctx, kind)
    }

    /// [`outcome`](Self::outcome) of the flag in `slot`.
    #[inline(always)]
    pub(crate) fn outcome_of(&self, slot: &Slot, ctx: &Context, kind: Option<Kind>) -> Outcome {
        match (kind, slot.constant) {
            (Some(kind), _) if kind != Kind::Json && slot.kind != kind => {
                self.outcome_at(slot.index, ctx, Some(kind))
            }
            (_, Some((v, why))) => Ok((slot.index, v, why)),
            _ => self.outcome_at(slot.index, ctx, kind),
        }
    }

    /// [`outcome`](Self::outcome) of the flag at index `i`.
    pub(crate) fn outcome_at(&self, i: usize, ctx: &Context, kind: Option<Kind>) -> Outcome {
        match kind {
            Some(kind) if kind != Kind::Json && self.flags[i].kind != kind => {
                // A flag of a kind this version does not know is malformed, not of another kind.
                match self.flags[i].malformed {
                    Some(_) => Err(ErrorKind::MalformedFlag),
                    None => Err(ErrorKind::WrongType),
                }
            }
            // The kill switch answers before the general path: it is the one that must be fast
            // when everything else is on fire.
            _ if !self.flags[i].enabled && self.flags[i].malformed.is_none() => {
                Ok((i, self.flags[i].off, Why::Off))
            }
            _ => self
                .resolve(i, ctx, 0)
                .map(|(variation, why)| (i, variation, why)),
        }
    }

    /// The value of variation `v` of flag `i`.
    #[inline]
    pub(crate) fn value_of(&self, i: usize, v: usize) -> Option<&Value> {
        self.flags[i].variations.get(v).map(|v| &v.value)
    }

    /// The outcome spelled out.
    pub(crate) fn detail(&self, outcome: Outcome) -> Evaluation<'_> {
        let (i, v, why) = match outcome {
            Ok(found) => found,
            Err(error) => return Evaluation::error(error),
        };
        let flag = &self.flags[i];
        let reason = match why {
            Why::Off => Reason::Off,
            Why::Target => Reason::TargetMatch,
            Why::Rule { index, in_rollout } => Reason::RuleMatch {
                rule_index: index,
                rule_id: flag.rules[index].id.as_deref().map(Cow::Borrowed),
                in_rollout,
            },
            Why::Fallthrough { in_rollout } => Reason::Fallthrough { in_rollout },
            Why::PrerequisiteFailed { index } => Reason::PrerequisiteFailed {
                prerequisite: Cow::Borrowed(&flag.prerequisites[index].key),
            },
        };
        match flag.variations.get(v) {
            Some(variation) => Evaluation {
                value: Some(&variation.value),
                variation: Some(&variation.key),
                variation_index: Some(v),
                reason,
            },
            None => Evaluation::error(ErrorKind::MalformedFlag),
        }
    }

    /// The variation flag `i` serves `ctx`, and why: contract section 3 steps 2-6.
    fn resolve(&self, i: usize, ctx: &Context, depth: usize) -> Result<(usize, Why), ErrorKind> {
        let flag = &self.flags[i];
        if flag.malformed.is_some() || depth > MAX_DEPTH {
            return Err(ErrorKind::MalformedFlag);
        }
        if !flag.enabled {
            return Ok((flag.off, Why::Off));
        }
        for (index, p) in flag.prerequisites.iter().enumerate() {
            let passed = match (p.flag, p.variation) {
                (Some(j), Some(want)) => {
                    self.flags[j].enabled
                        && matches!(self.resolve(j, ctx, depth + 1), Ok((got, _)) if got == want)
                }
                _ => false,
            };
            if !passed {
                return Ok((flag.off, Why::PrerequisiteFailed { index }));
            }
        }
        if !flag.targets.is_empty() {
            if let Some(&v) = flag.targets.get(ctx.key()) {
                return Ok((v, Why::Target));
            }
        }
        for (index, rule) in flag.rules.iter().enumerate() {
            if rule.clauses.iter().all(|c| self.clause_matches(c, ctx, 0)) {
                let (v, in_rollout) = serve(&rule.serve, ctx);
                return Ok((v, Why::Rule { index, in_rollout }));
            }
        }
        let (v, in_rollout) = serve(&flag.fallthrough, ctx);
        Ok((v, Why::Fallthrough { in_rollout }))
    }

    /// Whether `clause` matches; `depth` counts the segments around it (prerequisites have
    /// their own depth: a segment cannot name a flag).
    fn clause_matches(&self, clause: &CompiledClause, ctx: &Context, depth: usize) -> bool {
        if let Matcher::InSegment(segments) = &clause.matcher {
            let member = segments
                .iter()
                .any(|s| s.is_some_and(|s| self.in_segment(s, ctx, depth + 1)));
            return member != clause.negate;
        }
        let hit = match ctx.attribute_named(&clause.attribute) {
            None => return false, // a missing attribute never matches, negated or not
            Some(Attribute::Key(key)) => clause.matcher.matches(Scalar::Str(key)),
            Some(Attribute::Value(Value::Array(items))) => items
                .iter()
                .any(|item| clause.matcher.matches(Scalar::from(item))),
            Some(Attribute::Value(value)) => clause.matcher.matches(Scalar::from(value)),
        };
        hit != clause.negate
    }

    fn in_segment(&self, s: usize, ctx: &Context, depth: usize) -> bool {
        let segment = &self.segments[s];
        if !segment.included.is_empty() && segment.included.contains(ctx.key()) {
            return true;
        }
        let excluded = !segment.excluded.is_empty() && segment.excluded.contains(ctx.key());
        if excluded || depth > MAX_DEPTH {
            return false;
        }
        segment
            .rules
            .iter()
            .any(|rule| rule.iter().all(|c| self.clause_matches(c, ctx, depth)))
    }
}

/// The variation a serve gives `ctx`, and whether it came from a rollout.
fn serve(serve: &CompiledServe, ctx: &Context) -> (usize, bool) {
    match serve {
        CompiledServe::Variation(v) => (*v, false),
        CompiledServe::Rollout {
            bucket_by,
            salt,
            buckets,
        } => {
            let b = ctx
                .attribute_named(bucket_by)
                .and_then(|attribute| bucket_attribute(salt, attribute))
                .unwrap_or_else(|| salt.bucket(ctx.key()));
            let v = buckets
                .iter()
                .find(|(end, _)| *end > b)
                .or(buckets.last())
                .map_or(usize::MAX, |(_, v)| *v);
            (v, true)
        }
    }
}
