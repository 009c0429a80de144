//! [`Detail`]: an evaluation result that owns its data, so it outlives the snapshot it came
//! from (which a stream update may swap out at any moment).

use serde::Serialize;
use serde_json::Value;

use crate::eval::{Evaluation, Reason};

/// The outcome of evaluating one flag: what was served and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    /// The value served; `None` when the caller's default applies (see `reason`).
    pub value: Option<Value>,
    /// The key of the variation served.
    pub variation: Option<String>,
    /// The index of the variation served.
    pub variation_index: Option<usize>,
    /// Why (contract section 3).
    pub reason: Reason<'static>,
}

impl From<Evaluation<'_>> for Detail {
    fn from(evaluation: Evaluation<'_>) -> Self {
        Detail {
            value: evaluation.value.cloned(),
            variation: evaluation.variation.map(str::to_owned),
            variation_index: evaluation.variation_index,
            reason: evaluation.reason.into_owned(),
        }
    }
}
