//! `flag target` (individual context keys) and `flag rule` (targeting rules with clauses):
//! each change is a read-modify-write of the flag's configuration with `If-Match`.

use anyhow::bail;
use clap::{Args, Subcommand};
use flag_sdk::model::TOTAL_WEIGHT;
use flag_sdk::{Clause, Flag, Op, Rollout, Rule, Serve, Target, WeightedVariation};
use serde_json::Value;

use super::flags::report;
use super::rmw::{self, Percent, Remote};
use super::Ctx;
use crate::error::CliError;
use crate::output::{self, emit, emit_json, table};

/// `flag rule add` help.
pub const RULE_HELP: &str = "\
A clause is `ATTRIBUTE OP VALUE[,VALUE...]`, `ATTRIBUTE not OP VALUES` to negate it, or the
clause as JSON. Values that read as JSON numbers or booleans are those; the rest are strings
(use the JSON form for the string \"42\"). Operators: in, starts_with, ends_with, contains,
matches, lt, lte, gt, gte, before, after, semver_eq, semver_lt, semver_gt, in_segment.
--serve is a variation key, or a rollout as VARIATION=PERCENT,... summing to 100.

Examples:
  flag rule add new-checkout --id benelux --clause 'country in NL,BE' --serve on
  flag rule add new-checkout --clause 'plan not in free' --clause 'app_version semver_gt 2.1.0' --serve on=25,off=75
  flag rule add new-checkout --clause 'key in_segment beta-testers' --serve on --position 0
  flag rule list new-checkout
  flag rule remove new-checkout benelux";

/// `flag target`.
#[derive(Debug, Subcommand)]
pub enum TargetCommand {
    /// Serve VARIATION to these context keys (moved from any other variation's list).
    Add {
        /// The flag key.
        key: String,
        /// The variation they get.
        variation: String,
        /// The context keys.
        #[arg(required = true)]
        contexts: Vec<String>,
        /// Why (written to the audit log).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// Stop targeting these context keys individually.
    Remove {
        /// The flag key.
        key: String,
        /// The context keys.
        #[arg(required = true)]
        contexts: Vec<String>,
        /// Why (written to the audit log).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// The individual targets of the flag.
    List {
        /// The flag key.
        key: String,
    },
}

/// `flag rule`.
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule (last, or at --position).
    #[command(after_help = RULE_HELP)]
    Add(RuleAddArgs),
    /// Remove a rule by its id or its index.
    Remove {
        /// The flag key.
        key: String,
        /// The rule's id, or its index (0 is the first).
        rule: String,
        /// Why (written to the audit log).
        #[arg(long, short)]
        reason: Option<String>,
    },
    /// The rules of the flag, in evaluation order.
    List {
        /// The flag key.
        key: String,
    },
}

/// `flag rule add`.
#[derive(Debug, Args)]
pub struct RuleAddArgs {
    /// The flag key.
    pub key: String,
    /// A stable id for the rule (reported in evaluation reasons).
    #[arg(long)]
    pub id: Option<String>,
    /// A clause (repeatable; all must match).
    #[arg(long = "clause", required = true, value_parser = parse_clause)]
    pub clauses: Vec<Clause>,
    /// What matching contexts get: a variation, or VARIATION=PERCENT,...
    #[arg(long)]
    pub serve: String,
    /// Where the rule goes (0 is first) [default: last].
    #[arg(long)]
    pub position: Option<usize>,
    /// Why (written to the audit log).
    #[arg(long, short)]
    pub reason: Option<String>,
}

/// Parses `ATTRIBUTE [not] OP VALUE[,VALUE...]` or a clause as JSON.
pub fn parse_clause(s: &str) -> Result<Clause, String> {
    let text = s.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("not a clause as JSON: {e}"));
    }
    let mut parts = text.splitn(3, char::is_whitespace);
    let (Some(attribute), Some(mut op), Some(mut rest)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "`{s}` is not `ATTRIBUTE OP VALUE[,VALUE...]` (e.g. `country in NL,BE`)"
        ));
    };
    let negate = op == "not";
    if negate {
        let mut more = rest.trim_start().splitn(2, char::is_whitespace);
        op = more.next().unwrap_or_default();
        rest = more.next().unwrap_or_default();
    }
    let op = Op::from_name(op);
    if let Op::Unknown(name) = &op {
        let known: Vec<&str> = Op::KNOWN.iter().map(Op::as_str).collect();
        return Err(format!(
            "unknown operator `{name}`; one of: {}",
            known.join(", ")
        ));
    }
    let values: Vec<Value> = rest
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| match serde_json::from_str::<Value>(v) {
            Ok(n @ (Value::Number(_) | Value::Bool(_))) => n,
            _ => Value::String(v.to_owned()),
        })
        .collect();
    if values.is_empty() {
        return Err(format!("`{s}` has no values"));
    }
    Ok(Clause {
        attribute: attribute.to_owned(),
        op,
        values,
        negate,
    })
}

