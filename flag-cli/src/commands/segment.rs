//! `flag segment list|get|create|edit|delete`: the segments of the environment.

use clap::Subcommand;
use flag_sdk::{Clause, Segment, SegmentRule};
use serde_json::Value;

use super::apply::{self, EditArgs};
use super::targeting::parse_clause;
use super::Ctx;
use crate::api::{segment_path, Method, What};
use crate::output::{emit, emit_json, plural, table};

/// `flag segment`.
#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// Every segment of the environment.
    List,
    /// One segment.
    Get {
        /// The segment key.
        key: String,
    },
    /// Create a segment (rules: one per --rule; or `flag apply -f segment.json`).
    #[command(
        after_help = "Example:\n  flag segment create beta-testers --include user-1 --include user-2 --rule 'plan in pro,enterprise'"
    )]
    Create {
        /// The segment key.
        key: String,
        /// A context key that is always a member (repeatable).
        #[arg(long = "include")]
        included: Vec<String>,
        /// A context key that is never a member (repeatable).
        #[arg(long = "exclude")]
        excluded: Vec<String>,
        /// A rule of one clause, as for `flag rule add` (repeatable; any one makes a member).
        #[arg(long = "rule", value_parser = parse_clause)]
        rules: Vec<Clause>,
        /// Why (written to the audit log).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Open `$EDITOR` on the segment and apply it with If-Match.
    Edit {
        /// The segment key.
        key: String,
        /// Why (written to the audit log).
        #[arg(long, short)]
        reason: Option<String>,
        /// The editor: a command line, run with the file's path.
        #[arg(long, env = "EDITOR", default_value = "vi")]
        editor: String,
    },
    /// Delete a segment (refused while a flag or segment uses it; the answer names them).
    Delete {
        /// The segment key.
        key: String,
        /// Why (written to the audit log).
        #[arg(long, short)]
        reason: Option<String>,
    },
}

/// Runs `flag segment ...`.
pub fn run(ctx: &Ctx, command: SegmentCommand) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    match command {
        SegmentCommand::List => {
            let path = format!("/api/v1/environments/{env}/segments");
            let raw: Value = api.get(&path, What::Environment(&env))?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            let segments: Vec<Segment> = serde_json::from_value(raw)?;
            let rows: Vec<Vec<String>> = segments
                .iter()
                .map(|s| {
                    vec![
                        s.key.clone(),
                        s.version.to_string(),
                        s.included.len().to_string(),
                        s.excluded.len().to_string(),
                        s.rules.len().to_string(),
                    ]
                })
                .collect();
            emit(table(
                &["KEY", "VERSION", "INCLUDED", "EXCLUDED", "RULES"],
                &rows,
            ));
        }
        SegmentCommand::Get { key } => {
            let (segment, version) = api.segment(&env, &key)?;
            if ctx.json {
                emit_json(&segment);
                return Ok(());
            }
            emit(format!("{} in {env}, version {version}", segment.key));
            emit(format!("  included: {}", segment.included.join(", ")));
            emit(format!("  excluded: {}", segment.excluded.join(", ")));
            for (i, r) in segment.rules.iter().enumerate() {
                emit(format!(
                    "  rule #{i}: {}",
                    plural(r.clauses.len(), "clause")
                ));
            }
        }
        SegmentCommand::Create {
            key,
            included,
            excluded,
            rules,
            reason,
        } => {
            let segment = Segment {
                key,
                version: 0,
                included,
                excluded,
                rules: rules
                    .into_iter()
                    .map(|c| SegmentRule { clauses: vec![c] })
                    .collect(),
            };
            let stored: Value = api.write(
                Method::POST,
                &format!("/api/v1/environments/{env}/segments"),
                &segment,
                reason.as_deref(),
                What::Segment {
                    key: &segment.key,
                    env: &env,
                },
            )?;
            if ctx.json {
                emit_json(&stored);
            } else {
                emit(format!("CREATED segment {} in {env}", segment.key));
            }
        }
        SegmentCommand::Edit {
            key,
            reason,
            editor,
        } => {
            return apply::edit(
                ctx,
                EditArgs {
                    key,
                    segment: true,
                    reason,
                    editor,
                },
            )
        }
        SegmentCommand::Delete { key, reason } => {
            let what = What::Segment {
                key: &key,
                env: &env,
            };
            api.delete_because(&segment_path(&env, &key), reason.as_deref(), what)?;
            if !ctx.json {
                emit(format!("DELETED segment {key} in {env}"));
            }
        }
    }
    Ok(())
}
