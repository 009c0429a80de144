//! Releases (contract section 7): staged rollouts that advance on a schedule while the guard
//! passes, and roll themselves back when the new variation hurts users.
//!
//! `plan` is the state machine over an explicit clock and `guard` the statistics; both are
//! pure. The scheduler that wakes them and writes their moves lives beside them.

pub mod guard;
pub mod plan;
pub mod scheduler;
