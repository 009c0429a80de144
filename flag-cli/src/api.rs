//! The typed blocking HTTP client of the REST API (contract section 4).
//!
//! Every call names what it was doing, so a failure reads as one line: what failed, why, and
//! what to do. `problem+json` answers become [`ApiError::Status`]; a server that cannot be
//! reached becomes [`ApiError::Unreachable`]. This module knows HTTP and nothing of output.

use std::time::Duration;

use flag_sdk::{Flag, Segment};
use reqwest::blocking::{Client, RequestBuilder, Response};
pub use reqwest::Method;
use reqwest::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long one request may take before the CLI gives up.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("{}", status_message(*status, detail, errors, hint))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The problem's `detail` (or `title`, or the raw body).
        detail: String,
        /// `errors[]` of a validation problem, as `field: message`.
        errors: Vec<String>,
        /// What the user can do about it.
        hint: String,
    },
    /// No connection could be made (refused, DNS, timeout while connecting).
    #[error("cannot reach the server at {url}: {cause}; check --server / FLAG_SERVER_URL or the profile")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The transport's own words.
        cause: String,
    },
    /// The connection broke or the answer was not what the API promises.
    #[error("{0}")]
    Protocol(String),
}

fn status_message(status: u16, detail: &str, errors: &[String], hint: &str) -> String {
    let mut out = format!("{detail} (HTTP {status})");
    if !errors.is_empty() {
        out.push_str(": ");
        out.push_str(&errors.join("; "));
    }
    if !hint.is_empty() {
        out.push_str("; ");
        out.push_str(hint);
    }
    out
}

impl ApiError {
    /// The HTTP status of a server error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The problem+json body (RFC 9457) the server answers errors with.
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<ProblemField>,
}

#[derive(Debug, Deserialize)]
struct ProblemField {
    field: String,
    message: String,
}

/// A flag's configuration in one environment with the version its `ETag` names.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The contract section 2 flag.
    pub flag: Flag,
    /// The `ETag` version, sent back as `If-Match`.
    pub version: u64,
}

/// The answer of `kill` and `restore`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillOutcome {
    /// The configuration before the call.
    pub before: Flag,
    /// The configuration after it.
    pub flag: Flag,
    /// `false` when the call changed nothing (e.g. killing a killed flag).
    pub changed: bool,
    /// SDK stream connections of the environment that receive the change.
    pub subscribers: usize,
}

/// A write the server held for approval (`202 Accepted`): the change request it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The change request's id (`flag request show ID`).
    pub id: i64,
    /// `pending`.
    pub state: String,
}

impl Held {
    /// The change request in an answer, when the write was held (`202` with `{"id", "state"}`
    /// and no configuration).
    pub fn in_answer(raw: &serde_json::Value) -> Option<Held> {
        let kind = raw.get("kind")?;
        kind.is_string()
            .then(|| serde_json::from_value(raw.clone()).ok())
            .flatten()
    }
}

/// What a write of a flag's configuration did.
#[derive(Debug, Clone)]
pub enum Written {
    /// Stored: the configuration as the server keeps it.
    Stored(Box<Flag>),
    /// Held for approval.
    Held(Held),
}

