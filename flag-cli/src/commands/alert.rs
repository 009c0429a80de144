//! `flag alert bind|list|unbind`: which Alertmanager alerts act on which flag, and how
//! (`/api/v1/integrations/alertmanager/bindings`).

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::api::What;
use crate::output::{emit, emit_json, table};

/// `flag alert ...`.
#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Bind alerts to a flag: when one fires, the flag is killed (or its release paused or
    /// rolled back) in the environment.
    #[command(
        after_help = "Examples:\n  flag alert bind new-checkout --match alertname=CheckoutErrors --on-resolved restore\n  flag alert bind --flag-label flag --env-label environment --match severity=page\n  flag alert bind new-checkout --match 'alertname=~Checkout.*' --action pause_release\n\nAlertmanager posts to POST /api/v1/integrations/alertmanager with an integration token\n(`flag token create --kind integration --name alertmanager`)."
    )]
    Bind {
        /// The flag (or take it from each alert's label with --flag-label).
        #[arg(required_unless_present = "flag_label", conflicts_with = "flag_label")]
        key: Option<String>,
        /// `LABEL=VALUE` (equal) or `LABEL=~REGEX` (anchored); repeat for several, all must hold.
        #[arg(long = "match", value_name = "LABEL=VALUE", required = true)]
        matchers: Vec<String>,
        /// Take the flag from this label of each alert (e.g. `flag`).
        #[arg(long, value_name = "LABEL")]
        flag_label: Option<String>,
        /// Take the environment from this label of each alert instead of --env.
        #[arg(long, value_name = "LABEL")]
        env_label: Option<String>,
        /// What a firing alert does.
        #[arg(long, default_value = "kill", value_parser = ["kill", "pause_release", "rollback_release"])]
        action: String,
        /// What its resolution does: `restore` undoes the kill (or resumes the release)
        /// unless someone changed the flag since.
        #[arg(long, default_value = "nothing", value_parser = ["nothing", "restore"])]
        on_resolved: String,
    },
    /// List the bindings.
    #[command(after_help = "Example:\n  flag alert list")]
    List,
    /// Delete a binding: its alerts no longer act.
    #[command(after_help = "Example:\n  flag alert unbind 3")]
    Unbind {
        /// The binding's id (from `flag alert list`).
        id: i64,
    },
}

/// `LABEL=VALUE` → (label, "VALUE"); `LABEL=~REGEX` → (label, {"regex": REGEX}).
fn matcher(text: &str) -> anyhow::Result<(String, Value)> {
    let (label, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--match `{text}`: write LABEL=VALUE or LABEL=~REGEX"))?;
    let value = match value.strip_prefix('~') {
        Some(regex) => json!({ "regex": regex }),
        None => json!(value),
    };
    Ok((label.trim().to_owned(), value))
}

/// A binding's flag or environment as the table shows it: the key, or `label:NAME`.
fn target(value: &Value) -> String {
    match value {
        Value::String(key) => key.clone(),
        other => format!(
            "label:{}",
            other.get("label").and_then(Value::as_str).unwrap_or("?")
        ),
    }
}

fn matchers_text(value: &Value) -> String {
    let Some(map) = value.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(label, m)| match m {
            Value::String(v) => format!("{label}={v}"),
            other => format!(
                "{label}=~{}",
                other.get("regex").and_then(Value::as_str).unwrap_or("")
            ),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `flag alert ...`.
pub fn run(ctx: &Ctx, c: AlertCommand) -> anyhow::Result<()> {
    const BINDINGS: &str = "/api/v1/integrations/alertmanager/bindings";
    let (api, env) = ctx.api()?;
    match c {
        AlertCommand::Bind {
            key,
            matchers,
            flag_label,
            env_label,
            action,
            on_resolved,
        } => {
            let mut map = Map::new();
            for m in &matchers {
                let (label, value) = matcher(m)?;
                map.insert(label, value);
            }
            let flag = match (key, flag_label) {
                (_, Some(label)) => json!({ "label": label }),
                (Some(key), None) => json!(key),
                (None, None) => unreachable!("clap requires one"),
            };
            let environment = match env_label {
                Some(label) => json!({ "label": label }),
                None => json!(env),
            };
            let body = json!({
                "matchers": map, "flag": flag, "environment": environment,
                "action": action, "on_resolved": on_resolved,
            });
            let raw: Value = api.post(BINDINGS, &body, What::Environment(&env))?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            emit(format!(
                "BOUND {}: alerts {{{}}} → {} {} in {} (on resolved: {})",
                raw["id"],
                matchers_text(&raw["matchers"]),
                action,
                target(&raw["flag"]),
                target(&raw["environment"]),
                on_resolved
            ));
        }
        AlertCommand::List => {
            let raw: Value = api.get(BINDINGS, What::Other)?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = raw
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    vec![
                        b["id"].to_string(),
                        matchers_text(&b["matchers"]),
                        target(&b["flag"]),
                        target(&b["environment"]),
                        b["action"].as_str().unwrap_or_default().to_owned(),
                        b["on_resolved"].as_str().unwrap_or_default().to_owned(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                emit("no alert bindings");
            } else {
                emit(table(
                    &["ID", "MATCHERS", "FLAG", "ENV", "ACTION", "ON RESOLVED"],
                    &rows,
                ));
            }
        }
        AlertCommand::Unbind { id } => {
            api.delete(&format!("{BINDINGS}/{id}"), What::Other)?;
            if ctx.json {
                emit_json(&json!({ "unbound": id }));
            } else {
                emit(format!("UNBOUND {id}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_read_as_equal_or_regex() {
        assert_eq!(
            matcher("alertname=CheckoutErrors").unwrap(),
            ("alertname".into(), json!("CheckoutErrors"))
        );
        assert_eq!(
            matcher("alertname=~Checkout.*").unwrap(),
            ("alertname".into(), json!({"regex": "Checkout.*"}))
        );
        assert!(matcher("alertname").is_err());
    }
}
