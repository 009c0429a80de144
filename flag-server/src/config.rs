//! Command line and environment: every option has a `FLAG_...` variable. Boolean options
//! take `1/0/true/false/yes/no` (also `on/off`), from the variable or as `--option=VALUE`;
//! the bare `--option` means true.

use std::net::SocketAddr;

use crate::store::Location;

use clap::builder::BoolishValueParser;
use clap::{Parser, Subcommand};

/// The feature-flag server: REST API, SQLite store, audit log, tokens.
#[derive(Debug, Clone, Parser)]
#[command(name = "flag-server", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "FLAG_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The SQLite database file (created when missing).
    /// The database: a SQLite file (created when missing), or `postgres://user@host/db`
    /// for several replicas on one PostgreSQL.
    #[arg(long, env = "FLAG_SERVER_DB", default_value = "./flags.db", value_parser = clap::value_parser!(Location))]
    pub db: Location,
    /// A string accepted as an admin token (named `bootstrap` in the audit log).
    #[arg(long, env = "FLAG_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// HTTP worker threads (default: the number of CPUs).
    #[arg(long, env = "FLAG_SERVER_WORKERS")]
    pub workers: Option<usize>,
    /// Milliseconds between SSE heartbeat comments to SDKs (contract: at most 15 s). A connection
    /// whose data stays unacknowledged for three of these (a dead peer) is closed.
    #[arg(long, env = "FLAG_SSE_HEARTBEAT_MS", default_value_t = 10_000)]
    pub sse_heartbeat_ms: u64,
    /// Events an SDK stream may fall behind before it is cut off (it then resyncs).
    #[arg(long, env = "FLAG_SSE_BUFFER", default_value_t = 256)]
    pub sse_buffer: usize,
    /// OFREP requests per second each token may make (bursts of as many); over it, 429 with
    /// `Retry-After`. 0 turns the limit off.
    #[arg(long, env = "FLAG_OFREP_RATE_LIMIT", default_value_t = crate::ofrep::rate::DEFAULT_PER_SECOND)]
    pub ofrep_rate_limit: u32,
    /// Let webhooks target loopback and private addresses (link-local and metadata
    /// addresses are refused whatever this says). BOOL: 1/0, true/false, yes/no, on/off.
    #[arg(
        long,
        env = "FLAG_WEBHOOK_ALLOW_PRIVATE",
        value_name = "BOOL",
        value_parser = BoolishValueParser::new(),
        hide_possible_values = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub webhook_allow_private: bool,
    /// The Prometheus server release guards query (`guard.prometheus`), e.g.
    /// `http://127.0.0.1:9090`. Without it a release with Prometheus guards holds.
    #[arg(long, env = "FLAG_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Seconds between two looks at a running release's Prometheus queries.
    #[arg(long, env = "FLAG_PROMETHEUS_INTERVAL_SECONDS", default_value_t = 30)]
    pub prometheus_interval_seconds: u64,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the OpenAPI document and exit.
    Openapi,
}

impl Config {
    /// A configuration for tests and benches: `127.0.0.1:0`, the given database and admin token.
    pub fn ephemeral(db: impl Into<Location>, admin_token: impl Into<String>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: db.into(),
            admin_token: Some(admin_token.into()),
            workers: Some(2),
            sse_heartbeat_ms: 10_000,
            sse_buffer: 256,
            ofrep_rate_limit: crate::ofrep::rate::DEFAULT_PER_SECOND,
            webhook_allow_private: false,
            prometheus_url: None,
            prometheus_interval_seconds: 30,
            command: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value parser the environment variable goes through too.
    fn allow_private(args: &[&str]) -> Result<bool, clap::Error> {
        let args = ["flag-server"].iter().chain(args);
        Config::try_parse_from(args).map(|c| c.webhook_allow_private)
    }

    #[test]
    fn boolean_options_take_every_spelling_of_yes_and_no() {
        for yes in ["1", "true", "yes", "on", "TRUE", "Yes"] {
            let arg = format!("--webhook-allow-private={yes}");
            assert!(allow_private(&[&arg]).unwrap(), "{yes}");
        }
        for no in ["0", "false", "no", "off", "FALSE", "No"] {
            let arg = format!("--webhook-allow-private={no}");
            assert!(!allow_private(&[&arg]).unwrap(), "{no}");
        }
        assert!(allow_private(&["--webhook-allow-private"]).unwrap());
        let err = allow_private(&["--webhook-allow-private=maybe"]).unwrap_err();
        assert!(err.to_string().contains("maybe"), "{err}");
    }

    #[test]
    fn a_bare_boolean_option_leaves_the_next_word_alone() {
        let config =
            Config::try_parse_from(["flag-server", "--webhook-allow-private", "openapi"]).unwrap();
        assert!(config.webhook_allow_private);
        assert!(matches!(config.command, Some(Command::Openapi)));
    }
}