/// The REST API of one server, as one admin token.
pub struct Api {
    http: Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client of `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let http = Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("flag-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    fn send(&self, req: RequestBuilder, what: &What) -> Result<Response, ApiError> {
        let res = req.send().map_err(|e| self.transport(e))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body = res.text().unwrap_or_default();
        let problem: Problem = serde_json::from_str(&body).unwrap_or_default();
        let detail = problem
            .detail
            .filter(|d| !d.is_empty())
            .or(problem.title)
            .unwrap_or_else(|| {
                let body = body.trim();
                if body.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    body.chars().take(200).collect()
                }
            });
        Err(ApiError::Status {
            status: status.as_u16(),
            detail,
            errors: problem
                .errors
                .into_iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect(),
            hint: hint(status, what, self.token.is_some()),
        })
    }

    fn transport(&self, e: reqwest::Error) -> ApiError {
        if e.is_connect() || (e.is_timeout() && !e.is_body()) {
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            ApiError::Unreachable {
                url: self.base.clone(),
                cause,
            }
        } else if e.is_builder() {
            ApiError::Unreachable {
                url: self.base.clone(),
                cause: format!("not a usable URL ({e})"),
            }
        } else {
            ApiError::Protocol(format!("talking to {}: {e}", self.base))
        }
    }

    fn json<T: DeserializeOwned>(&self, res: Response) -> Result<T, ApiError> {
        res.json()
            .map_err(|e| ApiError::Protocol(format!("unexpected answer from {}: {e}", self.base)))
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str, what: What) -> Result<T, ApiError> {
        let res = self.send(self.request(Method::GET, path), &what)?;
        self.json(res)
    }

    /// `GET path` with a query string, as JSON.
    pub fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: What,
    ) -> Result<T, ApiError> {
        let res = self.send(self.request(Method::GET, path).query(query), &what)?;
        self.json(res)
    }

    /// `POST path` with a JSON body, answered with JSON.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        what: What,
    ) -> Result<T, ApiError> {
        let res = self.send(self.request(Method::POST, path).json(body), &what)?;
        self.json(res)
    }

    /// `METHOD path?reason=...` with a JSON body, answered with JSON.
    pub fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        reason: Option<&str>,
        what: What,
    ) -> Result<T, ApiError> {
        let req = because(self.request(method, path), reason).json(body);
        let res = self.send(req, &what)?;
        self.json(res)
    }

    /// `DELETE path`; the answer's body is ignored.
    pub fn delete(&self, path: &str, what: What) -> Result<(), ApiError> {
        self.delete_because(path, None, what)
    }

    /// `DELETE path?reason=...`; the answer's body is ignored.
    pub fn delete_because(
        &self,
        path: &str,
        reason: Option<&str>,
        what: What,
    ) -> Result<(), ApiError> {
        self.send(because(self.request(Method::DELETE, path), reason), &what)?;
        Ok(())
    }

    /// `GET /healthz`-style probe without a token: the status, or why there is none.
    pub fn probe(&self, path: &str) -> Result<StatusCode, ApiError> {
        let res = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .map_err(|e| self.transport(e))?;
        Ok(res.status())
    }

    /// A flag's configuration in `env` and its version (`ETag`).
    pub fn flag_config(&self, key: &str, env: &str) -> Result<Versioned, ApiError> {
        let what = What::Flag { key, env };
        let res = self.send(self.request(Method::GET, &config_path(key, env)), &what)?;
        let etag = version_of(&res);
        let flag: Flag = self.json(res)?;
        let version = etag.unwrap_or(flag.version);
        Ok(Versioned { flag, version })
    }

    /// Replaces a flag's configuration if it is still at `version` (`If-Match`); `reason`
    /// goes to the audit log. In an environment that requires approval the server holds it
    /// as a change request.
    pub fn put_flag_config(
        &self,
        env: &str,
        flag: &Flag,
        version: u64,
        reason: Option<&str>,
    ) -> Result<Written, ApiError> {
        let what = What::Flag {
            key: &flag.key,
            env,
        };
        let req = self
            .request(Method::PUT, &config_path(&flag.key, env))
            .header(header::IF_MATCH, format!("\"{version}\""));
        let res = self.send(because(req, reason).json(flag), &what)?;
        if res.status() == StatusCode::ACCEPTED {
            return self.json(res).map(Written::Held);
        }
        self.json(res).map(|flag| Written::Stored(Box::new(flag)))
    }

    /// A segment of `env` and its version (`ETag`).
    pub fn segment(&self, env: &str, key: &str) -> Result<(Segment, u64), ApiError> {
        let what = What::Segment { key, env };
        let res = self.send(self.request(Method::GET, &segment_path(env, key)), &what)?;
        let etag = version_of(&res);
        let segment: Segment = self.json(res)?;
        let version = etag.unwrap_or(segment.version);
        Ok((segment, version))
    }

    /// `GET path` as JSON with the version its `ETag` names.
    pub fn get_versioned(&self, path: &str, what: What) -> Result<(Value, u64), ApiError> {
        let res = self.send(self.request(Method::GET, path), &what)?;
        let etag = version_of(&res);
        let value: Value = self.json(res)?;
        let version = etag
            .or_else(|| value.get("version").and_then(Value::as_u64))
            .unwrap_or(0);
        Ok((value, version))
    }

    /// `PUT path` of a document as it is (the server names any field it does not know), with
    /// `If-Match` and `?reason=...`.
    pub fn put_document(
        &self,
        path: &str,
        body: &Value,
        version: u64,
        reason: Option<&str>,
        what: What,
    ) -> Result<Value, ApiError> {
        let req = self
            .request(Method::PUT, path)
            .header(header::IF_MATCH, format!("\"{version}\""));
        let res = self.send(because(req, reason).json(body), &what)?;
        self.json(res)
    }
}

/// The version an `ETag: "<version>"` names.
fn version_of(res: &Response) -> Option<u64> {
    res.headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start_matches("W/").trim_matches('"').parse().ok())
}

/// `?reason=...` when there is one.
fn because(req: RequestBuilder, reason: Option<&str>) -> RequestBuilder {
    match reason {
        Some(reason) => req.query(&[("reason", reason)]),
        None => req,
    }
}

/// `/api/v1/environments/{env}/segments/{key}`.
pub fn segment_path(env: &str, key: &str) -> String {
    format!("/api/v1/environments/{env}/segments/{key}")
}

/// `/api/v1/flags/{key}/environments/{env}`.
pub fn config_path(key: &str, env: &str) -> String {
    format!("/api/v1/flags/{key}/environments/{env}")
}

/// What a request was about, for the hint of an error.
#[derive(Debug, Clone, Copy)]
pub enum What<'a> {
    /// A flag (in an environment).
    Flag {
        /// Its key.
        key: &'a str,
        /// The environment.
        env: &'a str,
    },
    /// A segment of an environment.
    Segment {
        /// Its key.
        key: &'a str,
        /// The environment.
        env: &'a str,
    },
    /// An environment.
    Environment(&'a str),
    /// A token by id.
    Token(&'a str),
    /// A release of a flag.
    Release(&'a str),
    /// Anything else.
    Other,
}

fn hint(status: StatusCode, what: &What, has_token: bool) -> String {
    match status.as_u16() {
        401 if !has_token => "no token given: pass --token or set FLAG_TOKEN (an admin token)".into(),
        401 => "the token was rejected: check --token / FLAG_TOKEN (or the profile's token)".into(),
        403 => "the token may not do this: use an admin token of the scope named (SDK tokens only read the SDK endpoints)".into(),
        404 => match what {
            What::Flag { key, env } => format!(
                "check the flag key `{key}` (`flag list`) and the environment `{env}` (`flag env list`)"
            ),
            What::Segment { key, env } => format!(
                "check the segment key `{key}` (`flag segment list`) and the environment `{env}` (`flag env list`)"
            ),
            What::Environment(env) => format!("check the environment `{env}` (`flag env list`)"),
            What::Token(id) => format!("no token with id {id} (`flag token list`)"),
            What::Release(key) => format!("no release for `{key}`, or releases are not available on this server"),
            What::Other => "the server does not know this; is it a flag-server of this version?".into(),
        },
        409 => match what {
            What::Segment { .. } => "what the server names is in the way: take the segment out of those rules first (`flag rule list KEY`, `flag rule remove KEY ID`)".into(),
            _ => "what the server names is in the way; look with `flag get` / `flag log`".into(),
        },
        412 => "someone else changed it meanwhile; look with `flag get` and try again".into(),
        s if s >= 500 => "the server failed; see its log, check `flag status`".into(),
        _ => String::new(),
    }
}

/// The exit status class of an API error (see the README's table).
pub fn exit_code(e: &ApiError) -> u8 {
    match e {
        ApiError::Status { status, .. } => match status {
            404 => 3,
            401 | 403 => 4,
            409 | 412 => 5,
            s if *s >= 500 => 7,
            _ => 1,
        },
        ApiError::Unreachable { .. } => 6,
        ApiError::Protocol(_) => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> ApiError {
        let what = What::Flag {
            key: "new-checkout",
            env: "production",
        };
        ApiError::Status {
            status: code,
            detail: "d".into(),
            errors: vec!["key: bad".into()],
            hint: hint(StatusCode::from_u16(code).unwrap(), &what, true),
        }
    }

    #[test]
    fn exit_codes_by_class() {
        let codes: Vec<u8> = [400, 401, 403, 404, 409, 412, 413, 422, 500, 503]
            .into_iter()
            .map(|c| exit_code(&status(c)))
            .collect();
        assert_eq!(codes, [1, 4, 4, 3, 5, 5, 1, 1, 7, 7]);
        let unreachable = ApiError::Unreachable {
            url: "u".into(),
            cause: "c".into(),
        };
        assert_eq!(exit_code(&unreachable), 6);
        assert_eq!(exit_code(&ApiError::Protocol("p".into())), 7);
    }

    #[test]
    fn messages_say_what_to_do() {
        assert_eq!(
            status(404).to_string(),
            "d (HTTP 404): key: bad; check the flag key `new-checkout` (`flag list`) and the \
             environment `production` (`flag env list`)"
        );
        assert!(status(401).to_string().contains("FLAG_TOKEN"));
        assert!(status(500).to_string().contains("flag status"));
    }
}
