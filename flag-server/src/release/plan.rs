//! A release as a state machine over an explicit clock: given the time and the counters the
//! SDKs reported, it says which move to make. No SQL, no HTTP, no real time — the scheduler
//! feeds it `now` and applies the moves through the ordinary write path, so tests can drive
//! a whole release in microseconds.

use std::collections::BTreeMap;

use flag_sdk::model::{Serve, WeightedVariation, TOTAL_WEIGHT};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use flag_sdk::histogram::Histogram;

use super::assess::Assessment;
use super::guard::{Counts, GuardConfig, Verdict};
use super::prometheus::Reading;

pub use crate::clock::Millis;

/// With Prometheus guards but no Prometheus configured, how long until the next look.
const NO_PROMETHEUS_RETRY_MS: Millis = 60_000;

/// What happens when the guard finds a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnRegression {
    /// Put the fallthrough back as it was before the release (the new variation gets 0%).
    #[default]
    Rollback,
    /// Kill the flag (serve its off variation to everyone).
    Kill,
    /// Stop where it is and wait for a person.
    Pause,
}

/// How a release was asked to run (contract section 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleasePlan {
    /// The variation being released.
    pub variation: String,
    /// Percentages, ascending, the last one at most 100.
    pub stages: Vec<u32>,
    /// How long each stage is held before the next.
    pub hold_seconds: u64,
    /// The regression guard.
    pub guard: GuardConfig,
    /// What to do on a regression.
    #[serde(default)]
    pub on_regression: OnRegression,
    /// The context attribute the stages bucket by (`key`, `org`, ...). Absent: the flag's
    /// current fallthrough rollout's, or `key`; its salt is kept either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "org")]
    pub bucket_by: Option<String>,
}

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Moving through its stages.
    Running,
    /// Held by a person or by the guard.
    Paused,
    /// Reached its last stage and held it.
    Completed,
    /// Undone by the guard.
    RolledBack,
    /// Stopped by a person.
    Aborted,
}

impl ReleaseState {
    /// Whether the release can still move.
    pub fn is_active(self) -> bool {
        matches!(self, ReleaseState::Running | ReleaseState::Paused)
    }
}

/// A release in progress or finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// How it was asked to run.
    pub plan: ReleasePlan,
    /// Where it stands.
    pub state: ReleaseState,
    /// Index into `plan.stages`.
    pub stage: usize,
    /// When the current stage began.
    pub stage_started_at: Millis,
    /// The fallthrough before the release began, restored by a rollback.
    pub baseline: Serve,
    /// Counts per variation since the release began.
    pub observed: BTreeMap<String, Counts>,
    /// Histograms of the guarded metrics since the release began: metric → variation → values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measured: BTreeMap<String, BTreeMap<String, Histogram>>,
    /// The last look at the Prometheus guard's queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Reading>,
    /// Why it is in its state (the guard's figures, or a person's reason).
    pub reason: Option<String>,
}

/// A change the scheduler must write to the flag (through the normal write path).
#[derive(Debug, Clone, PartialEq)]
pub enum FlagMove {
    /// Set the fallthrough to this serve.
    Fallthrough(Serve),
    /// Kill the flag.
    Kill,
}

/// One step a release took, for the audit log and notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `release.advanced`, `release.completed`, `release.rolled_back`, `release.paused`, ...
    pub event: &'static str,
    /// What to write to the flag, if anything.
    pub flag: Option<FlagMove>,
    /// A sentence with the figures that decided it.
    pub reason: String,
}

