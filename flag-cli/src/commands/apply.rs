//! `flag apply -f FILE` and `flag edit KEY`: a whole flag configuration or segment written as
//! JSON, sent as it is (so the server names any field it does not know) with `If-Match`.
//! `edit` opens `$EDITOR` on the current document and, on a validation error, opens it again
//! with the errors as `//` lines at the top.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::Value;

use super::Ctx;
use crate::api::{config_path, segment_path, Api, ApiError, Method, What};
use crate::diff;
use crate::error::CliError;
use crate::output::{emit, emit_json};

/// `flag apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The JSON file (`-` for stdin): a flag's configuration (it has `fallthrough`) or a
    /// segment (it has none); its `version`, when there is one, is sent as `If-Match`.
    #[arg(long, short)]
    pub file: PathBuf,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// `flag edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The flag key (or the segment key with --segment).
    pub key: String,
    /// Edit the segment KEY instead of a flag.
    #[arg(long)]
    pub segment: bool,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
    /// The editor: a command line, run with the file's path (`code --wait` works).
    #[arg(long, env = "EDITOR", default_value = "vi")]
    pub editor: String,
}

/// A flag's configuration or a segment, in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A flag's configuration.
    Flag,
    /// A segment.
    Segment,
}

impl Kind {
    /// What a document is, by its shape: a flag's configuration has a `fallthrough` (and
    /// `variations`, `off_variation`); a segment has none of them.
    pub fn of(doc: &Value) -> anyhow::Result<Kind> {
        let Some(object) = doc.as_object() else {
            bail!(CliError::Usage(
                "the file is not a JSON object (a flag's configuration or a segment)".into()
            ));
        };
        if ["fallthrough", "variations", "off_variation"]
            .iter()
            .any(|k| object.contains_key(*k))
        {
            Ok(Kind::Flag)
        } else {
            Ok(Kind::Segment)
        }
    }

    fn path(self, key: &str, env: &str) -> String {
        match self {
            Kind::Flag => config_path(key, env),
            Kind::Segment => segment_path(env, key),
        }
    }

    fn what<'a>(self, key: &'a str, env: &'a str) -> What<'a> {
        match self {
            Kind::Flag => What::Flag { key, env },
            Kind::Segment => What::Segment { key, env },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Flag => "flag",
            Kind::Segment => "segment",
        }
    }
}

/// Writes `doc` (a `kind`) to `env`, expecting it at `version`; a segment that does not
/// exist yet is created. Returns the stored document.
fn write(
    api: &Api,
    env: &str,
    kind: Kind,
    doc: &Value,
    version: Option<u64>,
    reason: Option<&str>,
) -> Result<Value, ApiError> {
    let key = doc["key"].as_str().unwrap_or_default();
    let what = kind.what(key, env);
    let path = kind.path(key, env);
    let version = match version {
        Some(v) => v,
        None => match api.get_versioned(&path, what) {
            Ok((_, v)) => v,
            Err(e) if e.status() == Some(404) && kind == Kind::Segment => {
                let collection = format!("/api/v1/environments/{env}/segments");
                return api.write(Method::POST, &collection, doc, reason, what);
            }
            Err(e) => return Err(e),
        },
    };
    api.put_document(&path, doc, version, reason, what)
}

/// Runs `flag apply -f FILE`.
pub fn apply(ctx: &Ctx, a: ApplyArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let text = if a.file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", a.file.display())))?;
    let kind = Kind::of(&doc)?;
    if !doc["key"].is_string() {
        bail!(CliError::Usage(format!(
            "{} has no `key`: which {} is it?",
            a.file.display(),
            kind.name()
        )));
    }
    let version = doc["version"].as_u64().filter(|v| *v > 0);
    let stored = write(&api, &env, kind, &doc, version, a.reason.as_deref())?;
    done(ctx, &env, kind, &stored)
}

