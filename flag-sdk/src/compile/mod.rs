//! Snapshot -> compiled form, done once per update: variation keys become indexes, targets
//! become hash sets, clause values become matchers (regexes, semvers, instants), prerequisites
//! and segments become indexes. Evaluation then parses and allocates nothing.
//!
//! Compilation never fails as a whole: a flag that cannot be compiled (a snapshot that skipped
//! validation, or one from a newer server) is kept as malformed and evaluates to `ERROR` /
//! `MALFORMED_FLAG`. So is a flag on a prerequisite cycle, one whose prerequisite chain is
//! deeper than [`MAX_DEPTH`], and one that uses a segment that cannot be decided. A clause
//! with an operator this version does not know never matches, negated or not.

mod chains;
mod segments;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::bucket::Salt;
use crate::eval::{Why, MAX_DEPTH};
use crate::keys::{KeyMap, Name};
use crate::model::{Clause, Flag, FlagKind, Op, Serve, Snapshot, Variation, TOTAL_WEIGHT};
use crate::operators::Matcher;
pub(crate) use segments::CompiledSegment;

/// A snapshot in ready-to-evaluate form. Build it with [`CompiledSnapshot::new`] and share it
/// behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct CompiledSnapshot {
    pub(crate) source: Arc<Snapshot>,
    pub(crate) flags: Vec<CompiledFlag>,
    pub(crate) index: KeyMap<Slot>,
    pub(crate) segments: Vec<CompiledSegment>,
    /// Indexes of the flags that may serve through a rollout (what `track_error` and
    /// `track_value` attribute to), found once here rather than on every call.
    pub(crate) rollouts: Vec<usize>,
}

/// What the flag table holds for a key: the flag's index, its kind, and its answer when no
/// context can change it (the kill switch, a flag serving one variation to everyone), so
/// those are answered from the probe alone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub index: usize,
    pub kind: Kind,
    /// (variation index, why) for every context; `None` when evaluation must run.
    pub constant: Option<(usize, Why)>,
    /// The constant answer's value when it is a boolean: `bool_variation` of a kill switch
    /// or of a flag on for everyone reads nothing but the slot.
    pub constant_bool: Option<bool>,
}

impl CompiledFlag {
    /// The answer for every context, when it does not depend on the context.
    fn constant(&self) -> Option<(usize, Why)> {
        if self.malformed.is_some() || self.off >= self.variations.len() {
            return None;
        }
        if !self.enabled {
            return Some((self.off, Why::Off));
        }
        match self.fallthrough {
            CompiledServe::Variation(v)
                if self.prerequisites.is_empty()
                    && self.targets.is_empty()
                    && self.rules.is_empty()
                    && v < self.variations.len() =>
            {
                Some((v, Why::Fallthrough { in_rollout: false }))
            }
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct CompiledFlag {
    pub key: Box<str>,
    pub kind: Kind,
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

/// A flag's kind as evaluation compares it on every typed read: one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Boolean,
    String,
    Number,
    Json,
    Unknown,
}

impl Kind {
    pub(crate) fn of(kind: &FlagKind) -> Kind {
        match kind {
            FlagKind::Boolean => Kind::Boolean,
            FlagKind::String => Kind::String,
            FlagKind::Number => Kind::Number,
            FlagKind::Json => Kind::Json,
            FlagKind::Unknown(_) => Kind::Unknown,
        }
    }
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
        let (segments, undecided) = segments::compile_segments(&source, &find_segment);
        let segment_keys: Vec<&str> = source.segments.keys().map(String::as_str).collect();
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
                    .and_then(|compiled| {
                        uses_undecided_segment(&compiled, &undecided, &segment_keys)
                            .map_or(Ok(compiled), Err)
                    })
                    .unwrap_or_else(|why| malformed(flag, why))
            })
            .collect();
        mark_prerequisite_chains(&mut flags);
        let index = index.map_values(|i| {
            let constant = flags[i].constant();
            Slot {
                index: i,
                kind: flags[i].kind,
                constant,
                constant_bool: constant
                    .filter(|_| flags[i].kind == Kind::Boolean)
                    .and_then(|(v, _)| flags[i].variations[v].value.as_bool()),
            }
        });
        let rollouts = flags
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.malformed.is_none()
                    && std::iter::once(&f.fallthrough)
                        .chain(f.rules.iter().map(|r| &r.serve))
                        .any(|s| matches!(s, CompiledServe::Rollout { .. }))
            })
            .map(|(i, _)| i)
            .collect();
        CompiledSnapshot {
            source,
            flags,
            index,
            segments,
            rollouts,
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
        self.rollout_flag_indexes().map(|i| &*self.flags[i].key)
    }

    /// Indexes of the flags of [`rollout_flags`](Self::rollout_flags).
    pub(crate) fn rollout_flag_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.rollouts.iter().copied()
    }

    /// The keys of flag `i` and of its variation `v`.
    #[cfg(feature = "client")]
    pub(crate) fn names_of(&self, i: usize, v: usize) -> Option<(&str, &str)> {
        let flag = self.flags.get(i)?;
        Some((&flag.key, &flag.variations.get(v)?.key))
    }

    /// The index of flag `key`.
    #[cfg(feature = "client")]
    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).map(|slot| slot.index)
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
        kind: Kind::of(&flag.kind),
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
    if let FlagKind::Unknown(kind) = &flag.kind {
        return Err(format!("unknown kind `{kind}`"));
    }
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
            Serve::Unknown(_) => return Err("unknown serve form".to_owned()),
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
        kind: Kind::of(&flag.kind),
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

