//! The CLI's own failures and the one mapping from any failure to an exit status.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | anything else (bad input rejected by the server, unreadable file, ...) |
//! | 2 | usage: bad arguments, unknown profile |
//! | 3 | not found: unknown flag, environment, token or release |
//! | 4 | authentication: no token, a rejected token, a token of the wrong kind |
//! | 5 | conflict: a key that exists, a state that forbids it, a lost `If-Match` race |
//! | 6 | the server cannot be reached |
//! | 7 | the server failed (5xx) or answered something unreadable |

use crate::api::{self, ApiError};

/// A failure found by the CLI itself.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments that clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
}

/// The exit status of a failure: the first classified error in its chain decides.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return api::exit_code(api);
        }
        if let Some(cli) = cause.downcast_ref::<CliError>() {
            return match cli {
                CliError::Usage(_) => 2,
                CliError::NotFound(_) => 3,
            };
        }
    }
    1
}
