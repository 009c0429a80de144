//! `ApiError`: every error a request can meet, and its one mapping to
//! `application/problem+json` (RFC 9457). Startup errors never enter it; no handler builds an
//! error response by hand.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use flag_sdk::validate::{FieldError, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::sql;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Unparseable input (malformed JSON, a bad header or query string).
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// The offending fields, when known.
        errors: Vec<FieldError>,
    },
    /// Well-formed input that breaks the model's rules.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// No token, or one that is not valid.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A token of the wrong kind or environment.
    #[error("{0}")]
    Forbidden(String),
    /// An admin token whose scope does not allow the operation.
    #[error("{detail}")]
    Scope {
        /// The scope the operation needs.
        required: crate::store::tokens::Scope,
        /// What the token may do instead.
        detail: String,
    },
    /// An unknown key or route.
    #[error("{0}")]
    NotFound(String),
    /// A key that exists, or a state that forbids the change.
    #[error("{0}")]
    Conflict(String),
    /// A known path with another method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// `If-Match` names a version that is not the current one.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body is over the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The store cannot take the request right now (e.g. a failed commit).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an I/O failure; the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with one field named.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::BadRequest {
            detail: message.clone(),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }

    /// A 422 with one field named.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(ValidationErrors(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }]))
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "Bad request",
            ApiError::Validation(_) => "Validation failed",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden(_) | ApiError::Scope { .. } => "Forbidden",
            ApiError::NotFound(_) => "Not found",
            ApiError::Conflict(_) => "Conflict",
            ApiError::MethodNotAllowed(_) => "Method not allowed",
            ApiError::PreconditionFailed(_) => "Precondition failed",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }
}

/// How long a client should wait before retrying a 503, in seconds (`Retry-After`).
pub const RETRY_AFTER_SECS: u32 = 5;

impl From<sql::Error> for ApiError {
    /// A storage fault (see [`storage_fault`]) is a 503 the client may retry; anything else
    /// from the database is a bug (a 500): a missing row where one must be, a column of
    /// another type, a constraint the store checks before it writes (a unique key on either
    /// backend: SQLSTATE 23505 on PostgreSQL).
    fn from(e: sql::Error) -> Self {
        if let Some(detail) = storage_fault(&e) {
            tracing::warn!(error = %e, "storage fault");
            return ApiError::Unavailable(detail.to_owned());
        }
        match e {
            sql::Error::Sqlite(e) => ApiError::Internal(format!("sqlite: {e}")),
            sql::Error::Postgres(e) => ApiError::Internal(format!("postgres: {e}")),
            e => ApiError::Internal(format!("database: {e}")),
        }
    }
}

/// The client-facing detail of a database error that is the storage's fault rather than a bug.
/// SQLite: the disk is full, the database or its file system is read-only, an I/O error, the
/// file cannot be opened, or the database is locked. PostgreSQL: the connection is closed or
/// broken, or the server is shutting down or not accepting connections. `None` for everything
/// else.
pub fn storage_fault(e: &sql::Error) -> Option<&'static str> {
    match e {
        sql::Error::Sqlite(e) => sqlite_fault(e),
        sql::Error::Postgres(e) => postgres_unreachable(e).then_some(UNREACHABLE),
        sql::Error::Runtime(_) => Some(UNREACHABLE),
        sql::Error::NoRows | sql::Error::Type { .. } => None,
    }
}

fn sqlite_fault(e: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::ErrorCode;
    let rusqlite::Error::SqliteFailure(failure, _) = e else {
        return None;
    };
    Some(match failure.code {
        ErrorCode::DiskFull => DISK_FULL,
        ErrorCode::ReadOnly => READ_ONLY,
        ErrorCode::SystemIoFailure => IO_ERROR,
        ErrorCode::CannotOpen => "the database cannot be opened; the change was not saved",
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            "the database is busy; the change was not saved"
        }
        _ => return None,
    })
}

/// Whether a PostgreSQL error means the server cannot be reached: the connection is closed,
/// an I/O error on it, a connection exception (SQLSTATE class 08), or the server shutting
/// down or refusing connections (57P01, 57P02, 57P03).
fn postgres_unreachable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    use std::error::Error as _;
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code);
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The detail of a 503 when the PostgreSQL server cannot be reached.
pub const UNREACHABLE: &str = "the database is unreachable; the change was not saved";
/// The detail of a 503 when the disk under the database is full.
pub const DISK_FULL: &str = "the database disk is full; the change was not saved";
/// The detail of a 503 when the database (or its file system) cannot be written.
pub const READ_ONLY: &str = "the database is read-only; the change was not saved";
/// The detail of a 503 after an I/O error of the database.
pub const IO_ERROR: &str = "the database had an I/O error; the change was not saved";

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

/// The problem+json body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` style slugs under `/problems/`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// One entry per offending field (empty when no field is to blame).
    pub errors: Vec<ProblemField>,
    /// On a 403 for an admin token's scope: the scope the operation needs (`read`, `write`,
    /// `admin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<String>,
}

