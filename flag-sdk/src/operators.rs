//! Clause operators: each one compiled once from the clause's JSON values, then matched
//! against a context value without parsing the clause again.
//!
//! Matching never fails: a context value of the wrong type simply does not match. Clause
//! values are checked here too, so validation and compilation share one parser per operator.

use std::cmp::Ordering;

use semver::{BuildMetadata, Prerelease, Version};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::keys::KeySet;
use crate::model::Op;
use crate::pattern::Pattern;

/// A clause's values in ready-to-match form.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    In {
        strings: KeySet,
        numbers: Vec<f64>,
        bools: [bool; 2],
    },
    StartsWith(Vec<Box<str>>),
    EndsWith(Vec<Box<str>>),
    Contains(Vec<Box<str>>),
    Matches(Vec<Pattern>),
    Number(Cmp, Vec<f64>),
    /// Unix milliseconds; `true` for `before`.
    Instant(bool, Vec<i128>),
    /// The ordering the context's version must have against a value.
    Semver(Ordering, Vec<Version>),
    /// Segment indexes in the compiled snapshot; `None` for a segment it does not hold.
    InSegment(Vec<Option<usize>>),
    /// An operator this version does not know: matches nothing.
    Never,
}

/// How a number clause compares the context's value with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A clause value that an operator cannot use, by index in `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadValue {
    pub index: usize,
    pub message: String,
}

impl Matcher {
    /// Compiles `values` for `op`; `segment` resolves a segment key for `in_segment`.
    pub(crate) fn compile(
        op: &Op,
        values: &[Value],
        segment: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Matcher, BadValue> {
        let bad = |index: usize, message: String| BadValue { index, message };
        let strings = || -> Result<Vec<Box<str>>, BadValue> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.as_str().into()),
                    _ => Err(bad(i, format!("`{}` needs string values", op.as_str()))),
                })
                .collect()
        };
        Ok(match op {
            Op::In => {
                let mut strings = Vec::new();
                let mut numbers = Vec::new();
                let mut bools = [false; 2];
                for (i, v) in values.iter().enumerate() {
                    match v {
                        Value::String(s) => {
                            strings.push(s.as_str());
                        }
                        Value::Number(n) => numbers.push(n.as_f64().unwrap_or(f64::NAN)),
                        Value::Bool(b) => bools[usize::from(*b)] = true,
                        _ => return Err(bad(i, "`in` needs strings, numbers or booleans".into())),
                    }
                }
                Matcher::In {
                    strings: strings.into_iter().collect(),
                    numbers,
                    bools,
                }
            }
            Op::StartsWith => Matcher::StartsWith(strings()?),
            Op::EndsWith => Matcher::EndsWith(strings()?),
            Op::Contains => Matcher::Contains(strings()?),
            Op::Matches => Matcher::Matches(
                strings()?
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Pattern::compile(p).map_err(|m| bad(i, m)))
                    .collect::<Result<_, _>>()?,
            ),
            Op::Lt | Op::Lte | Op::Gt | Op::Gte => Matcher::Number(
                match op {
                    Op::Lt => Cmp::Lt,
                    Op::Lte => Cmp::Lte,
                    Op::Gt => Cmp::Gt,
                    _ => Cmp::Gte,
                },
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_f64()
                            .ok_or_else(|| bad(i, format!("`{}` needs numbers", op.as_str())))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Op::Before | Op::After => Matcher::Instant(
                *op == Op::Before,
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        instant_millis(v).ok_or_else(|| {
                            bad(i, "needs an RFC 3339 date-time or Unix milliseconds".into())
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Op::SemverEq | Op::SemverLt | Op::SemverGt => Matcher::Semver(
                match op {
                    Op::SemverLt => Ordering::Less,
                    Op::SemverGt => Ordering::Greater,
                    _ => Ordering::Equal,
                },
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .and_then(parse_semver)
                            .ok_or_else(|| bad(i, "needs a SemVer 2.0 version".into()))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Op::InSegment => {
                Matcher::InSegment(strings()?.iter().map(|key| segment(key)).collect())
            }
            Op::Unknown(_) => Matcher::Never,
        })
    }

    /// Whether one scalar context value matches any of the clause's values.
    /// `InSegment` is decided by the evaluator and never matches here.
    pub(crate) fn matches(&self, value: Scalar<'_>) -> bool {
        match (self, value) {
            (
                Matcher::In {
                    strings,
                    numbers,
                    bools,
                },
                v,
            ) => match v {
                Scalar::Str(s) => strings.contains(s),
                Scalar::Num(n) => numbers.contains(&n),
                Scalar::Bool(b) => bools[usize::from(b)],
                Scalar::Other => false,
            },
            (Matcher::StartsWith(vs), Scalar::Str(s)) => vs.iter().any(|v| s.starts_with(&**v)),
            (Matcher::EndsWith(vs), Scalar::Str(s)) => vs.iter().any(|v| s.ends_with(&**v)),
            (Matcher::Contains(vs), Scalar::Str(s)) => contains(vs, s),
            (Matcher::Matches(res), Scalar::Str(s)) => regex_matches(res, s),
            (Matcher::Number(cmp, vs), Scalar::Num(n)) => vs.iter().any(|v| match cmp {
                Cmp::Lt => n < *v,
                Cmp::Lte => n <= *v,
                Cmp::Gt => n > *v,
                Cmp::Gte => n >= *v,
            }),
            (Matcher::Instant(before, vs), v) => instant_matches(*before, vs, v),
            (Matcher::Semver(want, vs), Scalar::Str(s)) => semver_matches(*want, vs, s),
            _ => false,
        }
    }
}

// The heavier operators live out of line, so that `Matcher::matches` stays small for the
// common `in` clause.

#[inline(never)]
fn contains(values: &[Box<str>], s: &str) -> bool {
    values.iter().any(|v| s.contains(&**v))
}

#[inline(never)]
fn regex_matches(patterns: &[Pattern], s: &str) -> bool {
    patterns.iter().any(|p| p.is_match(s))
}

#[inline(never)]
fn instant_matches(before: bool, values: &[i128], value: Scalar<'_>) -> bool {
    let Some(at) = scalar_millis(value) else {
        return false;
    };
    values
        .iter()
        .any(|v| if before { at < *v } else { at > *v })
}

/// Whether `s` has the ordering `want` against any of `values`. A plain `MAJOR.MINOR.PATCH`
/// (the usual app version) is compared without building a `Version`.
#[inline(never)]
fn semver_matches(want: Ordering, values: &[Version], s: &str) -> bool {
    if let Some(core) = parse_plain_core(s) {
        return values.iter().any(|v| plain_precedence(core, v) == want);
    }
    match parse_semver(s) {
        Some(version) => values.iter().any(|v| version.cmp_precedence(v) == want),
        None => false,
    }
}

/// SemVer precedence of the plain version `core` against `v`: the cores compare as numbers,
/// and on a tie a release ranks above any pre-release.
fn plain_precedence(core: [u64; 3], v: &Version) -> Ordering {
    let tie = if v.pre.is_empty() {
        Ordering::Equal
    } else {
        Ordering::Greater
    };
    core.cmp(&[v.major, v.minor, v.patch]).then(tie)
}

/// A context value as an operator sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Other,
}

impl<'a> From<&'a Value> for Scalar<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::String(s) => Scalar::Str(s),
            Value::Number(n) => n.as_f64().map_or(Scalar::Other, Scalar::Num),
            Value::Bool(b) => Scalar::Bool(*b),
            _ => Scalar::Other,
        }
    }
}

