//! A `matches` clause's pattern, compiled once.
//!
//! Most patterns in targeting rules are a few literal strings with anchors: an email domain
//! (`@(example|corp)\.com$`), a prefix (`^beta-`), a list of names. The regex engine answers
//! those in a few hundred instructions; comparing the literals takes a few dozen. So a pattern
//! whose whole language is a small set of literals, anchored at the start, the end, both or
//! neither, is matched as that set; every other pattern goes to the regex engine. Both answer
//! exactly what the regex would (contract section 2: Rust `regex` syntax, unanchored).

use regex::{Regex, RegexBuilder};
use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Hir, HirKind, Look};

/// The largest compiled regex a `matches` clause may have, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// More literals than this and the regex engine's own literal search is as fast.
const MAX_LITERALS: usize = 8;

/// A compiled `matches` pattern.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// The pattern matches exactly the strings that hold one of `literals` where `anchor`
    /// says.
    Literals {
        anchor: Anchor,
        literals: Box<[Box<str>]>,
    },
    Regex(Regex),
}

/// Where a literal must sit in the matched string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// Anywhere (no `^`, no `$`).
    Anywhere,
    /// At the start (`^...`).
    Start,
    /// At the end (`...$`).
    End,
    /// The whole string (`^...$`).
    Whole,
}

impl Pattern {
    /// Compiles `pattern`; the error says why it is not a usable regex.
    pub(crate) fn compile(pattern: &str) -> Result<Pattern, String> {
        match literal_form(pattern) {
            Some((anchor, literals)) => Ok(Pattern::Literals { anchor, literals }),
            None => compile_regex(pattern).map(Pattern::Regex),
        }
    }

    #[inline]
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Literals { anchor, literals } => literals.iter().any(|l| match anchor {
                Anchor::Anywhere => s.contains(&**l),
                Anchor::Start => s.starts_with(&**l),
                Anchor::End => s.ends_with(&**l),
                Anchor::Whole => s == &**l,
            }),
            Pattern::Regex(re) => re.is_match(s),
        }
    }
}

/// Compiles `pattern` with the regex engine and the size limit.
fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                format!("regex is too large (limit {REGEX_SIZE_LIMIT} bytes compiled)")
            }
            other => format!("invalid regex: {other}"),
        })
}