/// One offending field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// JSON path of the field, e.g. `rules[0].clauses[1].values[0]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Scope { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (detail, errors) = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ("internal error; see the server log".to_owned(), Vec::new())
            }
            ApiError::BadRequest { detail, errors } => (detail.clone(), errors.clone()),
            ApiError::Validation(e) => (self.to_string(), e.0.clone()),
            _ => (self.to_string(), Vec::new()),
        };
        let title = self.title();
        let slug = title.to_ascii_lowercase().replace(' ', "-");
        let body = Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors: errors
                .into_iter()
                .map(|e| ProblemField {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
            required_scope: match self {
                ApiError::Scope { required, .. } => Some(required.as_str().to_owned()),
                _ => None,
            },
        };
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            ApiError::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
            }
            _ => {}
        }
        res.body(serde_json::to_string(&body).unwrap_or_default())
    }
}

/// A problem+json body for an error response that did not come from [`ApiError`] (e.g. a
/// 413 or 400 raised by actix itself before a handler ran).
pub fn problem_for_status(status: StatusCode) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = Problem {
        kind: format!("/problems/http-{}", status.as_u16()),
        title: title.to_owned(),
        status: status.as_u16(),
        detail: title.to_owned(),
        errors: Vec::new(),
        required_scope: None,
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/problem+json"))
        .body(serde_json::to_string(&body).unwrap_or_default())
}

/// Whether a response already carries a problem+json body.
pub fn is_problem(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// Whether a response carries a plain JSON body (OFREP's errors).
pub fn is_json(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Maps a serde_json error on a request body to 400 (syntax, depth) or 422 (shape), naming the
/// field when serde's message does.
pub fn from_json_error(e: &serde_json::Error) -> ApiError {
    from_json_error_at("", e)
}

/// Maps a JSON error found at `path` (as `serde_path_to_error` writes it, e.g.
/// `rules[0].clauses[1].op`; empty or `.` for the top level) to the field it names.
pub fn from_json_error_at(path: &str, e: &serde_json::Error) -> ApiError {
    let message = e.to_string();
    let path = path.trim_start_matches('.');
    // The path ends at an unknown field, but at the object that lacks a missing one.
    let field = match (path, field_in_message(&message)) {
        ("", named) => named.unwrap_or_default(),
        (path, Some(named)) if message.starts_with("missing field") => format!("{path}.{named}"),
        (path, _) => path.to_owned(),
    };
    match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(field, message),
        _ => ApiError::BadRequest {
            detail: format!("malformed JSON: {message}"),
            errors: Vec::new(),
        },
    }
}

/// `missing field `x`` / `unknown field `x`` name the field; other messages do not.
fn field_in_message(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.split(prefix).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_and_unknown_fields() {
        let e = serde_json::from_str::<flag_sdk::Variation>(r#"{"key":"a"}"#).unwrap_err();
        let ApiError::Validation(v) = from_json_error(&e) else {
            panic!("not a validation error")
        };
        assert_eq!(v.0[0].field, "value");
        // The model ignores unknown fields (an SDK reads a newer server); a write body does not.
        let e = crate::api::parse_json::<flag_sdk::Variation>(br#"{"key":"a","value":1,"x":2}"#)
            .unwrap_err();
        let ApiError::Validation(v) = e else {
            panic!("not a validation error")
        };
        assert_eq!(v.0[0].field, "x");
        let flag = br#"{"key": "f", "kind": "boolean", "off_variation": "off",
            "variations": [{"key": "off", "value": false}],
            "rules": [{"clauses": [{"attribute": "a", "op": "in", "values": [1], "negated": true}],
                       "serve": {"rollout": {"bucketby": "org", "weights": []}}}],
            "fallthrough": {"variation": "off"}}"#;
        let ApiError::Validation(v) = crate::api::parse_json::<flag_sdk::Flag>(flag).unwrap_err()
        else {
            panic!("not a validation error")
        };
        assert_eq!(v.0[0].field, "rules[0].clauses[0].negated");
        assert!(v.0[0].message.contains("`negated`"), "{}", v.0[0].message);
    }

    fn sqlite(code: i32) -> sql::Error {
        sql::Error::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn storage_faults_are_503_and_bugs_500() {
        use rusqlite::ffi;
        for (code, detail) in [
            (ffi::SQLITE_FULL, DISK_FULL),
            (ffi::SQLITE_READONLY, READ_ONLY),
            (ffi::SQLITE_READONLY_DBMOVED, READ_ONLY),
            (ffi::SQLITE_IOERR_WRITE, IO_ERROR),
            (ffi::SQLITE_IOERR_FSYNC, IO_ERROR),
        ] {
            let e = ApiError::from(sqlite(code));
            assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.to_string(), detail);
            let res = e.error_response();
            assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "5");
        }
        for code in [ffi::SQLITE_CANTOPEN, ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED] {
            assert_eq!(
                ApiError::from(sqlite(code)).status_code(),
                StatusCode::SERVICE_UNAVAILABLE
            );
        }
        for e in [
            sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE),
            sqlite(ffi::SQLITE_ERROR),
            sqlite(ffi::SQLITE_CORRUPT),
            sql::Error::Sqlite(rusqlite::Error::QueryReturnedNoRows),
            sql::Error::NoRows,
            sql::Error::Type {
                column: 0,
                expected: "an integer",
                found: "text",
            },
        ] {
            assert_eq!(
                ApiError::from(e).status_code(),
                StatusCode::INTERNAL_SERVER_ERROR
            );
        }
    }

    #[test]
    fn deep_json_is_a_bad_request() {
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        let e = serde_json::from_str::<serde_json::Value>(&deep).unwrap_err();
        assert!(matches!(from_json_error(&e), ApiError::BadRequest { .. }));
    }
}