fn instant_millis(value: &Value) -> Option<i128> {
    scalar_millis(Scalar::from(value))
}

/// An instant: an RFC 3339 date-time string, or a number of Unix milliseconds.
fn scalar_millis(value: Scalar<'_>) -> Option<i128> {
    match value {
        // RFC 3339 separates date and time with `T` (or `t`); the parser takes any byte there.
        Scalar::Str(s) if matches!(s.as_bytes().get(10), Some(b'T' | b't')) => {
            OffsetDateTime::parse(s, &Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp_nanos() / 1_000_000)
        }
        Scalar::Num(n) if n.is_finite() => Some(n as i128),
        _ => None,
    }
}

/// SemVer 2.0, leniently: `1.2` reads as `1.2.0` and `1` as `1.0.0`.
pub(crate) fn parse_semver(s: &str) -> Option<Version> {
    if let Some(v) = parse_plain_version(s) {
        return Some(v);
    }
    if let Ok(v) = Version::parse(s) {
        return Some(v);
    }
    let core_end = s.find(['-', '+']).unwrap_or(s.len());
    let (core, suffix) = s.split_at(core_end);
    let mut numbers = [0u64; 3];
    let mut count = 0;
    for part in core.split('.') {
        if count == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        numbers[count] = part.parse().ok()?;
        count += 1;
    }
    if count == 3 {
        return None; // a full core that Version::parse refused is invalid
    }
    let mut version = Version::new(numbers[0], numbers[1], numbers[2]);
    let (pre, build) = match suffix.split_once('+') {
        Some((pre, build)) => (pre, Some(build)),
        None => (suffix, None),
    };
    if let Some(pre) = pre.strip_prefix('-') {
        version.pre = Prerelease::new(pre).ok()?;
    } else if !pre.is_empty() {
        return None;
    }
    if let Some(build) = build {
        version.build = BuildMetadata::new(build).ok()?;
    }
    Some(version)
}

