//! One file per command group (contract section 8). Each command resolves its target through
//! [`Ctx`], calls the API (or, for offline `eval`, the SDK's evaluator) and prints through
//! `output`. Commands never format HTTP errors themselves: `api` does.

pub mod alert;
pub mod apply;
pub mod compare;
pub mod env;
pub mod eval;
pub mod flags;
pub mod log;
pub mod profiles;
pub mod release;
pub mod request;
pub mod rmw;
pub mod schedule;
pub mod segment;
pub mod status;
pub mod targeting;
pub mod token;

use crate::api::Api;
use crate::config::{self, ConfigFile, Explicit, Target};

/// What every command gets: the explicit options and `--json`.
pub struct Ctx {
    explicit: Explicit,
    /// `--json`: machine-readable output.
    pub json: bool,
}

impl Ctx {
    /// A context from the parsed global options.
    pub fn new(explicit: Explicit, json: bool) -> Self {
        Ctx { explicit, json }
    }

    /// The config file (empty when there is none).
    pub fn config_file(&self) -> anyhow::Result<(Option<std::path::PathBuf>, ConfigFile)> {
        let path = config::config_path(self.explicit.config.as_deref());
        let file = config::load(path.as_deref(), self.explicit.config.is_some())?;
        Ok((path, file))
    }

    /// Server, token and environment after the profile is applied.
    pub fn target(&self) -> anyhow::Result<Target> {
        let (_, file) = self.config_file()?;
        config::resolve(&self.explicit, &file)
    }

    /// The API client and the environment.
    pub fn api(&self) -> anyhow::Result<(Api, String)> {
        let target = self.target()?;
        Ok((Api::new(&target.server, target.token)?, target.env))
    }
}
