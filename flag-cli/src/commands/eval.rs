//! `flag eval KEY`: which variation each context gets and why, one JSON object per line:
//! `{"flag", "context_key", "value", "variation", "reason"}`. With `--snapshot FILE` it
//! evaluates offline with the SDK's own evaluator; otherwise it asks the server's evaluate
//! endpoint of the environment. Both give the same answer for the same snapshot.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use flag_sdk::{CompiledSnapshot, Context, ErrorKind, Reason, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Ctx;
use crate::api::What;
use crate::error::CliError;
use crate::output::emit_json_line;

/// `flag eval` help.
pub const HELP: &str = "\
Prints one JSON object per context, in input order:
  {\"flag\": KEY, \"context_key\": ..., \"value\": ..., \"variation\": ..., \"reason\": {...}}
A context is a JSON object with a string \"key\" and any attributes. --contexts reads one
context per line (JSON Lines; blank lines are skipped; `-` reads stdin).
Exits 3 (after printing) when the flag is not in the snapshot or environment.

Examples:
  flag eval new-checkout --context '{\"key\": \"user-1\", \"country\": \"NL\"}'
  flag eval new-checkout --snapshot snapshot.json --contexts users.jsonl
  curl -s -H \"Authorization: Bearer $SDK_TOKEN\" $FLAG_SERVER_URL/sdk/v1/snapshot > snapshot.json";

/// `flag eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The flag key.
    pub key: String,
    /// One context as a JSON object.
    #[arg(
        long,
        conflicts_with = "contexts",
        required_unless_present = "contexts"
    )]
    pub context: Option<String>,
    /// A JSON Lines file of contexts (`-` for stdin).
    #[arg(long)]
    pub contexts: Option<PathBuf>,
    /// Evaluate offline against this snapshot file (contract section 2) instead of the server.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
}

/// One output line, fields in the documented order.
#[derive(Serialize)]
struct Line<'a, R: Serialize> {
    flag: &'a str,
    context_key: Option<&'a str>,
    value: Option<&'a Value>,
    variation: Option<&'a str>,
    reason: R,
}

/// One flag's answer from `POST /environments/{env}/evaluate`.
#[derive(Deserialize)]
struct ServerResult {
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    variation: Option<String>,
    reason: Reason<'static>,
}

impl Default for ServerResult {
    fn default() -> Self {
        ServerResult {
            value: None,
            variation: None,
            reason: Reason::Error {
                error: ErrorKind::FlagNotFound,
            },
        }
    }
}

/// Runs `flag eval`.
pub fn run(ctx: &Ctx, a: EvalArgs) -> anyhow::Result<()> {
    let contexts = read_contexts(a.context.as_deref(), a.contexts.as_deref())?;
    let found = match &a.snapshot {
        Some(path) => offline(path, &a.key, &contexts)?,
        None => online(ctx, &a.key, &contexts)?,
    };
    if !found {
        let place = match &a.snapshot {
            Some(p) => format!("the snapshot {}", p.display()),
            None => "the environment".to_owned(),
        };
        bail!(CliError::NotFound(format!(
            "flag `{}` is not in {place}; the default applies (reason FLAG_NOT_FOUND)",
            a.key
        )));
    }
    Ok(())
}

/// Contexts from `--context` or the lines of `--contexts`, each checked to be a context.
fn read_contexts(one: Option<&str>, file: Option<&Path>) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    if let Some(text) = one {
        out.push(parse_context(text).context("--context")?);
        return Ok(out);
    }
    let Some(path) = file else {
        bail!(CliError::Usage(
            "give --context JSON or --contexts FILE.jsonl".into()
        ));
    };
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            parse_context(&line).with_context(|| format!("{} line {}", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

fn parse_context(text: &str) -> anyhow::Result<Value> {
    let value: Value = serde_json::from_str(text).context("not JSON")?;
    Context::from_json(value.clone()).map_err(|e| {
        anyhow::anyhow!("not a context ({e}); it needs a JSON object with a string \"key\"")
    })?;
    Ok(value)
}

/// Offline: the SDK's evaluator over a snapshot file. `false` when the flag is missing.
fn offline(path: &Path, key: &str, contexts: &[Value]) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the snapshot {}", path.display()))?;
    let snapshot: Snapshot = serde_json::from_str(&text).with_context(|| {
        format!(
            "the snapshot {} is not a snapshot (contract section 2)",
            path.display()
        )
    })?;
    flag_sdk::validate::validate_snapshot(&snapshot)
        .with_context(|| format!("the snapshot {} is invalid", path.display()))?;
    let compiled = CompiledSnapshot::new(snapshot);
    let found = compiled.contains(key);
    for value in contexts {
        let context = Context::from_json(value.clone())?;
        let e = compiled.evaluate(key, &context);
        emit_json_line(&Line {
            flag: key,
            context_key: Some(context.key()),
            value: e.value,
            variation: e.variation,
            reason: &e.reason,
        });
    }
    Ok(found)
}

/// Online: `POST /environments/{env}/evaluate`, one request per context.
fn online(ctx: &Ctx, key: &str, contexts: &[Value]) -> anyhow::Result<bool> {
    let (api, env) = ctx.api()?;
    let path = format!("/api/v1/environments/{env}/evaluate");
    let mut found = true;
    for context in contexts {
        let answer: Value = api.post(
            &path,
            &json!({ "context": context, "flags": [key] }),
            What::Environment(&env),
        )?;
        let result: ServerResult = answer
            .get("results")
            .and_then(|r| r.get(key))
            .map(|r| serde_json::from_value(r.clone()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("unexpected answer from the evaluate endpoint: {e}"))?
            .unwrap_or_default();
        if result.reason
            == (Reason::Error {
                error: ErrorKind::FlagNotFound,
            })
        {
            found = false;
        }
        emit_json_line(&Line {
            flag: key,
            context_key: context.get("key").and_then(Value::as_str),
            value: result.value.as_ref(),
            variation: result.variation.as_deref(),
            reason: &result.reason,
        });
    }
    Ok(found)
}
