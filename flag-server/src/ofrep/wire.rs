//! OFREP's bodies, as its OpenAPI document (v0.3.0) writes them, and [`OfrepError`]: the one
//! mapping of an OFREP failure to its status and body (`application/json`, never
//! problem+json: OFREP clients read `errorCode` and `errorDetails`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use flag_sdk::resolution::{self, MetadataValue};
use flag_sdk::Reason;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

/// A successful evaluation of one flag.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationSuccess<'a> {
    /// The flag's key.
    pub key: &'a str,
    /// The value served: a boolean, string, number or JSON value, as the flag's kind says.
    #[schema(value_type = serde_json::Value)]
    pub value: &'a Value,
    /// The OpenFeature reason: `STATIC`, `DEFAULT`, `TARGETING_MATCH`, `SPLIT` or `DISABLED`.
    #[schema(example = "TARGETING_MATCH")]
    pub reason: &'static str,
    /// The variation served (always present).
    pub variant: &'a str,
    /// Our own reason, flat: `reason` (e.g. `RULE_MATCH`), `ruleIndex`, `ruleId`,
    /// `inRollout`, `prerequisite`; and the flag's `version`.
    #[schema(value_type = Object)]
    pub metadata: Metadata<'a>,
}

/// Flat metadata (booleans, numbers and strings only).
#[derive(Debug)]
pub struct Metadata<'a> {
    /// The evaluation's reason.
    pub reason: Reason<'a>,
    /// The flag's version.
    pub version: u64,
}

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = resolution::metadata(&self.reason);
        let mut map = serializer.serialize_map(Some(entries.len() + 1))?;
        for (name, value) in entries {
            match value {
                MetadataValue::Bool(b) => map.serialize_entry(name, &b)?,
                MetadataValue::Int(i) => map.serialize_entry(name, &i)?,
                MetadataValue::Str(s) => map.serialize_entry(name, s)?,
            }
        }
        map.serialize_entry("version", &self.version)?;
        map.end()
    }
}

/// One flag of a bulk evaluation that could not be evaluated.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationFailure<'a> {
    /// The flag's key.
    pub key: &'a str,
    /// `PARSE_ERROR`: the flag's configuration cannot be evaluated.
    pub error_code: &'static str,
    /// What went wrong.
    pub error_details: String,
}

/// One entry of a bulk evaluation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BulkItem<'a> {
    /// Evaluated.
    Success(EvaluationSuccess<'a>),
    /// Not evaluated.
    Failure(EvaluationFailure<'a>),
}

/// Every flag of the environment for one context.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkEvaluation<'a> {
    /// One entry per flag, by key.
    pub flags: Vec<BulkItem<'a>>,
    /// `environment` and `revision` of the snapshot the answers come from.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The change notification stream: a `refetchEvaluation` event follows every change of
    /// the environment.
    pub event_streams: Vec<EventStream>,
}

/// A change notification connection (OFREP ADR-0008).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventStream {
    /// `sse`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where to connect: it carries a ticket for the token, since a browser's `EventSource`
    /// sends no headers of its own.
    pub url: String,
    /// Seconds of client inactivity after which the connection may be closed.
    pub inactivity_delay_sec: u64,
}

/// What went wrong, in OFREP's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON or not `{"context": {...}}`; or the flag cannot be evaluated.
    ParseError,
    /// The context has no `targetingKey`.
    TargetingKeyMissing,
    /// The context breaks a rule: an attribute's type, a limit.
    InvalidContext,
    /// No such flag.
    FlagNotFound,
    /// Anything else (401, 403, 429, 500).
    General,
}

impl ErrorCode {
    /// The code as OFREP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "PARSE_ERROR",
            ErrorCode::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            ErrorCode::InvalidContext => "INVALID_CONTEXT",
            ErrorCode::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorCode::General => "GENERAL",
        }
    }
}

/// The HTTP side of a failure that is not the request's: no token, no right, too many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no valid token.
    Unauthorized,
    /// 403: a token of another kind, or an origin the client token does not list.
    Forbidden,
    /// 429: over the token's rate; retry after this many seconds.
    TooManyRequests(u64),
    /// 500.
    Internal,
}

/// An OFREP failure: its code, its details, the flag it is about (single evaluations) and,
/// for the failures that are not the request's, how HTTP refuses it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {details}", code.as_str())]
pub struct OfrepError {
    /// The OFREP code.
    pub code: ErrorCode,
    /// Human-readable details (sent as `errorDetails`).
    pub details: String,
    /// The flag of a single evaluation.
    pub key: Option<String>,
    /// Set for 401, 403, 429 and 500.
    pub refusal: Option<Refusal>,
}

/// The body of every OFREP error answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The flag (single-flag evaluations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `PARSE_ERROR`, `TARGETING_KEY_MISSING`, `INVALID_CONTEXT`, `FLAG_NOT_FOUND` or
    /// `GENERAL`.
    pub error_code: String,
    /// What went wrong.
    pub error_details: String,
}

impl OfrepError {
    /// A failure of the request itself.
    pub fn new(code: ErrorCode, details: impl Into<String>) -> Self {
        OfrepError {
            code,
            details: details.into(),
            key: None,
            refusal: None,
        }
    }

    /// A refusal (`GENERAL`).
    pub fn refused(refusal: Refusal, details: impl Into<String>) -> Self {
        OfrepError {
            refusal: Some(refusal),
            ..OfrepError::new(ErrorCode::General, details)
        }
    }

    /// The same failure, about flag `key`.
    pub fn for_flag(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }
}

impl From<crate::error::ApiError> for OfrepError {
    /// A token guard's refusal, in OFREP's words.
    fn from(e: crate::error::ApiError) -> Self {
        use crate::error::ApiError;
        let refusal = match e {
            ApiError::Unauthorized => Refusal::Unauthorized,
            ApiError::Forbidden(_) => Refusal::Forbidden,
            _ => Refusal::Internal,
        };
        OfrepError::refused(refusal, e.to_string())
    }
}

impl ResponseError for OfrepError {
    fn status_code(&self) -> StatusCode {
        match (self.refusal, self.code) {
            (Some(Refusal::Unauthorized), _) => StatusCode::UNAUTHORIZED,
            (Some(Refusal::Forbidden), _) => StatusCode::FORBIDDEN,
            (Some(Refusal::TooManyRequests(_)), _) => StatusCode::TOO_MANY_REQUESTS,
            (Some(Refusal::Internal), _) => StatusCode::INTERNAL_SERVER_ERROR,
            (None, ErrorCode::FlagNotFound) => StatusCode::NOT_FOUND,
            (None, ErrorCode::General) => StatusCode::INTERNAL_SERVER_ERROR,
            (None, _) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self.refusal {
            Some(Refusal::Unauthorized) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Some(Refusal::TooManyRequests(seconds)) => {
                res.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            Some(Refusal::Internal) => {
                tracing::error!(details = %self.details, "OFREP internal error")
            }
            _ => {}
        }
        res.json(ErrorBody {
            key: self.key.clone(),
            error_code: self.code.as_str().to_owned(),
            error_details: self.details.clone(),
        })
    }
}
