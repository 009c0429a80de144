//! `flag token create|list|revoke`.

use clap::Subcommand;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::What;
use crate::output::{emit, emit_json, table};

/// `flag token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    #[command(
        after_help = "Examples:\n  flag token create --kind sdk --name checkout-service --env production\n  flag token create --kind client --name web --env production --origin https://app.example.com\n  flag token create --name alice --scope write --env staging\n  flag token create --kind admin --name auditor --scope read\n  flag token create --kind integration --name alertmanager"
    )]
    Create {
        /// `admin`, `sdk`, `client` (OFREP only, for code on users' devices), or
        /// `integration` (Alertmanager's webhook only).
        #[arg(long, default_value = "admin", value_parser = ["admin", "sdk", "client", "integration"])]
        kind: String,
        /// What an admin token may do: `read` (no changes), `write` (flags and segments of
        /// --env only), `admin` (everything).
        #[arg(long, value_parser = ["read", "write", "admin"])]
        scope: Option<String>,
        /// A name for the audit log.
        #[arg(long)]
        name: String,
        /// A browser origin a client token answers (CORS), e.g. `https://app.example.com`;
        /// repeat for several. Required for `--kind client`.
        #[arg(long = "origin", value_name = "ORIGIN")]
        origins: Vec<String>,
    },
    /// List tokens (never their secrets).
    #[command(after_help = "Example:\n  flag token list")]
    List,
    /// Revoke a token at once.
    #[command(after_help = "Example:\n  flag token revoke 3")]
    Revoke {
        /// The token id (from `flag token list`).
        id: i64,
    },
}

#[derive(Debug, Deserialize)]
struct TokenInfo {
    id: i64,
    kind: String,
    #[serde(default)]
    environment: Option<String>,
    name: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    environments: Option<Vec<String>>,
}

/// Runs `flag token ...`.
pub fn run(ctx: &Ctx, c: TokenCommand) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    match c {
        TokenCommand::Create {
            kind,
            scope,
            name,
            origins,
        } => {
            let mut body = json!({ "kind": kind, "name": name });
            let bound = kind == "sdk" || kind == "client";
            if bound {
                body["environment"] = json!(env);
            }
            if let Some(scope) = &scope {
                body["scope"] = json!(scope);
                if scope == "write" {
                    body["environments"] = json!([env]);
                }
            }
            if !origins.is_empty() {
                body["origins"] = json!(origins);
            }
            let raw: Value = api.post("/api/v1/tokens", &body, What::Environment(&env))?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            let id = raw.get("id").cloned().unwrap_or_default();
            let secret = raw.get("token").and_then(Value::as_str).unwrap_or_default();
            let scope = match (kind.as_str(), scope.as_deref()) {
                ("admin", Some("write")) => format!(" (scope write, for {env})"),
                ("admin", Some(scope)) => format!(" (scope {scope})"),
                _ if bound => format!(" for {env}"),
                _ => String::new(),
            };
            emit(format!(
                "CREATED {kind} token {id} `{name}`{scope}; the secret is shown only now:"
            ));
            emit(secret);
        }
        TokenCommand::List => {
            let raw: Value = api.get("/api/v1/tokens", What::Other)?;
            if ctx.json {
                emit_json(&raw);
                return Ok(());
            }
            let tokens: Vec<TokenInfo> = serde_json::from_value(raw)?;
            let rows: Vec<Vec<String>> = tokens
                .into_iter()
                .map(|t| {
                    let scope = match (t.scope, t.environments) {
                        (Some(scope), Some(envs)) => format!("{scope} ({})", envs.join(", ")),
                        (Some(scope), None) => scope,
                        (None, _) => "-".into(),
                    };
                    vec![
                        t.id.to_string(),
                        t.kind,
                        t.environment.unwrap_or_else(|| "-".into()),
                        t.name,
                        scope,
                        t.created_at,
                    ]
                })
                .collect();
            emit(table(
                &["ID", "KIND", "ENV", "NAME", "SCOPE", "CREATED"],
                &rows,
            ));
        }
        TokenCommand::Revoke { id } => {
            let id_text = id.to_string();
            api.delete(&format!("/api/v1/tokens/{id}"), What::Token(&id_text))?;
            if ctx.json {
                emit_json(&json!({ "revoked": id }));
            } else {
                emit(format!("REVOKED token {id}"));
            }
        }
    }
    Ok(())
}
