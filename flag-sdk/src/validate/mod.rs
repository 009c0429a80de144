//! Validation of flags, segments and snapshots: every problem at once, each with the JSON path
//! of the offending field (`rules[0].clauses[1].values[0]`), so the server can name it in a
//! 4xx answer. Clause values are checked by the same parsers that compile them.

mod references;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Clause, Flag, FlagKind, Op, Segment, Serve, Snapshot, TOTAL_WEIGHT};
use crate::operators::Matcher;
use references::{check_flag_references, check_segment_references, Graph};

/// One problem, at one JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `rules[0].clauses[1].values[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every problem found, in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The longest key: flags, segments, environments and variations.
pub const MAX_KEY_LEN: usize = 100;

/// Checks a key against `^[a-z0-9][a-z0-9._-]{0,99}$`.
pub fn check_key(key: &str) -> Result<(), String> {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok =
        bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if first_ok && rest_ok && key.len() <= MAX_KEY_LEN {
        Ok(())
    } else {
        Err(format!(
            "must match ^[a-z0-9][a-z0-9._-]{{0,99}}$ (lowercase letters, digits, '.', '_', '-'; at most {MAX_KEY_LEN})"
        ))
    }
}

struct Report {
    errors: Vec<FieldError>,
}

impl Report {
    fn new() -> Self {
        Report { errors: Vec::new() }
    }

    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn key(&mut self, field: impl Into<String>, key: &str) {
        if let Err(message) = check_key(key) {
            self.push(field, message);
        }
    }

    fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// Checks a flag on its own: keys, kinds, variation references, weights, clause values.
pub fn validate_flag(flag: &Flag) -> Result<(), ValidationErrors> {
    let mut r = Report::new();
    check_flag(&mut r, "", flag);
    r.finish()
}

/// Checks a flag as it would stand in `snapshot` (replacing its namesake): everything
/// [`validate_flag`] checks, plus that prerequisites and segments exist, that no
/// prerequisite cycle forms and that no prerequisite chain through it goes deeper than
/// [`MAX_DEPTH`](crate::MAX_DEPTH).
pub fn validate_flag_in(flag: &Flag, snapshot: &Snapshot) -> Result<(), ValidationErrors> {
    let mut r = Report::new();
    check_flag(&mut r, "", flag);
    let prerequisites = Graph::prerequisites(snapshot, Some(flag));
    let segments = Graph::segments(snapshot, None);
    check_flag_references(&mut r, "", flag, snapshot, &prerequisites, &segments);
    r.finish()
}

/// Checks a segment on its own.
pub fn validate_segment(segment: &Segment) -> Result<(), ValidationErrors> {
    let mut r = Report::new();
    check_segment(&mut r, "", segment);
    r.finish()
}

/// Checks a segment as it would stand in `snapshot`: segments it names exist, no cycle forms,
/// and no chain of segments through it is longer than [`MAX_DEPTH`](crate::MAX_DEPTH).
pub fn validate_segment_in(segment: &Segment, snapshot: &Snapshot) -> Result<(), ValidationErrors> {
    let mut r = Report::new();
    check_segment(&mut r, "", segment);
    check_segment_references(
        &mut r,
        "",
        segment,
        &Graph::segments(snapshot, Some(segment)),
    );
    r.finish()
}

/// Checks a whole snapshot: each flag and segment, map keys against their contents, and all
/// references. Paths start at the snapshot (`flags.new-checkout.rules[0]...`).
pub fn validate_snapshot(snapshot: &Snapshot) -> Result<(), ValidationErrors> {
    let mut r = Report::new();
    r.key("environment", &snapshot.environment);
    let prerequisites = Graph::prerequisites(snapshot, None);
    let segments = Graph::segments(snapshot, None);
    for (key, flag) in &snapshot.flags {
        let at = format!("flags.{key}.");
        if flag.key != *key {
            r.push(
                format!("{at}key"),
                format!("does not match the map key `{key}`"),
            );
        }
        check_flag(&mut r, &at, flag);
        check_flag_references(&mut r, &at, flag, snapshot, &prerequisites, &segments);
    }
    for (key, segment) in &snapshot.segments {
        let at = format!("segments.{key}.");
        if segment.key != *key {
            r.push(
                format!("{at}key"),
                format!("does not match the map key `{key}`"),
            );
        }
        check_segment(&mut r, &at, segment);
        check_segment_references(&mut r, &at, segment, &segments);
    }
    r.finish()
}

fn check_flag(r: &mut Report, at: &str, flag: &Flag) {
    r.key(format!("{at}key"), &flag.key);
    let known_kind = !matches!(flag.kind, FlagKind::Unknown(_));
    if !known_kind {
        r.push(
            format!("{at}kind"),
            format!(
                "unknown kind `{}`: use boolean, string, number or json",
                flag.kind.as_str()
            ),
        );
    }
    if flag.variations.is_empty() {
        r.push(
            format!("{at}variations"),
            "a flag needs at least one variation",
        );
    }
    for (i, v) in flag.variations.iter().enumerate() {
        r.key(format!("{at}variations[{i}].key"), &v.key);
        if flag.variations[..i].iter().any(|w| w.key == v.key) {
            r.push(
                format!("{at}variations[{i}].key"),
                format!("duplicate variation `{}`", v.key),
            );
        }
        if known_kind && !flag.kind.admits(&v.value) {
            r.push(
                format!("{at}variations[{i}].value"),
                format!("must be a {} like the flag's kind", flag.kind.as_str()),
            );
        }
    }
    let known = |key: &str| flag.variations.iter().any(|v| v.key == key);
    let variation_ref = |r: &mut Report, field: String, key: &str| {
        if !known(key) {
            r.push(field, format!("unknown variation `{key}`"));
        }
    };
    variation_ref(r, format!("{at}off_variation"), &flag.off_variation);
    for (i, p) in flag.prerequisites.iter().enumerate() {
        r.key(format!("{at}prerequisites[{i}].flag"), &p.flag);
        if p.flag == flag.key {
            r.push(
                format!("{at}prerequisites[{i}].flag"),
                "a flag cannot be its own prerequisite",
            );
        }
    }
    for (i, t) in flag.targets.iter().enumerate() {
        variation_ref(r, format!("{at}targets[{i}].variation"), &t.variation);
        for (j, key) in t.keys.iter().enumerate() {
            if key.is_empty() {
                r.push(format!("{at}targets[{i}].keys[{j}]"), "must not be empty");
            }
        }
    }
    for (i, rule) in flag.rules.iter().enumerate() {
        if let Some(id) = &rule.id {
            if id.is_empty() || id.len() > MAX_KEY_LEN {
                r.push(format!("{at}rules[{i}].id"), "must be 1 to 100 characters");
            }
            if flag.rules[..i].iter().any(|o| o.id.as_ref() == Some(id)) {
                r.push(
                    format!("{at}rules[{i}].id"),
                    format!("duplicate rule id `{id}`"),
                );
            }
        }
        check_clauses(r, &format!("{at}rules[{i}]."), &rule.clauses);
        check_serve(r, &format!("{at}rules[{i}].serve"), &rule.serve, &known);
    }
    check_serve(r, &format!("{at}fallthrough"), &flag.fallthrough, &known);
}

fn check_serve(r: &mut Report, at: &str, serve: &Serve, known: &dyn Fn(&str) -> bool) {
    match serve {
        Serve::Variation(key) => {
            if !known(key) {
                r.push(
                    format!("{at}.variation"),
                    format!("unknown variation `{key}`"),
                );
            }
        }
        Serve::Rollout(rollout) => {
            let at = format!("{at}.rollout");
            if rollout.bucket_by.is_empty() {
                r.push(format!("{at}.bucket_by"), "must name an attribute");
            }
            if rollout.weights.is_empty() {
                r.push(
                    format!("{at}.weights"),
                    "a rollout needs at least one weight",
                );
            }
            let mut sum: u64 = 0;
            for (i, w) in rollout.weights.iter().enumerate() {
                if !known(&w.variation) {
                    r.push(
                        format!("{at}.weights[{i}].variation"),
                        format!("unknown variation `{}`", w.variation),
                    );
                }
                sum += u64::from(w.weight);
            }
            if !rollout.weights.is_empty() && sum != u64::from(TOTAL_WEIGHT) {
                r.push(
                    format!("{at}.weights"),
                    format!("weights sum to {sum}; they must sum to exactly {TOTAL_WEIGHT} (100%)"),
                );
            }
        }
        Serve::Unknown(_) => r.push(
            at,
            r#"a serve is {"variation": KEY} or {"rollout": {...}}, with no other key"#,
        ),
    }
}

fn check_clauses(r: &mut Report, at: &str, clauses: &[Clause]) {
    if clauses.is_empty() {
        r.push(format!("{at}clauses"), "a rule needs at least one clause");
    }
    for (i, clause) in clauses.iter().enumerate() {
        let at = format!("{at}clauses[{i}]");
        if let Op::Unknown(op) = &clause.op {
            let known: Vec<&str> = Op::KNOWN.iter().map(Op::as_str).collect();
            r.push(
                format!("{at}.op"),
                format!("unknown operator `{op}`: use one of {}", known.join(", ")),
            );
        } else if clause.op != Op::InSegment && clause.attribute.is_empty() {
            r.push(format!("{at}.attribute"), "must name an attribute");
        }
        if clause.values.is_empty() {
            r.push(format!("{at}.values"), "a clause needs at least one value");
        }
        if let Err(bad) = Matcher::compile(&clause.op, &clause.values, &|_| None) {
            r.push(format!("{at}.values[{}]", bad.index), bad.message);
        }
        if clause.op == Op::InSegment {
            for (j, v) in clause.values.iter().enumerate() {
                if let Some(Err(message)) = v.as_str().map(check_key) {
                    r.push(format!("{at}.values[{j}]"), message);
                }
            }
        }
    }
}

fn check_segment(r: &mut Report, at: &str, segment: &Segment) {
    r.key(format!("{at}key"), &segment.key);
    for (list, keys) in [
        ("included", &segment.included),
        ("excluded", &segment.excluded),
    ] {
        for (i, key) in keys.iter().enumerate() {
            if key.is_empty() {
                r.push(format!("{at}{list}[{i}]"), "must not be empty");
            }
        }
    }
    for (i, rule) in segment.rules.iter().enumerate() {
        check_clauses(r, &format!("{at}rules[{i}]."), &rule.clauses);
    }
}
