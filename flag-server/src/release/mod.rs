//! Releases (contract section 7): staged rollouts that advance on a schedule while the guard
//! passes, and roll themselves back when the new variation hurts users.
//!
//! `plan` is the state machine over an explicit clock and `guard` (errors), `metric_guard`
//! (tracked metrics) and `prometheus` (queries; its HTTP client aside) the statistics; all
//! pure. The scheduler that wakes them and writes their moves lives beside them.

pub mod assess;
pub mod guard;
pub mod metric_guard;
pub mod plan;
pub mod prometheus;
pub mod scheduler;
