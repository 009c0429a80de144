//! The REST API under `/api/v1` (contract section 4), plus health, metrics and the OpenAPI
//! document. One file per resource; handlers parse, call the store, and map the answer.
//! Every route and its OpenAPI entry come from the same function.

pub mod alerts;
pub mod annotations;
pub mod audit;
pub mod change_requests;
pub mod environments;
pub mod evaluate;
pub mod events;
pub mod flags;
pub mod ofrep;
pub mod ops;
pub mod releases;
pub mod schedules;
pub mod sdk;
pub mod segments;
pub mod tokens;
pub mod webhooks;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

use flag_sdk::validate::{FieldError, ValidationErrors};

use crate::error::{from_json_error, from_json_error_at, ApiError};

/// The largest request body accepted: 1 MiB.
pub const BODY_LIMIT: usize = 1 << 20;

/// Registers every route of this module, with the extractor limits and error mappings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(BODY_LIMIT)
            .content_type_required(false)
            .error_handler(|e, _| json_error(e).into()),
    )
    .app_data(web::PayloadConfig::new(BODY_LIMIT))
    .app_data(
        web::PathConfig::default()
            .error_handler(|e: PathError, _| ApiError::NotFound(e.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|e: QueryPayloadError, _| {
            ApiError::BadRequest {
                detail: format!("bad query string: {e}"),
                errors: Vec::new(),
            }
            .into()
        }),
    );
    ops::configure(cfg);
    environments::configure(cfg);
    flags::configure(cfg);
    segments::configure(cfg);
    evaluate::configure(cfg);
    audit::configure(cfg);
    events::configure(cfg);
    annotations::configure(cfg);
    alerts::configure(cfg);
    tokens::configure(cfg);
    releases::configure(cfg);
    schedules::configure(cfg);
    change_requests::configure(cfg);
    webhooks::configure(cfg);
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::PayloadTooLarge(limit),
        JsonPayloadError::Deserialize(e) | JsonPayloadError::Serialize(e) => from_json_error(&e),
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::PayloadTooLarge(BODY_LIMIT)
        }
        other => ApiError::BadRequest {
            detail: format!("cannot read the body: {other}"),
            errors: Vec::new(),
        },
    }
}

/// Parses an optional JSON body read as bytes (an empty body is `T::default()`).
pub(crate) fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// Parses a JSON body; an error names the field by its path (`rules[0].clauses[1].op`).
///
/// The model's types ignore fields they do not know, so that an SDK reads what a newer
/// server writes; a write is stricter: a field the server does not know is refused (422),
/// as it is most likely a typo that would otherwise be dropped without a word.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut unknown = Vec::new();
    let mut track = |path: serde_ignored::Path<'_>| unknown.push(json_path(&path));
    let tracked = serde_ignored::Deserializer::new(&mut de, &mut track);
    let value = serde_path_to_error::deserialize(tracked)
        .map_err(|e| from_json_error_at(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| from_json_error(&e))?;
    if unknown.is_empty() {
        return Ok(value);
    }
    let errors = unknown.into_iter().map(|field| {
        let name = field.rsplit(['.', '[']).next().unwrap_or_default();
        let message = format!("unknown field `{name}`: check its spelling in docs/contract.md");
        FieldError { field, message }
    });
    Err(ApiError::Validation(ValidationErrors(errors.collect())))
}

/// A path as `serde_ignored` gives it, written like the others: `rules[0].clauses[1].negated`.
fn json_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", json_path(parent)),
        Path::Map { parent, key } => match json_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => json_path(parent),
    }
}

/// A JSON request body, like `web::Json`, whose errors name the offending field by path.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> Body<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            Ok(Body(parse_json(&bytes)?))
        })
    }
}

/// The fallback for unknown routes: a problem+json 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// The fallback for a known path with another method: a problem+json 405.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.path()
    )))
}

/// `?reason=...` on a write whose body is the object itself (a flag's configuration, a
/// segment): why, written to the audit row. Writes with a JSON envelope carry `"reason"` in
/// the body instead. Another query parameter is a 400 naming it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReasonQuery {
    /// Why (written to the audit log), e.g. a ticket.
    pub reason: Option<String>,
}

impl ReasonQuery {
    /// The reason given, if not blank.
    pub fn into_reason(self) -> Option<String> {
        self.reason.filter(|r| !r.trim().is_empty())
    }
}

/// `If-Match: "<version>"` → `Some(version)`; absent or `*` → `None`; anything else → 400.
pub(crate) fn if_match(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse().map(Some).map_err(|_| {
        ApiError::bad_field(
            "If-Match",
            "must be a version as the ETag gives it, e.g. \"7\"",
        )
    })
}

