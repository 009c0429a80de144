//! flag-server's integration tests: black-box over HTTP against the real server, started
//! in-process on an ephemeral loopback port with a temporary database (the durability test
//! runs the binary, since it kills the process).

mod common;

/// The suites here run on SQLite; `on_postgres` runs the API suites again on PostgreSQL.
const ON_POSTGRES: bool = false;

mod alertmanager;
mod alerts;
mod change_requests;
mod concurrency;
mod console;
mod console_browser;
mod durability;
mod environments;
mod errors;
mod evaluate;
mod faults;
mod flag_list;
mod flags;
mod hostile;
mod kill;
mod ofrep;
mod ofrep_browser;
mod ofrep_clients;
mod openapi;
mod ops;
mod postgres_sql;
mod process;
mod release_metrics;
mod release_prometheus;
mod releases;
mod replicas;
mod schedules;
mod scopes;
mod sdk_stream;
mod segments;
mod stream_faults;
mod tokens;
