//! Tokens: `POST /api/v1/tokens` (the secret is in this answer only), `GET /api/v1/tokens`,
//! `DELETE /api/v1/tokens/{id}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::method_not_allowed;
use super::Body;
use crate::auth::{hash, new_secret, AdminToken};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::store::tokens::{self, Scope, TokenInfo, TokenKind};

/// The most origins a client token lists.
pub const MAX_ORIGINS: usize = 50;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/tokens")
            .get(list)
            .post(create)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/tokens/{id}")
            .delete(revoke)
            .default_service(web::to(method_not_allowed)),
    );
}

/// `POST /tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// `admin`, `sdk`, `client` (OFREP only, for code on users' devices) or `integration`
    /// (Alertmanager's webhook only: `POST /api/v1/integrations/alertmanager`).
    #[schema(example = "sdk")]
    pub kind: String,
    /// The environment an SDK or client token reads (required for both, absent for `admin`).
    pub environment: Option<String>,
    /// A name for the audit log, 1 to 100 characters.
    pub name: String,
    /// The browser origins a client token answers, e.g. `https://app.example.com` (scheme,
    /// host and port only; CORS answers exactly these). Only for `client` tokens.
    pub origins: Option<Vec<String>>,
    /// What an admin token may do: `read`, `write` (with `environments`) or `admin` (the
    /// default). Only for `admin` tokens.
    #[schema(example = "write")]
    pub scope: Option<String>,
    /// The environments a `write` token may change (1 or more). Only with `"scope": "write"`.
    pub environments: Option<Vec<String>>,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token's id.
    pub id: i64,
    /// Admin, SDK or client.
    pub kind: TokenKind,
    /// The environment of an SDK or client token.
    pub environment: Option<String>,
    /// Its name.
    pub name: String,
    /// A client token's browser origins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    /// What an admin token may do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The environments a `write` token may change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
    /// The secret (64 hex characters): send as `Authorization: Bearer <token>`.
    pub token: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// Creates a token and answers its secret, once.
#[utoipa::path(post, operation_id = "create_token", path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    admin: AdminToken,
    body: Body<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let NewToken {
        kind,
        environment,
        name,
        origins,
        scope,
        environments,
    } = body.into_inner();
    let kind = TokenKind::parse(&kind).ok_or_else(|| {
        ApiError::invalid("kind", "must be `admin`, `sdk`, `client` or `integration`")
    })?;
    match (kind, &environment) {
        (TokenKind::Sdk | TokenKind::Client, None) => {
            return Err(ApiError::invalid(
                "environment",
                format!(
                    "a{} {} token is bound to one environment",
                    if kind == TokenKind::Sdk { "n" } else { "" },
                    if kind == TokenKind::Sdk {
                        "SDK"
                    } else {
                        "client"
                    }
                ),
            ))
        }
        (TokenKind::Admin | TokenKind::Integration, Some(_)) => {
            return Err(ApiError::invalid(
                "environment",
                format!("an {} token is not bound to an environment", kind.as_str()),
            ))
        }
        _ => {}
    }
    if name.trim().is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    let origins = match (kind, origins) {
        (TokenKind::Client, origins) => check_origins(origins.unwrap_or_default())?,
        (_, None) => Vec::new(),
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "origins",
                "only a client token lists browser origins",
            ))
        }
    };
    let (scope, scope_environments) = check_scope(kind, scope, environments)?;
    let secret = new_secret();
    let digest = hash(&secret);
    let actor = admin.0.name;
    let token = tokens::NewToken {
        kind,
        environment,
        name,
        origins,
        scope,
        scope_environments,
    };
    let info = state
        .store
        .write(move |ctx| tokens::create(ctx, &actor, token, digest))
        .await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        id: info.id,
        kind: info.kind,
        environment: info.environment,
        name: info.name,
        origins: info.origins,
        scope: info.scope,
        environments: info.environments,
        token: secret,
        created_at: info.created_at,
    }))
}

/// An admin token's scope (`admin` when not given) and the environments of a `write` one.
fn check_scope(
    kind: TokenKind,
    scope: Option<String>,
    environments: Option<Vec<String>>,
) -> Result<(Scope, Vec<String>), ApiError> {
    let scope = match (kind, scope) {
        (TokenKind::Admin, None) => Scope::Admin,
        (TokenKind::Admin, Some(text)) => Scope::parse(&text)
            .ok_or_else(|| ApiError::invalid("scope", "must be `read`, `write` or `admin`"))?,
        (_, None) => Scope::Admin,
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "scope",
                "only an admin token has a scope (SDK and client tokens read one environment)",
            ))
        }
    };
    match (scope, environments) {
        (Scope::Write, Some(envs)) if !envs.is_empty() => Ok((scope, envs)),
        (Scope::Write, _) => Err(ApiError::invalid(
            "environments",
            "a `write` token lists the environments it may change, e.g. [\"staging\"]",
        )),
        (_, None) => Ok((scope, Vec::new())),
        (_, Some(_)) => Err(ApiError::invalid(
            "environments",
            "only a `write` token lists environments",
        )),
    }
}

/// A client token's origins, each `scheme://host[:port]` as a browser sends it in `Origin`
/// (`http` or `https`, no path, no trailing slash); at least one, at most [`MAX_ORIGINS`].
fn check_origins(origins: Vec<String>) -> Result<Vec<String>, ApiError> {
    if origins.is_empty() || origins.len() > MAX_ORIGINS {
        return Err(ApiError::invalid(
            "origins",
            format!("a client token lists 1 to {MAX_ORIGINS} browser origins, e.g. [\"https://app.example.com\"]"),
        ));
    }
    for (i, origin) in origins.iter().enumerate() {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
        if !valid || origin.len() > 200 {
            return Err(ApiError::invalid(
                format!("origins[{i}]"),
                "must be an origin as a browser sends it: `https://host[:port]`, no path",
            ));
        }
    }
    Ok(origins)
}

/// Every active token (never a secret).
#[utoipa::path(get, operation_id = "list_tokens", path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenInfo>),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminToken,
) -> Result<HttpResponse, ApiError> {
    let list = state.store.read(tokens::list).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Revokes a token at once. 409 for the last admin token.
#[utoipa::path(delete, operation_id = "revoke_token", path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "token id")),
    responses((status = 204, description = "revoked"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke(
    state: web::Data<AppState>,
    admin: AdminToken,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let actor = admin.0.name;
    state
        .store
        .write(move |ctx| tokens::revoke(ctx, &actor, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
