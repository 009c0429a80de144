//! Where the CLI points: `--server` / `--token` / `--env` (or their `FLAG_*` variables),
//! falling back to a named profile of the config file, then to the defaults.
//!
//! The config file is JSON, at `--config` / `FLAG_CONFIG`, else
//! `$XDG_CONFIG_HOME/flag/config.json`, else `~/.config/flag/config.json`:
//!
//! ```json
//! { "default_profile": "staging",
//!   "profiles": {
//!     "prod":    { "server": "https://flags.example.com", "token": "…", "env": "production" },
//!     "staging": { "server": "https://flags.staging.example.com", "token": "…", "env": "staging" } } }
//! ```
//!
//! This module reads files and resolves settings; it knows nothing of HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// The server when neither a flag, a variable nor a profile names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// The environment when neither a flag, a variable nor a profile names one.
pub const DEFAULT_ENV: &str = "production";

/// The config file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when `--profile` is not given.
    #[serde(default)]
    pub default_profile: Option<String>,
    /// Named installations.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One installation: any field may be left out.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The server's base URL.
    pub server: Option<String>,
    /// An admin token.
    pub token: Option<String>,
    /// The environment.
    pub env: Option<String>,
}

/// What the command line and its variables said (explicit values only).
#[derive(Debug, Default, Clone)]
pub struct Explicit {
    /// `--server` / `FLAG_SERVER_URL`.
    pub server: Option<String>,
    /// `--token` / `FLAG_TOKEN`.
    pub token: Option<String>,
    /// `--env` / `FLAG_ENV`.
    pub env: Option<String>,
    /// `--profile` / `FLAG_PROFILE`.
    pub profile: Option<String>,
    /// `--config` / `FLAG_CONFIG`.
    pub config: Option<PathBuf>,
}

/// The resolved target of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's base URL.
    pub server: String,
    /// The admin token, if any.
    pub token: Option<String>,
    /// The environment.
    pub env: String,
    /// The profile used, if any.
    pub profile: Option<String>,
}

/// The config file's path: explicit, else the XDG/home default (`None` without a home).
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("flag").join("config.json"))
}

/// Reads the config file; a missing file is an empty config unless it was named explicitly.
pub fn load(path: Option<&Path>, explicit: bool) -> anyhow::Result<ConfigFile> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading the config file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(ConfigFile::default())
        }
        Err(e) => Err(e).with_context(|| format!("reading the config file {}", path.display())),
    }
}

/// Explicit values win over the profile, the profile over the defaults.
pub fn resolve(explicit: &Explicit, file: &ConfigFile) -> anyhow::Result<Target> {
    let name = explicit
        .profile
        .clone()
        .or_else(|| file.default_profile.clone());
    let profile = match &name {
        None => Profile::default(),
        Some(name) => match file.profiles.get(name) {
            Some(p) => p.clone(),
            None => {
                let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
                bail!(CliError::Usage(format!(
                    "no profile `{name}` in the config file (known: {}); see `flag profiles`",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        },
    };
    Ok(Target {
        server: explicit
            .server
            .clone()
            .or(profile.server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
        token: explicit.token.clone().or(profile.token),
        env: explicit
            .env
            .clone()
            .or(profile.env)
            .unwrap_or_else(|| DEFAULT_ENV.to_owned()),
        profile: name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ConfigFile {
        serde_json::from_str(
            r#"{"profiles": {"prod": {"server": "https://prod", "token": "t1", "env": "production"},
                              "dev": {"server": "http://dev"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_without_profile() {
        let t = resolve(&Explicit::default(), &ConfigFile::default()).unwrap();
        assert_eq!(t.server, DEFAULT_SERVER);
        assert_eq!(t.env, DEFAULT_ENV);
        assert_eq!(t.token, None);
    }

    #[test]
    fn profile_fills_in_and_explicit_wins() {
        let mut ex = Explicit {
            profile: Some("prod".into()),
            ..Explicit::default()
        };
        let t = resolve(&ex, &file()).unwrap();
        assert_eq!(t.server, "https://prod");
        assert_eq!(t.token.as_deref(), Some("t1"));
        ex.token = Some("t2".into());
        ex.env = Some("staging".into());
        let t = resolve(&ex, &file()).unwrap();
        assert_eq!(t.token.as_deref(), Some("t2"));
        assert_eq!(t.env, "staging");
        assert_eq!(t.server, "https://prod");
    }

    #[test]
    fn partial_profile_uses_defaults() {
        let ex = Explicit {
            profile: Some("dev".into()),
            ..Explicit::default()
        };
        let t = resolve(&ex, &file()).unwrap();
        assert_eq!(t.server, "http://dev");
        assert_eq!(t.env, DEFAULT_ENV);
    }

    #[test]
    fn unknown_profile_is_a_usage_error() {
        let ex = Explicit {
            profile: Some("nope".into()),
            ..Explicit::default()
        };
        let e = resolve(&ex, &file()).unwrap_err();
        assert!(e.to_string().contains("dev, prod"), "{e}");
        assert_eq!(crate::error::exit_code(&e), 2);
    }
}