/// Parses `--serve`: `on`, or `on=25,off=75`.
fn parse_serve(flag: &Flag, s: &str) -> anyhow::Result<Serve> {
    let known = |v: &str| flag.variations.iter().any(|x| x.key == v);
    let unknown = |v: &str| {
        let keys: Vec<&str> = flag.variations.iter().map(|x| x.key.as_str()).collect();
        CliError::Usage(format!(
            "flag `{}` has no variation `{v}` (it has: {})",
            flag.key,
            keys.join(", ")
        ))
    };
    if !s.contains('=') {
        if !known(s) {
            bail!(unknown(s));
        }
        return Ok(Serve::Variation(s.to_owned()));
    }
    let mut weights = Vec::new();
    for part in s.split(',') {
        let (variation, percent) = part
            .split_once('=')
            .ok_or_else(|| CliError::Usage(format!("`{part}` is not VARIATION=PERCENT")))?;
        if !known(variation) {
            bail!(unknown(variation));
        }
        let Percent(weight) = percent.parse().map_err(CliError::Usage)?;
        weights.push(WeightedVariation {
            variation: variation.to_owned(),
            weight,
        });
    }
    let sum: u32 = weights.iter().map(|w| w.weight).sum();
    if sum != TOTAL_WEIGHT {
        bail!(CliError::Usage(format!(
            "the percentages of --serve add up to {}, not 100%",
            output::percent(sum)
        )));
    }
    Ok(Serve::Rollout(Rollout {
        bucket_by: "key".to_owned(),
        salt: None,
        weights,
    }))
}

/// Runs `flag target ...`.
pub fn target(ctx: &Ctx, command: TargetCommand) -> anyhow::Result<()> {
    match command {
        TargetCommand::List { key } => {
            let (api, env) = ctx.api()?;
            let flag = api.flag_config(&key, &env)?.flag;
            if ctx.json {
                emit_json(&flag.targets);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = flag
                .targets
                .iter()
                .flat_map(|t| t.keys.iter().map(|k| vec![k.clone(), t.variation.clone()]))
                .collect();
            emit(table(&["CONTEXT KEY", "VARIATION"], &rows));
            Ok(())
        }
        TargetCommand::Add {
            key,
            variation,
            contexts,
            reason,
        } => change(ctx, &key, reason.as_deref(), "TARGETED", &|f| {
            if !f.variations.iter().any(|v| v.key == variation) {
                bail!(CliError::Usage(format!(
                    "flag `{}` has no variation `{variation}`",
                    f.key
                )));
            }
            untarget(f, &contexts);
            match f.targets.iter_mut().find(|t| t.variation == variation) {
                Some(t) => t.keys.extend(contexts.iter().cloned()),
                None => f.targets.push(Target {
                    variation: variation.clone(),
                    keys: contexts.clone(),
                }),
            }
            Ok(())
        }),
        TargetCommand::Remove {
            key,
            contexts,
            reason,
        } => change(ctx, &key, reason.as_deref(), "UNTARGETED", &|f| {
            untarget(f, &contexts);
            Ok(())
        }),
    }
}

/// Takes `contexts` out of every target list, dropping lists left empty.
fn untarget(flag: &mut Flag, contexts: &[String]) {
    for t in &mut flag.targets {
        t.keys.retain(|k| !contexts.contains(k));
    }
    flag.targets.retain(|t| !t.keys.is_empty());
}

/// Runs `flag rule ...`.
pub fn rule(ctx: &Ctx, command: RuleCommand) -> anyhow::Result<()> {
    match command {
        RuleCommand::List { key } => {
            let (api, env) = ctx.api()?;
            let flag = api.flag_config(&key, &env)?.flag;
            if ctx.json {
                emit_json(&flag.rules);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = flag
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let clauses: Vec<String> = r.clauses.iter().map(clause_text).collect();
                    vec![
                        i.to_string(),
                        r.id.clone().unwrap_or_default(),
                        clauses.join(" AND "),
                        output::serve(&r.serve),
                    ]
                })
                .collect();
            emit(table(&["#", "ID", "WHEN", "SERVE"], &rows));
            Ok(())
        }
        RuleCommand::Add(a) => change(ctx, &a.key, a.reason.as_deref(), "RULE ADDED", &|f| {
            let serve = parse_serve(f, &a.serve)?;
            let rule = Rule {
                id: a.id.clone(),
                clauses: a.clauses.clone(),
                serve,
            };
            let at = a.position.unwrap_or(f.rules.len()).min(f.rules.len());
            f.rules.insert(at, rule);
            Ok(())
        }),
        RuleCommand::Remove { key, rule, reason } => {
            change(ctx, &key, reason.as_deref(), "RULE REMOVED", &|f| {
                let at = f
                    .rules
                    .iter()
                    .position(|r| r.id.as_deref() == Some(rule.as_str()))
                    .or_else(|| rule.parse().ok().filter(|i| *i < f.rules.len()));
                let Some(at) = at else {
                    bail!(CliError::NotFound(format!(
                        "flag `{}` has no rule `{rule}` (`flag rule list {}`)",
                        f.key, f.key
                    )));
                };
                f.rules.remove(at);
                Ok(())
            })
        }
    }
}

/// A clause as `rule list` shows it: `country in NL, BE`.
fn clause_text(c: &Clause) -> String {
    let values: Vec<String> = c
        .values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let not = if c.negate { "not " } else { "" };
    format!(
        "{} {not}{} {}",
        c.attribute,
        c.op.as_str(),
        values.join(", ")
    )
}

fn change(
    ctx: &Ctx,
    key: &str,
    reason: Option<&str>,
    verb: &str,
    edit: &dyn Fn(&mut Flag) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let store = Remote {
        api: &api,
        key,
        env: &env,
        reason,
    };
    let c = rmw::read_modify_write(&store, edit)?;
    report(ctx, &env, &c, verb);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn clauses_read_as_written() {
        let c = parse_clause("country in NL,BE").unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"attribute": "country", "op": "in", "values": ["NL", "BE"]})
        );
        let c = parse_clause("age not gte 18").unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"attribute": "age", "op": "gte", "values": [18], "negate": true})
        );
        let c = parse_clause(r#"{"attribute": "id", "op": "in", "values": ["42"]}"#).unwrap();
        assert_eq!(c.values, [json!("42")]);
        assert!(parse_clause("country equals NL")
            .unwrap_err()
            .contains("semver_gt"));
        assert!(parse_clause("country in").is_err());
    }
}
