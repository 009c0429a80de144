//! The API suites of `tests` again, each test on a fresh PostgreSQL database of a throwaway
//! cluster (`common::postgres`): every endpoint, error and write rule must hold on both
//! backends. Suites that are about SQLite itself (its file, its lock, the disk) or that
//! start processes stay in `tests` alone; the replica suites live there too.

// These suites use part of the shared helpers only.
#![allow(dead_code)]

mod common;

/// The suites here run on PostgreSQL.
const ON_POSTGRES: bool = true;

mod alerts;
mod change_requests;
mod concurrency;
mod console;
mod environments;
mod errors;
mod evaluate;
mod flag_list;
mod flags;
mod hostile;
mod kill;
mod ofrep;
mod ops;
mod release_metrics;
mod releases;
mod schedules;
mod scopes;
mod sdk_stream;
mod segments;
mod tokens;
