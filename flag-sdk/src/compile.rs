//! Snapshot -> compiled form, done once per update: variation keys become indexes, targets
//! become hash sets, clause values become matchers (regexes, semvers, instants), prerequisites
//! and segments become indexes. Evaluation then parses and allocates nothing.
//!
//! Compilation never fails as a whole: a flag that cannot be compiled (a snapshot that skipped
//! validation) is kept as malformed and evaluates to `ERROR` / `MALFORMED_FLAG`.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::bucket::Salt;
use crate::keys::{KeyMap, KeySet, Name};
use crate::model::{Clause, Flag, FlagKind, Serve, Snapshot, Variation, TOTAL_WEIGHT};
use crate::operators::Matcher;

/// A snapshot in ready-to-evaluate form. Build it with [`CompiledSnapshot::new`] and share it
/// behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct CompiledSnapshot {
    pub(crate) source: Arc<Snapshot>,
    pub(crate) flags: Vec<CompiledFlag>,
    pub(crate) index: KeyMap<usize>,
    pub(crate) segments: Vec<CompiledSegment>,
}

#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub key: Box<str>,
    pub kind: FlagKind,
    pub variations: Vec<Variation>,
    pub enabled: bool,
    pub off: usize,
    pub prerequisites: Vec<CompiledPrerequisite>,
    pub targets: KeyMap<usize>,
    pub rules: Vec<CompiledRule>,
    pub fallthrough: CompiledServe,
    /// Why the flag cannot be evaluated; `None` for a sound flag.
    pub malformed: Option<String>,
}

#[derive(Debug)]
pub(crate) struct CompiledPrerequisite {
    pub key: Box<str>,
    pub flag: Option<usize>,
    /// The index of the required variation in the prerequisite flag.
    pub variation: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub id: Option<Box<str>>,
    pub clauses: Vec<CompiledClause>,
    pub serve: CompiledServe,
}

#[derive(Debug)]
pub(crate) struct CompiledClause {
    pub attribute: Name,
    pub negate: bool,
    pub matcher: Matcher,
}

#[derive(Debug)]
pub(crate) enum CompiledServe {
    Variation(usize),
    Rollout {
        bucket_by: Name,
        salt: Salt,
        /// (running sum of weights, variation index), zero weights left out.
        buckets: Vec<(u32, usize)>,
    },
}

#[derive(Debug)]
pub(crate) struct CompiledSegment {
    pub included: KeySet,
    pub excluded: KeySet,
    pub rules: Vec<Vec<CompiledClause>>,
}

impl CompiledSnapshot {
    /// Compiles a snapshot. Flags that cannot be compiled evaluate to `MALFORMED_FLAG`.
    pub fn new(snapshot: impl Into<Arc<Snapshot>>) -> Self {
        let source: Arc<Snapshot> = snapshot.into();
        let segment_index: FxHashMap<&str, usize> = source
            .segments
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let find_segment = |key: &str| segment_index.get(key).copied();
        let segments = source
            .segments
            .values()
            .map(|segment| CompiledSegment {
                included: segment.included.iter().map(String::as_str).collect(),
                excluded: segment.excluded.iter().map(String::as_str).collect(),
                rules: segment
                    .rules
                    .iter()
                    .map(|rule| compile_clauses(&rule.clauses, &find_segment).unwrap_or_default())
                    .collect(),
            })
            .collect();
        let index = KeyMap::new(
            source
                .flags
                .keys()
                .enumerate()
                .map(|(i, k)| (k.as_str(), i)),
        );
        let mut flags: Vec<CompiledFlag> = source
            .flags
            .values()
            .map(|flag| {
                compile_flag(flag, &source, &index, &find_segment)
                    .unwrap_or_else(|why| malformed(flag, why))
            })
            .collect();
        mark_prerequisite_cycles(&mut flags);
        CompiledSnapshot {
            source,
            flags,
            index,
            segments,
        }
    }

    /// The snapshot this was compiled from.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.source
    }

    /// The environment's key.
    pub fn environment(&self) -> &str {
        &self.source.environment
    }

    /// The environment's revision.
    pub fn revision(&self) -> u64 {
        self.source.revision
    }

    /// Keys of the flags that serve some context through a rollout (a release is one): the
    /// flags whose variations `track_error` attributes errors to.
    pub fn rollout_flags(&self) -> impl Iterator<Item = &str> {
        self.flags
            .iter()
            .filter(|f| {
                f.malformed.is_none()
                    && std::iter::once(&f.fallthrough)
                        .chain(f.rules.iter().map(|r| &r.serve))
                        .any(|s| matches!(s, CompiledServe::Rollout { .. }))
            })
            .map(|f| &*f.key)
    }

    /// Whether the snapshot holds a flag.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains(key)
    }
}

impl Default for CompiledSnapshot {
    fn default() -> Self {
        CompiledSnapshot::new(Snapshot::default())
    }
}

