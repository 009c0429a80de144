//! Segments in compiled form, and which of them cannot be decided.
//!
//! A segment whose membership this version cannot decide (a rule that does not compile, an
//! operator it does not know, a cycle, a chain of segments deeper than
//! [`MAX_DEPTH`](crate::MAX_DEPTH), or a segment it names that is itself undecidable) must
//! not answer "not a member": behind a negated `in_segment` clause that would serve the
//! rule to everyone. Flags that use such a segment are compiled as malformed instead.

use crate::compile::chains::{longest_chains, mark_ancestors};
use crate::compile::{compile_clauses, CompiledClause};
use crate::eval::MAX_DEPTH;
use crate::keys::KeySet;
use crate::model::{Op, Snapshot};
use crate::operators::Matcher;

#[derive(Debug)]
pub(crate) struct CompiledSegment {
    pub included: KeySet,
    pub excluded: KeySet,
    pub rules: Vec<Vec<CompiledClause>>,
}

/// The snapshot's segments, in key order, each with why it cannot be decided (`None` for a
/// sound one).
pub(super) fn compile_segments(
    snapshot: &Snapshot,
    find_segment: &dyn Fn(&str) -> Option<usize>,
) -> (Vec<CompiledSegment>, Vec<Option<String>>) {
    let mut problems = Vec::with_capacity(snapshot.segments.len());
    let segments: Vec<CompiledSegment> = snapshot
        .segments
        .values()
        .map(|segment| {
            let mut problem = None;
            let rules = segment
                .rules
                .iter()
                .map(|rule| {
                    if let Some(c) = rule.clauses.iter().find(|c| matches!(c.op, Op::Unknown(_))) {
                        problem.get_or_insert(format!("unknown operator `{}`", c.op.as_str()));
                    }
                    compile_clauses(&rule.clauses, find_segment).unwrap_or_else(|why| {
                        problem.get_or_insert(why);
                        Vec::new()
                    })
                })
                .collect();
            problems.push(problem);
            CompiledSegment {
                included: segment.included.iter().map(String::as_str).collect(),
                excluded: segment.excluded.iter().map(String::as_str).collect(),
                rules,
            }
        })
        .collect();

    let children: Vec<Vec<usize>> = segments
        .iter()
        .map(|s| s.rules.iter().flatten().flat_map(named_segments).collect())
        .collect();
    for (problem, longest) in problems.iter_mut().zip(longest_chains(&children)) {
        match longest {
            None => {
                problem.get_or_insert_with(|| "segments form a cycle".to_owned());
            }
            Some(n) if n > MAX_DEPTH => {
                problem.get_or_insert_with(|| {
                    format!("segment chain {n} deep; at most {MAX_DEPTH} is evaluated")
                });
            }
            Some(_) => {}
        }
    }
    let mut undecided: Vec<bool> = problems.iter().map(Option::is_some).collect();
    mark_ancestors(&children, &mut undecided);
    for (problem, undecided) in problems.iter_mut().zip(undecided) {
        if undecided {
            problem.get_or_insert_with(|| "a segment it names cannot be decided".to_owned());
        }
    }
    (segments, problems)
}

/// The indexes of the segments an `in_segment` clause names (those the snapshot holds).
pub(super) fn named_segments(clause: &CompiledClause) -> impl Iterator<Item = usize> + '_ {
    let named = match &clause.matcher {
        Matcher::InSegment(segments) => segments.as_slice(),
        _ => &[],
    };
    named.iter().flatten().copied()
}