fn done(ctx: &Ctx, env: &str, kind: Kind, stored: &Value) -> anyhow::Result<()> {
    if ctx.json {
        emit_json(stored);
    } else {
        emit(format!(
            "APPLIED {} {} in {env} (version {})",
            kind.name(),
            stored["key"].as_str().unwrap_or_default(),
            stored["version"]
        ));
    }
    Ok(())
}

/// The lines `edit` puts at the top of the file, and takes off again.
const COMMENT: &str = "//";

/// Runs `flag edit KEY`.
pub fn edit(ctx: &Ctx, a: EditArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let kind = if a.segment { Kind::Segment } else { Kind::Flag };
    let path = kind.path(&a.key, &env);
    let (current, version) = api.get_versioned(&path, kind.what(&a.key, &env))?;
    let original = serde_json::to_string_pretty(&current)?;
    let file = std::env::temp_dir().join(format!(
        "flag-edit-{}-{}-{}.json",
        std::process::id(),
        kind.name(),
        a.key
    ));
    let session = Session {
        api: &api,
        env: &env,
        kind,
        file: &file,
        editor: &a.editor,
        reason: a.reason.as_deref(),
    };
    let result = session.run(ctx, &original, version);
    let _ = std::fs::remove_file(&file);
    result
}

/// One `flag edit`: what is edited where, and with which editor.
struct Session<'a> {
    api: &'a Api,
    env: &'a str,
    kind: Kind,
    file: &'a Path,
    editor: &'a str,
    reason: Option<&'a str>,
}

impl Session<'_> {
    fn run(&self, ctx: &Ctx, original: &str, version: u64) -> anyhow::Result<()> {
        let Session {
            api,
            env,
            kind,
            file,
            reason,
            ..
        } = *self;
        let mut text = original.to_owned();
        let mut problems: Vec<String> = Vec::new();
        loop {
            let header: String = problems
                .iter()
                .map(|p| format!("{COMMENT} {p}\n"))
                .collect();
            std::fs::write(file, format!("{header}{text}\n"))
                .with_context(|| format!("writing {}", file.display()))?;
            run_editor(self.editor, file)?;
            let edited: String = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?
                .lines()
                .filter(|l| !l.trim_start().starts_with(COMMENT))
                .collect::<Vec<_>>()
                .join("\n");
            let edited = edited.trim().to_owned();
            if edited == original.trim() {
                emit(format!("no change; nothing written to {env}"));
                return Ok(());
            }
            if !problems.is_empty() && edited == text.trim() {
                bail!(CliError::Usage(format!(
                    "not applied, the {} still has errors: {}",
                    kind.name(),
                    problems.join("; ")
                )));
            }
            text = edited;
            let doc: Value = match serde_json::from_str(&text) {
                Ok(doc) => doc,
                Err(e) => {
                    problems = vec![format!("not JSON: {e}")];
                    eprintln!("flag: the edited file is not JSON ({e}); opening it again");
                    continue;
                }
            };
            match write(api, env, kind, &doc, Some(version), reason) {
                Ok(stored) => {
                    if !ctx.json {
                        let before: Value = serde_json::from_str(original)?;
                        for change in diff::changes(&before, &stored, &["version"]) {
                            emit(format!("  {change}"));
                        }
                    }
                    return done(ctx, env, kind, &stored);
                }
                Err(ApiError::Status {
                    status: 400 | 422,
                    detail,
                    errors,
                    ..
                }) => {
                    problems = if errors.is_empty() {
                        vec![detail]
                    } else {
                        errors
                    };
                    eprintln!(
                        "flag: the server refused the edit ({}); opening it again",
                        problems.join("; ")
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Runs `EDITOR FILE` (a command line: `code --wait` works).
fn run_editor(editor: &str, file: &Path) -> anyhow::Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .with_context(|| format!("starting the editor `{editor}`"))?;
    if !status.success() {
        bail!(CliError::Usage(format!(
            "the editor `{editor}` failed ({status}); nothing written"
        )));
    }
    Ok(())
}