/// The `ETag` header of a version.
pub(crate) fn etag(version: u64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flag-server",
        description = "Feature-flag platform REST API (contract section 4). Every error is \
            application/problem+json. Admin endpoints take `Authorization: Bearer <admin token>`."
    ),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
        environments::list, environments::create, environments::update,
        flags::list, flags::create, flags::get, flags::update, flags::archive,
        flags::unarchive, flags::get_config, flags::put_config, flags::kill, flags::restore,
        segments::list, segments::create, segments::get, segments::replace, segments::delete,
        evaluate::evaluate,
        audit::list, events::events, annotations::list,
        alerts::receive, alerts::create, alerts::list, alerts::delete,
        tokens::create, tokens::list, tokens::revoke,
        sdk::stream, sdk::snapshot, sdk::events, sdk::subscribers,
        ofrep::single, ofrep::bulk, ofrep::events,
        releases::start, releases::status, releases::act,
        webhooks::create, webhooks::list, webhooks::delete, webhooks::deliveries,
        schedules::list, schedules::create, schedules::cancel, schedules::resume,
        change_requests::list, change_requests::get, change_requests::approve,
        change_requests::reject, change_requests::withdraw,
    ),
    components(schemas(crate::error::Problem, crate::error::ProblemField)),
    modifiers(&BearerAuth, &StorageFaults, &ExtractorErrors, &ProblemContent),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every write can meet a storage fault (disk full, read-only, I/O error): a 503 with
/// `Retry-After`, and nothing saved. Documented on every operation that writes.
struct StorageFaults;

impl Modify for StorageFaults {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{header::HeaderBuilder, ContentBuilder, Ref, ResponseBuilder, Type};
        let response = ResponseBuilder::new()
            .description(
                "the database cannot be written (disk full, read-only, I/O error); nothing \
                 was saved, retry later",
            )
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("seconds to wait before retrying"))
                    .build(),
            )
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The playground and OFREP evaluate; they write nothing.
            if path.ends_with("/evaluate") || path.starts_with("/ofrep/") {
                continue;
            }
            let writes = [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in writes.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("503".to_owned())
                    .or_insert_with(|| response.clone().into());
            }
        }
    }
}

/// Answers that come from the shared extractors and the token guards rather than from a
/// handler, documented on every operation they can reach (an operation's own entry wins): a
/// JSON body gives 400 (malformed), 413 (over [`BODY_LIMIT`]) and 422 (not the documented
/// shape); a query string 400; a token 401 (none valid) and 403 (not the kind required).
struct ExtractorErrors;

impl Modify for ExtractorErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        // OFREP documents its own answers, in its own JSON (`ofrep::OfrepError`).
        for (_, item) in openapi
            .paths
            .paths
            .iter_mut()
            .filter(|(path, _)| !path.starts_with("/ofrep/"))
        {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let body = operation.request_body.is_some();
                let query = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == ParameterIn::Query);
                // `security(())` makes an operation public; without its own, the global
                // bearer requirement applies.
                let public = operation
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| *r == SecurityRequirement::default()));
                let mut answers = Vec::new();
                match (body, query) {
                    (true, true) => answers.push(("400", "malformed JSON or a bad query string")),
                    (true, false) => answers.push(("400", "malformed JSON")),
                    (false, true) => answers.push(("400", "a bad query string")),
                    (false, false) => {}
                }
                if body {
                    answers.push(("413", "the body is over 1 MiB"));
                    answers.push(("422", "the body is not the documented shape, or invalid"));
                }
                if !public {
                    answers.push(("401", "no valid token"));
                    answers.push(("403", "a token of another kind"));
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description).into());
                }
            }
        }
    }
}

/// Every error answer is `application/problem+json` (the middleware in `app` sees to it), so
/// every documented 4xx/5xx body is declared with that media type rather than the
/// `application/json` the annotations default to.
struct ProblemContent;

impl Modify for ProblemContent {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        // OFREP documents its own answers, in its own JSON (`ofrep::OfrepError`).
        for (_, item) in openapi
            .paths
            .paths
            .iter_mut()
            .filter(|(path, _)| !path.starts_with("/ofrep/"))
        {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if !status.parse::<u16>().is_ok_and(|status| status >= 400) {
                        continue;
                    }
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert("application/problem+json".to_owned(), content);
                    }
                }
            }
        }
    }
}

/// The OpenAPI document as pretty JSON (what `flag-server openapi` prints and
/// `openapi/openapi.json` holds).
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
