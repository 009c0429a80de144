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
use crate::store::tokens::{self, TokenInfo, TokenKind};

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
    /// `admin` or `sdk`.
    #[schema(example = "sdk")]
    pub kind: String,
    /// The environment an SDK token reads (required for `sdk`, absent for `admin`).
    pub environment: Option<String>,
    /// A name for the audit log, 1 to 100 characters.
    pub name: String,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token's id.
    pub id: i64,
    /// Admin or SDK.
    pub kind: TokenKind,
    /// The environment of an SDK token.
    pub environment: Option<String>,
    /// Its name.
    pub name: String,
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
    } = body.into_inner();
    let kind = match kind.as_str() {
        "admin" => TokenKind::Admin,
        "sdk" => TokenKind::Sdk,
        _ => return Err(ApiError::invalid("kind", "must be `admin` or `sdk`")),
    };
    match (kind, &environment) {
        (TokenKind::Sdk, None) => {
            return Err(ApiError::invalid(
                "environment",
                "an SDK token is bound to one environment",
            ))
        }
        (TokenKind::Admin, Some(_)) => {
            return Err(ApiError::invalid(
                "environment",
                "an admin token is not bound to an environment",
            ))
        }
        _ => {}
    }
    if name.trim().is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    let secret = new_secret();
    let digest = hash(&secret);
    let actor = admin.0.name;
    let info = state
        .store
        .write(move |ctx| tokens::create(ctx, &actor, kind, environment, &name, digest))
        .await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        id: info.id,
        kind: info.kind,
        environment: info.environment,
        name: info.name,
        token: secret,
        created_at: info.created_at,
    }))
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
