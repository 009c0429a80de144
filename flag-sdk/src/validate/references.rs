//! What a flag or a segment names: prerequisites and segments that must exist, and the chains
//! they form. A chain must not close into a cycle, and must not be deeper than evaluation
//! goes ([`MAX_DEPTH`]): a write is refused when any chain through the written flag or
//! segment would be, whether it grows below it or above it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Report;
use crate::eval::MAX_DEPTH;
use crate::model::{Clause, Flag, Op, Segment, Snapshot};

/// The flags a flag names as prerequisites, or the segments a segment names, with the edges
/// also kept the other way round. Built once per validation.
pub(super) struct Graph<'a> {
    children: BTreeMap<&'a str, Vec<&'a str>>,
    parents: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    fn new(nodes: impl Iterator<Item = (&'a str, Vec<&'a str>)>) -> Self {
        let children: BTreeMap<&str, Vec<&str>> = nodes.collect();
        let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (&key, named) in &children {
            for &child in named {
                parents.entry(child).or_default().push(key);
            }
        }
        Graph { children, parents }
    }

    /// The prerequisite graph of `snapshot`, with `flag` replacing its namesake.
    pub(super) fn prerequisites(snapshot: &'a Snapshot, flag: Option<&'a Flag>) -> Self {
        let others = snapshot
            .flags
            .values()
            .filter(|f| Some(&f.key) != flag.map(|f| &f.key));
        Graph::new(others.chain(flag).map(|f| {
            let named = f.prerequisites.iter().map(|p| p.flag.as_str()).collect();
            (f.key.as_str(), named)
        }))
    }

    /// The segment graph of `snapshot`, with `segment` replacing its namesake.
    pub(super) fn segments(snapshot: &'a Snapshot, segment: Option<&'a Segment>) -> Self {
        let others = snapshot
            .segments
            .values()
            .filter(|s| Some(&s.key) != segment.map(|s| &s.key));
        Graph::new(others.chain(segment).map(|s| {
            let named = s
                .rules
                .iter()
                .flat_map(|rule| segment_refs("", &rule.clauses));
            (s.key.as_str(), named.map(|(_, key)| key).collect())
        }))
    }

    fn contains(&self, key: &str) -> bool {
        self.children.contains_key(key)
    }
}

/// Where the chains from `start` go: the number of nodes on the longest (`start` included;
/// counting stops past `MAX_DEPTH + 1`) and whether one comes to `target`.
fn walk(edges: &BTreeMap<&str, Vec<&str>>, start: &str, target: Option<&str>) -> (usize, bool) {
    let cap = MAX_DEPTH + 1;
    let mut depth_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut stack = vec![(start, 1usize)];
    let mut longest = 0;
    while let Some((key, depth)) = stack.pop() {
        if Some(key) == target {
            return (longest.max(depth), true);
        }
        longest = longest.max(depth);
        if depth > cap || depth_of.get(key).is_some_and(|&d| d >= depth) {
            continue;
        }
        depth_of.insert(key, depth);
        for &next in edges.get(key).map(Vec::as_slice).unwrap_or_default() {
            stack.push((next, depth + 1));
        }
    }
    (longest, false)
}

/// Segment keys named by `in_segment` clauses, with the path of each value.
fn segment_refs<'a>(at: &str, clauses: &'a [Clause]) -> Vec<(String, &'a str)> {
    let mut refs = Vec::new();
    for (i, clause) in clauses.iter().enumerate() {
        if clause.op == Op::InSegment {
            for (j, v) in clause.values.iter().enumerate() {
                if let Value::String(key) = v {
                    refs.push((format!("{at}clauses[{i}].values[{j}]"), key.as_str()));
                }
            }
        }
    }
    refs
}

pub(super) fn check_flag_references(
    r: &mut Report,
    at: &str,
    flag: &Flag,
    snapshot: &Snapshot,
    prerequisites: &Graph<'_>,
    segments: &Graph<'_>,
) {
    for (i, p) in flag.prerequisites.iter().enumerate() {
        let field = format!("{at}prerequisites[{i}]");
        match snapshot.flags.get(&p.flag) {
            None if p.flag != flag.key => r.push(
                format!("{field}.flag"),
                format!("unknown flag `{}`", p.flag),
            ),
            None => {}
            Some(pre) => {
                if !pre.variations.iter().any(|v| v.key == p.variation) {
                    r.push(
                        format!("{field}.variation"),
                        format!("flag `{}` has no variation `{}`", p.flag, p.variation),
                    );
                }
                let (below, cycle) = walk(&prerequisites.children, &p.flag, Some(&flag.key));
                let (above, _) = walk(&prerequisites.parents, &flag.key, None);
                if cycle {
                    r.push(
                        format!("{field}.flag"),
                        format!(
                            "`{}` leads back to `{}`: prerequisites must not form a cycle",
                            p.flag, flag.key
                        ),
                    );
                } else if above + below > MAX_DEPTH + 1 {
                    r.push(
                        format!("{field}.flag"),
                        format!(
                            "this makes a prerequisite chain {} deep; chains may be at most \
                             {MAX_DEPTH} deep (deeper ones evaluate to MALFORMED_FLAG)",
                            above + below - 1
                        ),
                    );
                }
            }
        }
    }
    for (i, rule) in flag.rules.iter().enumerate() {
        for (field, key) in segment_refs(&format!("{at}rules[{i}]."), &rule.clauses) {
            if !segments.contains(key) {
                r.push(field, format!("unknown segment `{key}`"));
                continue;
            }
            let (below, _) = walk(&segments.children, key, None);
            if below > MAX_DEPTH {
                r.push(field, too_many_segments(key, below));
            }
        }
    }
}

pub(super) fn check_segment_references(
    r: &mut Report,
    at: &str,
    segment: &Segment,
    segments: &Graph<'_>,
) {
    for (i, rule) in segment.rules.iter().enumerate() {
        for (field, key) in segment_refs(&format!("{at}rules[{i}]."), &rule.clauses) {
            if !segments.contains(key) {
                r.push(field, format!("unknown segment `{key}`"));
                continue;
            }
            let (below, cycle) = walk(&segments.children, key, Some(&segment.key));
            let (above, _) = walk(&segments.parents, &segment.key, None);
            if cycle {
                r.push(
                    field,
                    format!(
                        "segment `{key}` leads back to `{}`: segments must not form a cycle",
                        segment.key
                    ),
                );
            } else if above + below > MAX_DEPTH {
                r.push(field, too_many_segments(&segment.key, above + below));
            }
        }
    }
}

fn too_many_segments(key: &str, n: usize) -> String {
    format!(
        "`{key}` is on a chain of {n} nested segments; chains may have at most {MAX_DEPTH} \
         (flags using a longer one evaluate to MALFORMED_FLAG)"
    )
}