fn malformed(flag: &Flag, why: String) -> CompiledFlag {
    CompiledFlag {
        key: flag.key.as_str().into(),
        kind: flag.kind,
        variations: Vec::new(),
        enabled: false,
        off: 0,
        prerequisites: Vec::new(),
        targets: KeyMap::default(),
        rules: Vec::new(),
        fallthrough: CompiledServe::Variation(0),
        malformed: Some(why),
    }
}

fn compile_flag(
    flag: &Flag,
    snapshot: &Snapshot,
    index: &KeyMap<usize>,
    find_segment: &dyn Fn(&str) -> Option<usize>,
) -> Result<CompiledFlag, String> {
    let variation = |key: &str| -> Result<usize, String> {
        flag.variations
            .iter()
            .position(|v| v.key == key)
            .ok_or_else(|| format!("unknown variation `{key}`"))
    };
    if let Some(v) = flag.variations.iter().find(|v| !flag.kind.admits(&v.value)) {
        return Err(format!(
            "variation `{}` is not a {}",
            v.key,
            flag.kind.as_str()
        ));
    }
    let mut targets = Vec::new();
    for target in &flag.targets {
        let v = variation(&target.variation)?;
        targets.extend(target.keys.iter().map(|key| (key.as_str(), v)));
    }
    // The first target list that names a key wins.
    let targets = KeyMap::new(targets);
    let prerequisites = flag
        .prerequisites
        .iter()
        .map(|p| CompiledPrerequisite {
            key: p.flag.as_str().into(),
            flag: index.get(&p.flag).copied(),
            variation: snapshot
                .flags
                .get(&p.flag)
                .and_then(|f| f.variations.iter().position(|v| v.key == p.variation)),
        })
        .collect();
    let compile_serve = |serve: &Serve| -> Result<CompiledServe, String> {
        Ok(match serve {
            Serve::Variation(key) => CompiledServe::Variation(variation(key)?),
            Serve::Rollout(rollout) => {
                let mut sum = 0u32;
                let mut buckets = Vec::with_capacity(rollout.weights.len());
                for w in &rollout.weights {
                    let v = variation(&w.variation)?;
                    sum = sum.saturating_add(w.weight);
                    if w.weight > 0 {
                        buckets.push((sum, v));
                    }
                }
                if sum != TOTAL_WEIGHT {
                    return Err(format!("rollout weights sum to {sum}, not {TOTAL_WEIGHT}"));
                }
                CompiledServe::Rollout {
                    bucket_by: Name::new(&rollout.bucket_by),
                    salt: Salt::new(rollout.salt.as_deref().unwrap_or(&flag.key)),
                    buckets,
                }
            }
        })
    };
    let rules = flag
        .rules
        .iter()
        .map(|rule| {
            Ok(CompiledRule {
                id: rule.id.as_deref().map(Into::into),
                clauses: compile_clauses(&rule.clauses, find_segment)?,
                serve: compile_serve(&rule.serve)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(CompiledFlag {
        key: flag.key.as_str().into(),
        kind: flag.kind,
        variations: flag.variations.clone(),
        enabled: flag.enabled,
        off: variation(&flag.off_variation)?,
        prerequisites,
        targets,
        rules,
        fallthrough: compile_serve(&flag.fallthrough)?,
        malformed: None,
    })
}

fn compile_clauses(
    clauses: &[Clause],
    find_segment: &dyn Fn(&str) -> Option<usize>,
) -> Result<Vec<CompiledClause>, String> {
    clauses
        .iter()
        .map(|c| {
            Ok(CompiledClause {
                attribute: Name::new(&c.attribute),
                negate: c.negate,
                matcher: Matcher::compile(c.op, &c.values, find_segment)
                    .map_err(|bad| bad.message)?,
            })
        })
        .collect()
}

/// Marks every flag on a prerequisite cycle as malformed, so evaluation of a snapshot that
/// skipped validation still terminates and says why.
fn mark_prerequisite_cycles(flags: &mut [CompiledFlag]) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        flags: &[CompiledFlag],
        marks: &mut [Mark],
        on_cycle: &mut Vec<usize>,
        path: &mut Vec<usize>,
    ) {
        marks[i] = Mark::Open;
        path.push(i);
        for p in &flags[i].prerequisites {
            let Some(j) = p.flag else { continue };
            match marks[j] {
                Mark::New => visit(j, flags, marks, on_cycle, path),
                Mark::Open => {
                    let start = path.iter().position(|&k| k == j).unwrap_or(0);
                    on_cycle.extend_from_slice(&path[start..]);
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
    }
    let mut marks = vec![Mark::New; flags.len()];
    let mut on_cycle = Vec::new();
    for i in 0..flags.len() {
        if marks[i] == Mark::New {
            visit(i, flags, &mut marks, &mut on_cycle, &mut Vec::new());
        }
    }
    for i in on_cycle {
        flags[i].malformed = Some("prerequisite cycle".to_owned());
    }
}