/// Why a compiled flag cannot be evaluated because of a segment it uses, if it cannot.
fn uses_undecided_segment(
    flag: &CompiledFlag,
    undecided: &[Option<String>],
    keys: &[&str],
) -> Option<String> {
    let clauses = flag.rules.iter().flat_map(|r| &r.clauses);
    let s = clauses
        .flat_map(segments::named_segments)
        .find(|&s| undecided[s].is_some())?;
    Some(format!(
        "segment `{}` cannot be decided: {}",
        keys[s],
        undecided[s].as_deref().unwrap_or_default()
    ))
}

/// Compiles a rule's clauses. A clause with an operator this version does not know never
/// matches, negated or not.
pub(crate) fn compile_clauses(
    clauses: &[Clause],
    find_segment: &dyn Fn(&str) -> Option<usize>,
) -> Result<Vec<CompiledClause>, String> {
    clauses
        .iter()
        .map(|c| {
            Ok(CompiledClause {
                attribute: Name::new(&c.attribute),
                negate: c.negate && !matches!(c.op, Op::Unknown(_)),
                matcher: Matcher::compile(&c.op, &c.values, find_segment)
                    .map_err(|bad| bad.message)?,
            })
        })
        .collect()
}

/// Marks as malformed every flag on a prerequisite cycle and every flag whose prerequisite
/// chain is deeper than [`MAX_DEPTH`], so that evaluation of a snapshot that skipped
/// validation terminates and says why. A flag that only leads into a cycle stays: its
/// prerequisite fails.
fn mark_prerequisite_chains(flags: &mut [CompiledFlag]) {
    let mut children: Vec<Vec<usize>> = flags
        .iter()
        .map(|f| f.prerequisites.iter().filter_map(|p| p.flag).collect())
        .collect();
    let cyclic = chains::on_cycles(&children);
    for edges in &mut children {
        edges.retain(|&j| !cyclic[j]);
    }
    for (i, longest) in chains::longest_chains(&children).into_iter().enumerate() {
        if cyclic[i] {
            flags[i].malformed = Some("prerequisite cycle".to_owned());
        } else if let Some(n) = longest.filter(|&n| n > MAX_DEPTH + 1) {
            flags[i].malformed = Some(format!(
                "prerequisite chain of {n} flags; at most {} are evaluated",
                MAX_DEPTH + 1
            ));
        }
    }
}
