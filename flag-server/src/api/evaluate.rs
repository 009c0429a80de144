//! The playground: `POST /api/v1/environments/{env}/evaluate` evaluates flags for a context
//! with the SDK's own evaluator on the environment's live snapshot.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use flag_sdk::{Context, Reason};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::method_not_allowed;
use super::Body;
use crate::auth::AdminToken;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/environments/{env}/evaluate")
            .post(evaluate)
            .default_service(web::to(method_not_allowed)),
    );
}

/// What to evaluate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// A context: a JSON object with a string `key` and any attributes.
    #[schema(value_type = Object)]
    pub context: Value,
    /// The flags to evaluate; every flag of the environment when absent.
    pub flags: Option<Vec<String>>,
}

/// The outcome for one flag.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagResult {
    /// The value served (`null` when the caller's default applies).
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Value>,
    /// The variation served.
    pub variation: Option<String>,
    /// Its index in the flag's variations.
    pub variation_index: Option<usize>,
    /// Why (contract section 3 reason JSON).
    #[schema(value_type = Object)]
    pub reason: Reason<'static>,
}

/// The outcomes, by flag key.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluateResponse {
    /// The environment.
    pub environment: String,
    /// The snapshot's revision the results come from.
    pub revision: u64,
    /// One result per flag asked for.
    pub results: BTreeMap<String, FlagResult>,
}

/// Evaluates flags for a context: value, variation and reason per flag.
#[utoipa::path(post, operation_id = "evaluate", path = "/api/v1/environments/{env}/evaluate", tag = "evaluate",
    request_body = EvaluateRequest,
    params(("env" = String, Path, description = "environment key")),
    responses((status = 200, body = EvaluateResponse),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, description = "bad context", body = Problem)))]
pub async fn evaluate(
    state: web::Data<AppState>,
    _admin: AdminToken,
    env: web::Path<String>,
    body: Body<EvaluateRequest>,
) -> Result<HttpResponse, ApiError> {
    let env = env.into_inner();
    let snapshot = state
        .snapshots
        .get(&env)
        .ok_or_else(|| ApiError::NotFound(format!("no environment `{env}`")))?;
    let EvaluateRequest { context, flags } = body.into_inner();
    let ctx =
        Context::from_json(context).map_err(|e| ApiError::invalid("context", e.to_string()))?;
    let keys: Vec<String> =
        flags.unwrap_or_else(|| snapshot.snapshot().flags.keys().cloned().collect());
    let mut results = BTreeMap::new();
    for key in keys {
        let eval = snapshot.evaluate(&key, &ctx);
        results.insert(
            key,
            FlagResult {
                value: eval.value.cloned(),
                variation: eval.variation.map(str::to_owned),
                variation_index: eval.variation_index,
                reason: eval.reason.into_owned(),
            },
        );
    }
    Ok(HttpResponse::Ok().json(EvaluateResponse {
        environment: env,
        revision: snapshot.revision(),
        results,
    }))
}