/// The anchor and the literals of a pattern that is nothing but a small set of literals with
/// an optional `^` in front and `$` behind; `None` for any other pattern (or an invalid one,
/// which the regex engine then reports).
fn literal_form(pattern: &str) -> Option<(Anchor, Box<[Box<str>]>)> {
    // The regex crate's own defaults: the same syntax, Unicode and nesting limit.
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(250)
        .build()
        .parse(pattern)
        .ok()?;
    let parts: &[Hir] = match hir.kind() {
        HirKind::Concat(parts) => parts,
        _ => std::slice::from_ref(&hir),
    };
    let (start, parts) = match parts.split_first() {
        Some((first, rest)) if *first.kind() == HirKind::Look(Look::Start) => (true, rest),
        _ => (false, parts),
    };
    let (end, parts) = match parts.split_last() {
        Some((last, rest)) if *last.kind() == HirKind::Look(Look::End) => (true, rest),
        _ => (false, parts),
    };
    let middle = Hir::concat(parts.to_vec());
    // The extractor reads a look-around as the empty string: only a middle without any is a
    // literal set.
    if !middle.properties().look_set().is_empty() {
        return None;
    }
    let seq = Extractor::new().extract(&middle);
    if !seq.is_exact() {
        return None;
    }
    let literals = seq.literals()?;
    if literals.len() > MAX_LITERALS {
        return None;
    }
    let literals = literals
        .iter()
        .map(|l| std::str::from_utf8(l.as_bytes()).ok().map(Box::from))
        .collect::<Option<Box<[Box<str>]>>>()?;
    let anchor = match (start, end) {
        (false, false) => Anchor::Anywhere,
        (true, false) => Anchor::Start,
        (false, true) => Anchor::End,
        (true, true) => Anchor::Whole,
    };
    Some((anchor, literals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(pattern: &str) -> Option<(Anchor, Vec<String>)> {
        match Pattern::compile(pattern).unwrap() {
            Pattern::Literals { anchor, literals } => {
                Some((anchor, literals.iter().map(|l| l.to_string()).collect()))
            }
            Pattern::Regex(_) => None,
        }
    }

    #[test]
    fn literal_sets_are_recognised_with_their_anchor() {
        let set = |a, ls: &[&str]| Some((a, ls.iter().map(|l| l.to_string()).collect()));
        assert_eq!(
            literals(r"@(example|corp)\.com$"),
            set(Anchor::End, &["@example.com", "@corp.com"])
        );
        assert_eq!(literals("^beta-"), set(Anchor::Start, &["beta-"]));
        assert_eq!(literals("^(NL|BE)$"), set(Anchor::Whole, &["NL", "BE"]));
        assert_eq!(literals("ann"), set(Anchor::Anywhere, &["ann"]));
        // Not literal sets: classes, repetition, looks inside, multi-line anchors.
        for pattern in [
            r"^\d+$", "a+b", r"\bann\b", "(?m)^a$", "a^b", "a$b", "[a-z]x", ".*",
        ] {
            assert_eq!(literals(pattern), None, "{pattern}");
        }
    }

    /// The literal form answers what the regex engine answers, for every pattern and string.
    #[test]
    fn literal_form_agrees_with_the_regex_engine() {
        let patterns = [
            r"@(example|corp)\.com$",
            "^beta-",
            "^(NL|BE)$",
            "ann",
            "(?i)^Ann$",
            "^$",
            "",
            "a|",
            "^(a|ab)$",
            "é$",
            r"^\.$",
            "^a(b|c)d",
        ];
        let haystacks = [
            "",
            "ann@example.com",
            "ann@example.com.evil",
            "bob@corp.com",
            "beta-1",
            "a beta-1",
            "NL",
            "NLX",
            "xBE",
            "Ann",
            "ANN",
            "aNn",
            "a",
            "ab",
            "abd",
            "acd",
            "café",
            ".",
            "x",
        ];
        for pattern in patterns {
            let ours = Pattern::compile(pattern).unwrap();
            let regex = Regex::new(pattern).unwrap();
            for s in haystacks {
                assert_eq!(ours.is_match(s), regex.is_match(s), "{pattern:?} on {s:?}");
            }
        }
    }

    /// The same on generated patterns: literals, alternations, classes, repetition and
    /// anchors over a small alphabet (with a multi-byte letter and case folding), each
    /// matched against every string of up to three letters of that alphabet.
    #[test]
    fn generated_patterns_agree_with_the_regex_engine() {
        const PIECES: [&str; 12] = [
            "a", "b", "é", "ab", r"\.", "(a|b)", "(ab|é)", "[ab]", "a?", "(?i)a", "", "(a|)",
        ];
        let letters = ["a", "b", "é", ".", "A"];
        let mut haystacks = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = haystacks
                .iter()
                .flat_map(|h| letters.iter().map(move |l| format!("{h}{l}")))
                .collect();
            haystacks.extend(longer);
        }
        haystacks.sort();
        haystacks.dedup();
        // A fixed-seed linear congruential generator: the same patterns on every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as usize % n
        };
        let mut literal_forms = 0;
        for _ in 0..400 {
            let mut pattern = String::new();
            if next(2) == 0 {
                pattern.push('^');
            }
            for _ in 0..1 + next(3) {
                pattern.push_str(PIECES[next(PIECES.len())]);
            }
            if next(2) == 0 {
                pattern.push('$');
            }
            let ours = Pattern::compile(&pattern).unwrap();
            literal_forms += usize::from(matches!(ours, Pattern::Literals { .. }));
            let regex = Regex::new(&pattern).unwrap();
            for s in &haystacks {
                assert_eq!(ours.is_match(s), regex.is_match(s), "{pattern:?} on {s:?}");
            }
        }
        // Most generated patterns take the literal form, so the comparison tests it.
        assert!(
            literal_forms > 200,
            "{literal_forms} of 400 in the literal form"
        );
    }

    #[test]
    fn bad_and_huge_patterns_are_refused_by_the_regex_engine() {
        assert!(Pattern::compile("(")
            .unwrap_err()
            .starts_with("invalid regex:"));
        assert!(Pattern::compile(r"\w{1000}")
            .unwrap_err()
            .starts_with("regex is too large"));
    }
}