/// The common case, `MAJOR.MINOR.PATCH` with no pre-release or build, parsed by hand: about
/// ten times faster than the general parser, which matters when a rule compares app versions.
fn parse_plain_version(s: &str) -> Option<Version> {
    parse_plain_core(s).map(|[major, minor, patch]| Version::new(major, minor, patch))
}

/// The numbers of a plain `MAJOR.MINOR.PATCH`, or `None` for anything else.
fn parse_plain_core(s: &str) -> Option<[u64; 3]> {
    let mut numbers = [0u64; 3];
    let mut part = 0;
    let mut digits = 0;
    for &b in s.as_bytes() {
        match b {
            b'0'..=b'9' => {
                if digits == 1 && numbers[part] == 0 {
                    return None; // a leading zero
                }
                numbers[part] = numbers[part]
                    .checked_mul(10)?
                    .checked_add(u64::from(b - b'0'))?;
                digits += 1;
            }
            b'.' if digits > 0 && part < 2 => {
                part += 1;
                digits = 0;
            }
            _ => return None,
        }
    }
    (part == 2 && digits > 0).then_some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(op: Op, values: Value) -> Matcher {
        let Value::Array(values) = values else {
            panic!("values must be an array")
        };
        Matcher::compile(&op, &values, &|_| Some(0)).unwrap()
    }

    fn hit(op: Op, values: Value, context_value: Value) -> bool {
        matcher(op, values).matches(Scalar::from(&context_value))
    }

    #[test]
    fn in_compares_same_json_type_only() {
        assert!(hit(Op::In, json!(["NL", "BE"]), json!("BE")));
        assert!(!hit(Op::In, json!(["NL"]), json!("nl")));
        assert!(hit(Op::In, json!([3, "x"]), json!(3)));
        assert!(!hit(Op::In, json!(["3"]), json!(3)));
        assert!(!hit(Op::In, json!([3]), json!("3")));
        assert!(hit(Op::In, json!([true]), json!(true)));
        assert!(!hit(Op::In, json!([true]), json!(false)));
        assert!(!hit(Op::In, json!(["true"]), json!(true)));
    }

    #[test]
    fn string_operators() {
        assert!(hit(Op::StartsWith, json!(["x", "ab"]), json!("abc")));
        assert!(!hit(Op::StartsWith, json!(["bc"]), json!("abc")));
        assert!(hit(Op::EndsWith, json!(["bc"]), json!("abc")));
        assert!(!hit(Op::EndsWith, json!(["ab"]), json!("abc")));
        assert!(hit(Op::Contains, json!(["b"]), json!("abc")));
        assert!(!hit(Op::Contains, json!(["d"]), json!("abc")));
        assert!(
            !hit(Op::Contains, json!(["1"]), json!(1)),
            "wrong type never matches"
        );
    }

    #[test]
    fn matches_is_unanchored_rust_regex() {
        assert!(hit(
            Op::Matches,
            json!(["@example\\.com$"]),
            json!("a@example.com")
        ));
        assert!(hit(Op::Matches, json!(["b"]), json!("abc")));
        assert!(!hit(Op::Matches, json!(["^b"]), json!("abc")));
        assert!(!hit(Op::Matches, json!(["1"]), json!(1)));
    }

    #[test]
    fn bad_regex_and_huge_regex_are_rejected_with_the_value_index() {
        let err =
            Matcher::compile(&Op::Matches, &[json!("ok"), json!("(")], &|_| None).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.message.contains("invalid regex"), "{}", err.message);
        let huge = json!("\\w{1000}\\w{1000}\\w{1000}");
        let err = Matcher::compile(&Op::Matches, &[huge], &|_| None).unwrap_err();
        assert!(err.message.contains("too large"), "{}", err.message);
    }

    #[test]
    fn number_operators() {
        assert!(hit(Op::Lt, json!([10]), json!(9.5)));
        assert!(!hit(Op::Lt, json!([10]), json!(10)));
        assert!(hit(Op::Lte, json!([10]), json!(10)));
        assert!(hit(Op::Gt, json!([10]), json!(11)));
        assert!(!hit(Op::Gt, json!([10]), json!(10)));
        assert!(hit(Op::Gte, json!([10]), json!(10)));
        assert!(
            !hit(Op::Gte, json!([10]), json!("11")),
            "strings are not numbers"
        );
        assert!(Matcher::compile(&Op::Lt, &[json!("10")], &|_| None).is_err());
    }

    #[test]
    fn date_operators_take_rfc3339_or_unix_millis() {
        let at = json!(["2026-01-01T00:00:00Z"]);
        assert!(hit(
            Op::Before,
            at.clone(),
            json!("2025-12-31T23:59:59+00:00")
        ));
        assert!(!hit(Op::Before, at.clone(), json!("2026-01-01T00:00:00Z")));
        assert!(hit(
            Op::After,
            at.clone(),
            json!("2026-01-01T01:00:00+00:30")
        ));
        assert!(hit(Op::Before, at.clone(), json!(1_767_225_599_999_i64)));
        assert!(!hit(Op::Before, at.clone(), json!(1_767_225_600_000_i64)));
        assert!(hit(
            Op::After,
            json!([0]),
            json!("1970-01-01T00:00:00.001Z")
        ));
        assert!(!hit(Op::After, at, json!("not a date")));
        assert!(Matcher::compile(&Op::Before, &[json!("yesterday")], &|_| None).is_err());
    }

    #[test]
    fn dates_separate_date_and_time_with_t_only() {
        let at = json!(["2026-01-01T00:00:00Z"]);
        assert!(hit(Op::Before, at.clone(), json!("2025-12-31t23:00:00z")));
        for bad in [
            "2025-12-31_00:00:00Z",
            "2025-12-31 00:00:00Z",
            "2025-12-31x00:00:00Z",
        ] {
            assert!(!hit(Op::Before, at.clone(), json!(bad)), "context {bad}");
            assert!(!hit(Op::After, json!([0]), json!(bad)), "context {bad}");
            let err = Matcher::compile(&Op::Before, &[json!(bad)], &|_| None).unwrap_err();
            assert!(
                err.message.contains("RFC 3339"),
                "clause {bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn semver_operators_use_precedence_and_pad_short_versions() {
        assert!(hit(Op::SemverEq, json!(["1.2.0"]), json!("1.2")));
        assert!(hit(Op::SemverEq, json!(["1.2.0"]), json!("1.2.0+build.5")));
        assert!(hit(Op::SemverLt, json!(["1.2.0"]), json!("1.2.0-rc.1")));
        assert!(hit(Op::SemverGt, json!(["1.2"]), json!("1.10.0")));
        assert!(!hit(Op::SemverGt, json!(["1.2.0"]), json!("1.2.0")));
        assert!(hit(Op::SemverLt, json!(["2"]), json!("1.99.99")));
        assert!(!hit(Op::SemverEq, json!(["1.2.0"]), json!("v1.2.0")));
        assert!(!hit(Op::SemverEq, json!(["1.2.0"]), json!(1.2)));
        assert_eq!(parse_semver("1.2-beta"), Version::parse("1.2.0-beta").ok());
        assert_eq!(parse_semver("01.2"), None);
        assert_eq!(parse_semver("1.2.3.4"), None);
        assert_eq!(parse_semver("1.02.3"), None);
        assert_eq!(parse_semver("1..3"), None);
        assert_eq!(parse_semver("10.20.30"), Some(Version::new(10, 20, 30)));
        assert_eq!(parse_semver("0.0.0"), Some(Version::new(0, 0, 0)));
        assert_eq!(parse_semver("99999999999999999999.0.0"), None);
    }

    #[test]
    fn plain_versions_compare_as_semver_precedence_says() {
        let versions = [
            "1.2.3",
            "1.2.3-rc.1",
            "1.2.3+b",
            "1.2.4-0",
            "0.9.9",
            "2.0.0-a",
            "1.2",
        ];
        for plain in ["1.2.3", "1.2.4", "1.2.2", "0.0.0", "2.0.0", "1.10.0"] {
            let core = parse_plain_core(plain).unwrap();
            let version = parse_semver(plain).unwrap();
            for v in versions.map(|v| parse_semver(v).unwrap()) {
                assert_eq!(
                    plain_precedence(core, &v),
                    version.cmp_precedence(&v),
                    "{plain} vs {v}"
                );
            }
        }
    }
}
