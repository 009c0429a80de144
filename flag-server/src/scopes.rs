//! What each admin token scope may do (`read`, `write` for a list of environments, `admin`),
//! decided from the route alone: the one table of which operation needs which scope. The
//! [`crate::auth::AdminToken`] extractor applies it before any handler runs, so a refused
//! request changes nothing; a refusal is a 403 naming the scope it needs
//! (`"required_scope"` in the problem).
//!
//! Knows routes and tokens; nothing of the store or the handlers.

use actix_web::http::Method;

use crate::error::ApiError;
use crate::store::tokens::Scope;

/// What an operation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Reading (any scope).
    Read,
    /// Changing flags or segments of one environment.
    Write(String),
    /// Changing what every environment holds (a flag's definition): `write` on all of them.
    WriteEverywhere,
    /// Changing something of one environment named by the resource itself (a change
    /// request): `write` on some environment here; the handler checks which.
    WriteSomewhere,
    /// Tokens, environments, webhooks and anything not listed.
    Admin,
}

/// The need of `method` on the route `pattern` (as actix matched it, e.g.
/// `/api/v1/flags/{key}/environments/{env}`), `env` being the path's `{env}`.
pub fn needed(method: &Method, pattern: &str, env: Option<&str>) -> Need {
    if method == Method::GET || method == Method::HEAD || pattern.ends_with("/evaluate") {
        return Need::Read;
    }
    match (pattern, env) {
        ("/api/v1/environments/{env}", _) => Need::Admin,
        (_, Some(env)) => Need::Write(env.to_owned()),
        ("/api/v1/flags" | "/api/v1/flags/{key}" | "/api/v1/flags/{key}/unarchive", None) => {
            Need::WriteEverywhere
        }
        (p, None) if p.starts_with("/api/v1/change-requests/") => Need::WriteSomewhere,
        _ => Need::Admin,
    }
}

/// Whether a token of `scope` (with `own` environments when `write`) may do what `need`
/// says, `environments` being every environment there is; the refusal names the scope needed.
pub fn check(
    scope: Scope,
    own: &[String],
    need: &Need,
    environments: &[String],
) -> Result<(), ApiError> {
    let refuse = |required: Scope, detail: String| Err(ApiError::Scope { required, detail });
    match (scope, need) {
        (Scope::Admin, _) | (_, Need::Read) => Ok(()),
        (Scope::Read, Need::Admin) | (Scope::Write, Need::Admin) => refuse(
            Scope::Admin,
            format!(
                "this needs an `admin` token; this one has scope `{}`",
                scope.as_str()
            ),
        ),
        (Scope::Read, _) => refuse(
            Scope::Write,
            "this token has scope `read`: it reads everything and changes nothing; a change needs a `write` token for the environment".into(),
        ),
        (Scope::Write, Need::Write(env)) if !own.contains(env) => refuse(
            Scope::Write,
            format!(
                "this token may change {} only; `{env}` needs a `write` token for it (or `admin`)",
                listed(own)
            ),
        ),
        (Scope::Write, Need::WriteEverywhere) => {
            match environments.iter().find(|e| !own.contains(e)) {
                Some(missing) => refuse(
                    Scope::Write,
                    format!(
                        "a flag's definition is the same in every environment: this needs `write` on all of them; this token lacks `{missing}`"
                    ),
                ),
                None => Ok(()),
            }
        }
        (Scope::Write, _) => Ok(()),
    }
}

/// Whether a token of `scope` may change flags and segments of `env`.
pub fn may_write(scope: Scope, own: &[String], env: &str) -> Result<(), ApiError> {
    check(scope, own, &Need::Write(env.to_owned()), &[])
}

fn listed(envs: &[String]) -> String {
    let names: Vec<String> = envs.iter().map(|e| format!("`{e}`")).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_needs() {
        let post = Method::POST;
        assert_eq!(needed(&Method::GET, "/api/v1/tokens", None), Need::Read);
        assert_eq!(
            needed(&post, "/api/v1/environments/{env}/evaluate", Some("p")),
            Need::Read
        );
        assert_eq!(needed(&post, "/api/v1/tokens", None), Need::Admin);
        assert_eq!(
            needed(&Method::PATCH, "/api/v1/environments/{env}", Some("p")),
            Need::Admin
        );
        assert_eq!(
            needed(
                &Method::PUT,
                "/api/v1/flags/{key}/environments/{env}",
                Some("p")
            ),
            Need::Write("p".into())
        );
        assert_eq!(needed(&post, "/api/v1/flags", None), Need::WriteEverywhere);
        assert_eq!(needed(&post, "/api/v1/something/new", None), Need::Admin);
    }

    #[test]
    fn write_tokens_change_their_environments_only() {
        let own = vec!["staging".to_owned()];
        let all = vec!["production".to_owned(), "staging".to_owned()];
        let write = |env: &str| Need::Write(env.into());
        assert!(check(Scope::Write, &own, &write("staging"), &all).is_ok());
        let refused = check(Scope::Write, &own, &write("production"), &all).unwrap_err();
        assert!(matches!(
            refused,
            ApiError::Scope {
                required: Scope::Write,
                ..
            }
        ));
        assert!(check(Scope::Write, &own, &Need::WriteEverywhere, &all).is_err());
        assert!(check(Scope::Write, &all, &Need::WriteEverywhere, &all).is_ok());
        assert!(matches!(
            check(Scope::Read, &[], &write("staging"), &all),
            Err(ApiError::Scope {
                required: Scope::Write,
                ..
            })
        ));
        assert!(matches!(
            check(Scope::Write, &own, &Need::Admin, &all),
            Err(ApiError::Scope {
                required: Scope::Admin,
                ..
            })
        ));
    }
}