/// Why a manual command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the release is {0:?}; it cannot {1}")]
pub struct NotAllowed(pub ReleaseState, pub &'static str);

impl ReleasePlan {
    /// Problems with the plan, as (field, message), given the flag's variation keys.
    pub fn problems(&self, variations: &[&str]) -> Vec<(String, String)> {
        let mut problems = self.guard.problems();
        let mut push = |field: &str, message: String| problems.push((field.to_owned(), message));
        if !variations.contains(&self.variation.as_str()) {
            push(
                "variation",
                format!("the flag has no variation `{}`", self.variation),
            );
        }
        if variations.len() < 2 {
            push(
                "variation",
                "a release needs a flag with at least two variations".into(),
            );
        }
        if self.stages.is_empty() {
            push(
                "stages",
                "give at least one stage, e.g. [1, 5, 25, 50, 100]".into(),
            );
        }
        if self.stages.iter().any(|&s| s == 0 || s > 100) {
            push("stages", "each stage is a percentage from 1 to 100".into());
        }
        if self.stages.windows(2).any(|w| w[0] >= w[1]) {
            push("stages", "stages must increase".into());
        }
        if self.hold_seconds == 0 {
            push("hold_seconds", "must be at least 1".into());
        }
        if self
            .bucket_by
            .as_deref()
            .is_some_and(|b| b.trim().is_empty())
        {
            push(
                "bucket_by",
                "must name a context attribute, e.g. `key` or `org`".into(),
            );
        }
        problems
    }
}

impl Release {
    /// Starts a release at its first stage; returns it and the fallthrough to write.
    pub fn start(
        plan: ReleasePlan,
        baseline: Serve,
        variations: &[&str],
        now: Millis,
    ) -> (Self, Step) {
        let release = Release {
            plan,
            state: ReleaseState::Running,
            stage: 0,
            stage_started_at: now,
            baseline,
            observed: BTreeMap::new(),
            measured: BTreeMap::new(),
            prometheus: None,
            reason: None,
        };
        let percent = release.percent();
        let step = Step {
            event: "release.started",
            flag: Some(FlagMove::Fallthrough(release.serve_at(percent, variations))),
            reason: format!(
                "release of `{}` started at {percent}%",
                release.plan.variation
            ),
        };
        (release, step)
    }

    /// The share of the current stage, in percent.
    pub fn percent(&self) -> u32 {
        self.plan.stages.get(self.stage).copied().unwrap_or(0)
    }

    /// When the scheduler should next look at this release; `None` when nothing is due: the
    /// end of the stage's hold, or sooner the next look at its Prometheus queries.
    pub fn next_at(&self) -> Option<Millis> {
        if self.state != ReleaseState::Running {
            return None;
        }
        let stage_due = self.stage_due();
        if self.plan.guard.prometheus.is_empty() {
            return Some(stage_due);
        }
        let check_due = self
            .prometheus
            .as_ref()
            .map_or(self.stage_started_at, |r| r.next_at);
        Some(stage_due.min(check_due))
    }

    /// When the current stage's hold ends.
    pub fn stage_due(&self) -> Millis {
        self.stage_started_at + (self.plan.hold_seconds as Millis) * 1000
    }

    /// Adds SDK counters, then asks the guard; a regression acts at once.
    pub fn observe(&mut self, variation: &str, counts: Counts) -> Option<Step> {
        let entry = self.observed.entry(variation.to_owned()).or_default();
        entry.evaluations += counts.evaluations;
        entry.errors += counts.errors;
        self.react()
    }

    /// A regression shown by the figures so far acts at once (while running).
    pub(super) fn react(&mut self) -> Option<Step> {
        if self.state != ReleaseState::Running {
            return None;
        }
        match self.assess() {
            Assessment::Regression(figures) => Some(self.regress(figures)),
            _ => None,
        }
    }

    /// The error guard's view of the counts so far.
    pub fn verdict(&self) -> Verdict {
        let (new, rest) = self.sides();
        self.plan.guard.judge(new, rest)
    }

    /// The new variation's counts and everyone else's.
    pub fn sides(&self) -> (Counts, Counts) {
        let mut new = Counts::default();
        let mut rest = Counts::default();
        for (variation, c) in &self.observed {
            let side = if *variation == self.plan.variation {
                &mut new
            } else {
                &mut rest
            };
            side.evaluations += c.evaluations;
            side.errors += c.errors;
        }
        (new, rest)
    }

    /// Called when `next_at` has come, with the Prometheus reading the scheduler took for
    /// it (when the plan has Prometheus guards): roll back on a regression; at the end of
    /// the hold advance when every guard passes, keep holding while evidence is short or
    /// Prometheus cannot answer.
    pub fn tick(
        &mut self,
        now: Millis,
        variations: &[&str],
        reading: Option<Reading>,
    ) -> Option<Step> {
        if self.next_at().is_none_or(|due| now < due) {
            return None;
        }
        if !self.plan.guard.prometheus.is_empty() {
            self.prometheus = Some(reading.unwrap_or_else(|| Reading {
                at: now,
                next_at: now + NO_PROMETHEUS_RETRY_MS,
                values: Vec::new(),
                error: Some("this server has no Prometheus to ask (--prometheus-url)".into()),
            }));
        }
        let stage_due = now >= self.stage_due();
        match self.assess() {
            Assessment::Regression(figures) => Some(self.regress(figures)),
            Assessment::Insufficient(waiting) => {
                if stage_due {
                    // Hold on: advancing without evidence is what the guard exists to prevent.
                    self.stage_started_at = now;
                }
                self.reason = Some(format!(
                    "holding {}%: waiting for {waiting}",
                    self.percent()
                ));
                None
            }
            Assessment::Healthy if stage_due => {
                Some(self.step_forward(now, variations, "release.advanced"))
            }
            Assessment::Healthy => {
                self.reason = None;
                None
            }
        }
    }

    fn step_forward(&mut self, now: Millis, variations: &[&str], event: &'static str) -> Step {
        if self.stage + 1 >= self.plan.stages.len() {
            self.state = ReleaseState::Completed;
            self.reason = Some(format!("completed at {}%", self.percent()));
            return Step {
                event: "release.completed",
                flag: None,
                reason: self.reason.clone().unwrap_or_default(),
            };
        }
        self.stage += 1;
        self.stage_started_at = now;
        let percent = self.percent();
        self.reason = None;
        Step {
            event,
            flag: Some(FlagMove::Fallthrough(self.serve_at(percent, variations))),
            reason: format!("advanced to {percent}%"),
        }
    }

    /// The error guard's figures, for a regression's reason.
    pub(super) fn error_figures(&self, increase: f64, z: f64) -> String {
        let (new, rest) = self.sides();
        format!(
            "`{}` errors {:.2}% ({} of {}) vs {:.2}% ({} of {}) for the rest: +{:.2} points, z = {:.2}, threshold {:.2} points at {:.0}% confidence",
            self.plan.variation,
            new.error_rate() * 100.0,
            new.errors,
            new.evaluations,
            rest.error_rate() * 100.0,
            rest.errors,
            rest.evaluations,
            increase * 100.0,
            z,
            self.plan.guard.max_error_rate_increase * 100.0,
            self.plan.guard.confidence * 100.0,
        )
    }

    fn regress(&mut self, figures: String) -> Step {
        let (state, flag, event) = match self.plan.on_regression {
            OnRegression::Rollback => (
                ReleaseState::RolledBack,
                Some(FlagMove::Fallthrough(self.baseline.clone())),
                "release.rolled_back",
            ),
            OnRegression::Kill => (
                ReleaseState::RolledBack,
                Some(FlagMove::Kill),
                "release.rolled_back",
            ),
            OnRegression::Pause => (ReleaseState::Paused, None, "release.paused"),
        };
        self.state = state;
        self.reason = Some(format!("regression: {figures}"));
        Step {
            event,
            flag,
            reason: self.reason.clone().unwrap_or_default(),
        }
    }

    /// A person holds the release where it is.
    pub fn pause(&mut self, reason: &str) -> Result<Step, NotAllowed> {
        if self.state != ReleaseState::Running {
            return Err(NotAllowed(self.state, "pause"));
        }
        self.state = ReleaseState::Paused;
        self.reason = Some(format!("paused: {reason}"));
        Ok(Step {
            event: "release.paused",
            flag: None,
            reason: self.reason.clone().unwrap_or_default(),
        })
    }

    /// The flag was killed: a running release is paused with the kill's reason, so nothing
    /// moves it until the flag is restored and a person resumes it. `None` when it was not
    /// running (paused already, or over).
    pub fn hold_for_kill(&mut self, reason: &str) -> Option<Step> {
        if self.state != ReleaseState::Running {
            return None;
        }
        self.state = ReleaseState::Paused;
        self.reason = Some(format!(
            "paused because the flag was killed: {reason}; restore the flag, then resume"
        ));
        Some(Step {
            event: "release.paused",
            flag: None,
            reason: self.reason.clone().unwrap_or_default(),
        })
    }

    /// A person lets a paused release go on; its stage is held again from now.
    pub fn resume(&mut self, now: Millis) -> Result<Step, NotAllowed> {
        if self.state != ReleaseState::Paused {
            return Err(NotAllowed(self.state, "resume"));
        }
        self.state = ReleaseState::Running;
        self.stage_started_at = now;
        self.reason = None;
        Ok(Step {
            event: "release.resumed",
            flag: None,
            reason: format!("resumed at {}%", self.percent()),
        })
    }

    /// A person moves to the next stage now, whatever the hold time says.
    pub fn advance(&mut self, now: Millis, variations: &[&str]) -> Result<Step, NotAllowed> {
        if !self.state.is_active() {
            return Err(NotAllowed(self.state, "advance"));
        }
        self.state = ReleaseState::Running;
        Ok(self.step_forward(now, variations, "release.advanced"))
    }

    /// A person stops the release and puts the fallthrough back as it was.
    pub fn abort(&mut self, reason: &str) -> Result<Step, NotAllowed> {
        if !self.state.is_active() {
            return Err(NotAllowed(self.state, "abort"));
        }
        self.state = ReleaseState::Aborted;
        self.reason = Some(format!("aborted: {reason}"));
        Ok(Step {
            event: "release.aborted",
            flag: Some(FlagMove::Fallthrough(self.baseline.clone())),
            reason: self.reason.clone().unwrap_or_default(),
        })
    }

    /// Rolled back from outside (an alert): the fallthrough from before the release, as a
    /// regression's rollback puts it.
    pub fn roll_back(&mut self, reason: &str) -> Result<Step, NotAllowed> {
        if !self.state.is_active() {
            return Err(NotAllowed(self.state, "roll back"));
        }
        self.state = ReleaseState::RolledBack;
        self.reason = Some(format!("rolled back: {reason}"));
        Ok(Step {
            event: "release.rolled_back",
            flag: Some(FlagMove::Fallthrough(self.baseline.clone())),
            reason: self.reason.clone().unwrap_or_default(),
        })
    }

    /// The context attribute the stages bucket by: the plan's, else the baseline's.
    pub fn bucket_by(&self) -> &str {
        self.plan
            .bucket_by
            .as_deref()
            .unwrap_or(self.baseline.bucketing().0)
    }

    /// The fallthrough giving `percent` to the released variation and the rest to the
    /// baseline's other variations, in their proportions (contract section 3's sticky
    /// rollout). It buckets by the plan's `bucket_by`, else by the baseline's, and keeps the
    /// baseline's salt, so a flag rolled out by organisation stays so through the release.
    pub fn serve_at(&self, percent: u32, variations: &[&str]) -> Serve {
        let rest = self.rest_weights(variations);
        Serve::sticky_rollout(
            &self.baseline,
            Some(self.bucket_by()),
            &self.plan.variation,
            percent.min(100) * (TOTAL_WEIGHT / 100),
            &rest,
        )
    }

    /// The variations that share what the released one does not get, with the baseline's
    /// weights: the baseline's others, or when it served the released variation itself,
    /// another of the flag's.
    pub fn rest_weights(&self, variations: &[&str]) -> Vec<WeightedVariation> {
        let released = self.plan.variation.as_str();
        let mut rest = match &self.baseline {
            Serve::Rollout(r) => r.weights.clone(),
            Serve::Variation(v) => vec![WeightedVariation {
                variation: v.clone(),
                weight: TOTAL_WEIGHT,
            }],
            // Validation refuses a serve this build does not know; nothing to keep from it.
            _ => Vec::new(),
        };
        rest.retain(|w| w.variation != released);
        if rest.is_empty() {
            // The baseline served the released variation itself: give the rest to another.
            rest.extend(
                variations
                    .iter()
                    .find(|v| **v != released)
                    .map(|v| WeightedVariation {
                        variation: (*v).to_owned(),
                        weight: TOTAL_WEIGHT,
                    }),
            );
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use flag_sdk::model::Rollout;

    use super::*;

    const VARIATIONS: &[&str] = &["on", "off"];
    const HOLD_MS: Millis = 600_000;

    fn plan(on_regression: OnRegression) -> ReleasePlan {
        ReleasePlan {
            variation: "on".into(),
            stages: vec![1, 5, 25, 50, 100],
            hold_seconds: 600,
            guard: GuardConfig {
                max_error_rate_increase: 0.02,
                min_evaluations: 200,
                confidence: 0.95,
                metrics: Vec::new(),
                prometheus: Vec::new(),
            },
            on_regression,
            bucket_by: None,
        }
    }

    fn started(on_regression: OnRegression) -> Release {
        Release::start(
            plan(on_regression),
            Serve::Variation("off".into()),
            VARIATIONS,
            0,
        )
        .0
    }

    fn weight_of(serve: &Serve, variation: &str) -> u32 {
        match serve {
            Serve::Rollout(r) => r
                .weights
                .iter()
                .filter(|w| w.variation == variation)
                .map(|w| w.weight)
                .sum(),
            Serve::Variation(v) if v == variation => TOTAL_WEIGHT,
            _ => 0,
        }
    }

    fn healthy_traffic(r: &mut Release) {
        r.observe(
            "on",
            Counts {
                evaluations: 1_000,
                errors: 10,
            },
        );
        r.observe(
            "off",
            Counts {
                evaluations: 50_000,
                errors: 500,
            },
        );
    }

    #[test]
    fn starts_at_the_first_stage_with_the_new_variation_first() {
        let (r, step) = Release::start(
            plan(OnRegression::Rollback),
            Serve::Variation("off".into()),
            VARIATIONS,
            7,
        );
        let Some(FlagMove::Fallthrough(serve)) = step.flag else {
            panic!("{step:?}")
        };
        assert_eq!(weight_of(&serve, "on"), 1_000);
        assert_eq!(weight_of(&serve, "off"), 99_000);
        let Serve::Rollout(rollout) = &serve else {
            panic!()
        };
        assert_eq!(
            rollout.weights[0].variation, "on",
            "sticky: the released variation leads"
        );
        assert_eq!(r.next_at(), Some(7 + HOLD_MS));
    }

    #[test]
    fn advances_on_health_after_the_hold_and_completes() {
        let mut r = started(OnRegression::Rollback);
        healthy_traffic(&mut r);
        assert_eq!(
            r.tick(HOLD_MS - 1, VARIATIONS, None),
            None,
            "not before the hold ends"
        );
        let mut now = HOLD_MS;
        for expected in [5u32, 25, 50, 100] {
            let step = r.tick(now, VARIATIONS, None).expect("due");
            assert_eq!(step.event, "release.advanced");
            let Some(FlagMove::Fallthrough(serve)) = step.flag else {
                panic!()
            };
            assert_eq!(weight_of(&serve, "on"), expected * 1000);
            now += HOLD_MS;
        }
        let done = r.tick(now, VARIATIONS, None).unwrap();
        assert_eq!(done.event, "release.completed");
        assert_eq!(r.state, ReleaseState::Completed);
        assert_eq!(r.next_at(), None);
    }

    #[test]
    fn holds_while_evidence_is_short() {
        let mut r = started(OnRegression::Rollback);
        r.observe(
            "on",
            Counts {
                evaluations: 10,
                errors: 0,
            },
        );
        assert_eq!(r.tick(HOLD_MS, VARIATIONS, None), None);
        assert_eq!(r.stage, 0);
        assert_eq!(r.next_at(), Some(2 * HOLD_MS), "looks again one hold later");
        assert!(r.reason.as_deref().unwrap().contains("waiting for 200"));
    }

    #[test]
    fn rolls_back_on_regression_at_once_with_the_figures() {
        let mut r = started(OnRegression::Rollback);
        r.observe(
            "off",
            Counts {
                evaluations: 20_000,
                errors: 200,
            },
        );
        let step = r
            .observe(
                "on",
                Counts {
                    evaluations: 400,
                    errors: 40,
                },
            )
            .expect("regression");
        assert_eq!(step.event, "release.rolled_back");
        assert_eq!(
            step.flag,
            Some(FlagMove::Fallthrough(Serve::Variation("off".into())))
        );
        assert_eq!(r.state, ReleaseState::RolledBack);
        assert!(
            step.reason.contains("10.00% (40 of 400)"),
            "{}",
            step.reason
        );
        assert!(step.reason.contains("+9.00 points"), "{}", step.reason);
        assert_eq!(
            r.tick(10 * HOLD_MS, VARIATIONS, None),
            None,
            "a rolled-back release never moves"
        );
    }

    #[test]
    fn kill_and_pause_on_regression() {
        let mut killed = started(OnRegression::Kill);
        killed.observe(
            "off",
            Counts {
                evaluations: 20_000,
                errors: 0,
            },
        );
        let step = killed
            .observe(
                "on",
                Counts {
                    evaluations: 500,
                    errors: 100,
                },
            )
            .unwrap();
        assert_eq!(step.flag, Some(FlagMove::Kill));
        let mut paused = started(OnRegression::Pause);
        paused.observe(
            "off",
            Counts {
                evaluations: 20_000,
                errors: 0,
            },
        );
        let step = paused
            .observe(
                "on",
                Counts {
                    evaluations: 500,
                    errors: 100,
                },
            )
            .unwrap();
        assert_eq!((step.event, step.flag), ("release.paused", None));
        assert_eq!(paused.state, ReleaseState::Paused);
    }

    #[test]
    fn pause_resume_advance_abort() {
        let mut r = started(OnRegression::Rollback);
        healthy_traffic(&mut r);
        r.pause("looking at dashboards").unwrap();
        assert_eq!(
            r.tick(5 * HOLD_MS, VARIATIONS, None),
            None,
            "paused releases do not advance"
        );
        assert!(r.pause("again").is_err());
        r.resume(5 * HOLD_MS).unwrap();
        assert_eq!(
            r.next_at(),
            Some(6 * HOLD_MS),
            "the stage is held again from the resume"
        );
        let step = r.advance(5 * HOLD_MS + 1, VARIATIONS).unwrap();
        assert_eq!(r.percent(), 5);
        assert_eq!(step.event, "release.advanced");
        let step = r.abort("wrong build").unwrap();
        assert_eq!(
            step.flag,
            Some(FlagMove::Fallthrough(Serve::Variation("off".into())))
        );
        assert_eq!(r.state, ReleaseState::Aborted);
        assert!(r.resume(0).is_err() && r.advance(0, VARIATIONS).is_err() && r.abort("x").is_err());
    }

    #[test]
    fn survives_serialisation_mid_release() {
        let mut r = started(OnRegression::Rollback);
        healthy_traffic(&mut r);
        r.tick(HOLD_MS, VARIATIONS, None).unwrap();
        let stored = serde_json::to_string(&r).unwrap();
        let mut back: Release = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            back.tick(2 * HOLD_MS, VARIATIONS, None).unwrap().event,
            "release.advanced"
        );
        assert_eq!(back.percent(), 25);
    }

    #[test]
    fn plan_problems_name_the_field() {
        let mut bad = plan(OnRegression::Rollback);
        bad.variation = "maybe".into();
        bad.stages = vec![5, 5, 101];
        bad.hold_seconds = 0;
        let fields: Vec<_> = bad
            .problems(VARIATIONS)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["variation", "stages", "stages", "hold_seconds"]);
        assert!(plan(OnRegression::Rollback).problems(VARIATIONS).is_empty());
    }

    #[test]
    fn the_stages_keep_the_baselines_bucketing_unless_the_plan_names_one() {
        let baseline = Serve::Rollout(Rollout {
            bucket_by: "org".into(),
            salt: Some("s1".into()),
            weights: vec![WeightedVariation {
                variation: "off".into(),
                weight: TOTAL_WEIGHT,
            }],
        });
        let bucketing = |r: &Release, percent| {
            let Serve::Rollout(r) = r.serve_at(percent, VARIATIONS) else {
                panic!()
            };
            (r.bucket_by, r.salt)
        };
        let (kept, _) = Release::start(
            plan(OnRegression::Rollback),
            baseline.clone(),
            VARIATIONS,
            0,
        );
        for percent in [1, 50, 100] {
            assert_eq!(bucketing(&kept, percent), ("org".into(), Some("s1".into())));
        }
        let mut by_device = plan(OnRegression::Rollback);
        by_device.bucket_by = Some("device".into());
        let (named, _) = Release::start(by_device, baseline, VARIATIONS, 0);
        assert_eq!(bucketing(&named, 5), ("device".into(), Some("s1".into())));
    }

    #[test]
    fn a_kill_pauses_a_running_release_and_nothing_else() {
        let mut r = started(OnRegression::Rollback);
        healthy_traffic(&mut r);
        let step = r.hold_for_kill("errors spiking").expect("paused");
        assert_eq!((step.event, step.flag), ("release.paused", None));
        assert!(step.reason.contains("errors spiking"), "{}", step.reason);
        assert_eq!(r.state, ReleaseState::Paused);
        assert_eq!(
            r.tick(10 * HOLD_MS, VARIATIONS, None),
            None,
            "nothing is due"
        );
        assert_eq!(r.hold_for_kill("again"), None, "already paused");
        let mut done = started(OnRegression::Rollback);
        done.abort("x").unwrap();
        assert_eq!(done.hold_for_kill("late"), None);
        assert_eq!(done.state, ReleaseState::Aborted);
    }

    #[test]
    fn a_rollout_baseline_is_scaled_into_the_remaining_share() {
        let baseline = Serve::Rollout(Rollout {
            bucket_by: "key".into(),
            salt: None,
            weights: vec![
                WeightedVariation {
                    variation: "a".into(),
                    weight: 50_000,
                },
                WeightedVariation {
                    variation: "b".into(),
                    weight: 50_000,
                },
            ],
        });
        let mut p = plan(OnRegression::Rollback);
        p.variation = "c".into();
        let (_, step) = Release::start(p, baseline, &["a", "b", "c"], 0);
        let Some(FlagMove::Fallthrough(serve)) = step.flag else {
            panic!()
        };
        assert_eq!(
            (
                weight_of(&serve, "c"),
                weight_of(&serve, "a"),
                weight_of(&serve, "b")
            ),
            (1_000, 49_500, 49_500)
        );
    }
}
