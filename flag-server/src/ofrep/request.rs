//! An OFREP request body, `{"context": {"targetingKey": "...", ...}}`, read within the
//! limits and made a [`Context`]: `targetingKey` is the context key, every other field an
//! attribute.

use actix_web::web;
use flag_sdk::Context;
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::wire::{ErrorCode, OfrepError};

/// The largest body (its context) taken: 64 KiB.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;
/// The most attributes a context may have.
pub const MAX_ATTRIBUTES: usize = 1000;

/// Reads the body, refusing one over [`MAX_CONTEXT_BYTES`] as soon as it is.
pub async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, OfrepError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            OfrepError::new(ErrorCode::ParseError, format!("cannot read the body: {e}"))
        })?;
        if body.len() + chunk.len() > MAX_CONTEXT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn too_large() -> OfrepError {
    OfrepError::new(
        ErrorCode::InvalidContext,
        format!(
            "the request is over the limit of {} KiB for a context",
            MAX_CONTEXT_BYTES / 1024
        ),
    )
}

/// The context of a request body.
pub fn context(body: &[u8]) -> Result<Context, OfrepError> {
    if body.len() > MAX_CONTEXT_BYTES {
        return Err(too_large());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OfrepError::new(ErrorCode::ParseError, format!("malformed JSON: {e}")))?;
    let Value::Object(mut request) = value else {
        return Err(OfrepError::new(
            ErrorCode::ParseError,
            "the body must be a JSON object: {\"context\": {\"targetingKey\": \"...\"}}",
        ));
    };
    let map = match request.remove("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(OfrepError::new(
                ErrorCode::InvalidContext,
                "`context` must be a JSON object",
            ))
        }
    };
    from_map(map)
}

fn from_map(mut map: Map<String, Value>) -> Result<Context, OfrepError> {
    if map.len() > MAX_ATTRIBUTES + 1 {
        return Err(OfrepError::new(
            ErrorCode::InvalidContext,
            format!(
                "the context has {} attributes, over the limit of {MAX_ATTRIBUTES}",
                map.len() - 1
            ),
        ));
    }
    let key = match map.remove("targetingKey") {
        None | Some(Value::Null) => return Err(missing()),
        Some(Value::String(key)) if key.is_empty() => return Err(missing()),
        Some(Value::String(key)) => key,
        Some(_) => {
            return Err(OfrepError::new(
                ErrorCode::InvalidContext,
                "`context.targetingKey` must be a string",
            ))
        }
    };
    if map.len() > MAX_ATTRIBUTES {
        return Err(OfrepError::new(
            ErrorCode::InvalidContext,
            format!(
                "the context has {} attributes, over the limit of {MAX_ATTRIBUTES}",
                map.len()
            ),
        ));
    }
    match map.get(flag_sdk::KEY_ATTRIBUTE) {
        Some(Value::String(other)) if *other == key => {}
        None => {}
        Some(_) => {
            return Err(OfrepError::new(
                ErrorCode::InvalidContext,
                "`context.key` is reserved: the context key is `targetingKey`",
            ))
        }
    }
    map.insert(flag_sdk::KEY_ATTRIBUTE.to_owned(), Value::String(key));
    Context::from_json(Value::Object(map))
        .map_err(|e| OfrepError::new(ErrorCode::InvalidContext, e.to_string()))
}

fn missing() -> OfrepError {
    OfrepError::new(
        ErrorCode::TargetingKeyMissing,
        "the context needs a `targetingKey` (the context key)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> ErrorCode {
        context(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn targeting_key_is_the_context_key() {
        let ctx = context(br#"{"context": {"targetingKey": "u1", "plan": "pro"}}"#).unwrap();
        assert_eq!(ctx.key(), "u1");
        assert!(ctx.attribute("plan").is_some());
        assert!(ctx.attribute("targetingKey").is_none());
    }

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(code("{"), ErrorCode::ParseError);
        assert_eq!(code("[]"), ErrorCode::ParseError);
        assert_eq!(code("{}"), ErrorCode::TargetingKeyMissing);
        assert_eq!(code(r#"{"context": {}}"#), ErrorCode::TargetingKeyMissing);
        assert_eq!(code(r#"{"context": 3}"#), ErrorCode::InvalidContext);
        assert_eq!(
            code(r#"{"context": {"targetingKey": 7}}"#),
            ErrorCode::InvalidContext
        );
        assert_eq!(
            code(r#"{"context": {"targetingKey": "a", "key": "b"}}"#),
            ErrorCode::InvalidContext
        );
        let many: Map<String, Value> = (0..=MAX_ATTRIBUTES)
            .map(|i| (format!("a{i}"), Value::from(i)))
            .chain([("targetingKey".to_owned(), Value::from("u"))])
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "context": many })).unwrap();
        let e = context(&body).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidContext);
        assert!(e.details.contains("1000"), "{}", e.details);
    }
}
