//! The OpenFeature provider (cargo feature `openfeature`): [`FlagProvider`] lets code written
//! against the `open-feature` crate evaluate this platform's flags through a [`Client`].
//!
//! Mapping: the evaluation context's `targeting_key` is the context key (required); custom
//! fields become attributes (date-times as RFC 3339 strings; structures are skipped). Reasons
//! and flag metadata come from [`crate::resolution`], the mapping the server's OFREP endpoints
//! use too. Errors: `FLAG_NOT_FOUND` → `FlagNotFound`, `WRONG_TYPE` →
//! `TypeMismatch`, `CLIENT_NOT_READY` → `ProviderNotReady`, `MALFORMED_FLAG` → `ParseError`.
//! Nothing here touches the network: it reads through the client's typed getters, so its
//! evaluations count for release guards as the application's own do.

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, FlagMetadataValue, StructValue, Value,
};
use time::format_description::well_known::Rfc3339;

use crate::client::{Client, Status};
use crate::context::Context;
use crate::eval::{ErrorKind, Reason};
use crate::resolution::{self, MetadataValue, OpenFeatureReason};
use crate::variation::Detail;
use serde_json::Value as Json;

/// An OpenFeature provider backed by a [`Client`].
#[derive(Debug, Clone)]
pub struct FlagProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl FlagProvider {
    /// A provider evaluating with `client`.
    pub fn new(client: Client) -> Self {
        FlagProvider {
            client,
            metadata: ProviderMetadata::new("flag-sdk"),
        }
    }

    /// Maps a client detail of flag `key` to OpenFeature's: an `ERROR` reason becomes the
    /// error; the reason and metadata come from [`crate::resolution`] (the flag's own
    /// configuration tells a static value from a default).
    fn resolve<T>(&self, key: &str, detail: Detail<T>) -> EvaluationResult<ResolutionDetails<T>> {
        if let Reason::Error { error: kind } = detail.reason {
            return Err(error(kind));
        }
        let snapshot = self.client.snapshot();
        let flag = snapshot
            .as_deref()
            .and_then(|s| s.snapshot().flags.get(key));
        let reason = resolution::reason(flag, &detail.reason);
        Ok(ResolutionDetails {
            value: detail.value,
            variant: detail.variation,
            reason: Some(openfeature_reason(reason)),
            flag_metadata: Some(metadata(&detail.reason)),
        })
    }
}

#[open_feature::async_trait]
impl FeatureProvider for FlagProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        match (self.client.status(), self.client.revision().is_some()) {
            (Status::Valid, _) | (Status::Offline, true) => ProviderStatus::Ready,
            // A refused token keeps serving what it holds, which is no longer updated.
            (Status::Stale, _) | (Status::Refused { .. }, true) => ProviderStatus::STALE,
            (Status::Offline | Status::Refused { .. }, false) => ProviderStatus::Error,
            _ => ProviderStatus::NotReady,
        }
    }

    async fn resolve_bool_value(
        &self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let ctx = context(ctx)?;
        self.resolve(key, self.client.bool_variation_detail(key, &ctx, false))
    }

    async fn resolve_int_value(
        &self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        let ctx = context(ctx)?;
        self.resolve(key, self.client.int_variation_detail(key, &ctx, 0))
    }

    async fn resolve_float_value(
        &self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        let ctx = context(ctx)?;
        self.resolve(key, self.client.float_variation_detail(key, &ctx, 0.0))
    }

    async fn resolve_string_value(
        &self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        let ctx = context(ctx)?;
        self.resolve(key, self.client.string_variation_detail(key, &ctx, ""))
    }

    async fn resolve_struct_value(
        &self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        let ctx = context(ctx)?;
        let detail = self.resolve(
            key,
            self.client.json_variation_detail(key, &ctx, Json::Null),
        )?;
        match Value::try_from(&detail.value) {
            Ok(Value::Struct(value)) => Ok(ResolutionDetails {
                value,
                variant: detail.variant,
                reason: detail.reason,
                flag_metadata: detail.flag_metadata,
            }),
            _ => Err(error(ErrorKind::WrongType)),
        }
    }
}

fn context(ctx: &EvaluationContext) -> EvaluationResult<Context> {
    let key = ctx
        .targeting_key
        .as_deref()
        .ok_or_else(|| EvaluationError {
            code: EvaluationErrorCode::TargetingKeyMissing,
            message: Some("the context key is OpenFeature's targeting key".to_owned()),
        })?;
    let mut context = Context::new(key);
    for (name, value) in &ctx.custom_fields {
        let value = match value {
            EvaluationContextFieldValue::Bool(b) => serde_json::Value::from(*b),
            EvaluationContextFieldValue::Int(i) => serde_json::Value::from(*i),
            EvaluationContextFieldValue::Float(f) => serde_json::Value::from(*f),
            EvaluationContextFieldValue::String(s) => serde_json::Value::from(s.as_str()),
            EvaluationContextFieldValue::DateTime(t) => match t.format(&Rfc3339) {
                Ok(s) => serde_json::Value::from(s),
                Err(_) => continue,
            },
            EvaluationContextFieldValue::Struct(_) => continue,
        };
        context.set(name.as_str(), value);
    }
    Ok(context)
}

fn openfeature_reason(reason: OpenFeatureReason) -> EvaluationReason {
    match reason {
        OpenFeatureReason::Static => EvaluationReason::Static,
        OpenFeatureReason::Default => EvaluationReason::Default,
        OpenFeatureReason::TargetingMatch => EvaluationReason::TargetingMatch,
        OpenFeatureReason::Split => EvaluationReason::Split,
        OpenFeatureReason::Disabled => EvaluationReason::Disabled,
        OpenFeatureReason::Unknown => EvaluationReason::Unknown,
        OpenFeatureReason::Error => EvaluationReason::Error,
    }
}

fn metadata(reason: &Reason<'_>) -> FlagMetadata {
    let mut metadata = FlagMetadata::default();
    for (name, value) in resolution::metadata(reason) {
        let value = match value {
            MetadataValue::Bool(b) => FlagMetadataValue::Bool(b),
            MetadataValue::Int(i) => FlagMetadataValue::Int(i64::try_from(i).unwrap_or(i64::MAX)),
            MetadataValue::Str(s) => FlagMetadataValue::String(s.to_owned()),
        };
        metadata.add_value(name, value);
    }
    metadata
}

fn error(kind: ErrorKind) -> EvaluationError {
    let code = match kind {
        ErrorKind::FlagNotFound => EvaluationErrorCode::FlagNotFound,
        ErrorKind::WrongType => EvaluationErrorCode::TypeMismatch,
        ErrorKind::ClientNotReady => EvaluationErrorCode::ProviderNotReady,
        ErrorKind::MalformedFlag => EvaluationErrorCode::ParseError,
    };
    EvaluationError {
        code,
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::TestData;

    #[tokio::test]
    async fn maps_values_reasons_and_errors() {
        let td = TestData::new();
        let provider = FlagProvider::new(td.client());
        let ctx = EvaluationContext::default()
            .with_targeting_key("u1")
            .with_custom_field("plan", "pro");
        td.update(td.flag("f").serve(true));
        let d = provider.resolve_bool_value("f", &ctx).await.unwrap();
        assert!(d.value);
        assert_eq!(d.variant.as_deref(), Some("on"));
        // No targets or rules: a static value; our own reason is in the metadata.
        assert_eq!(d.reason, Some(EvaluationReason::Static));
        assert_eq!(
            d.flag_metadata.unwrap().values["reason"],
            FlagMetadataValue::String("FALLTHROUGH".into())
        );

        td.update(td.flag("f").on(false));
        let d = provider.resolve_bool_value("f", &ctx).await.unwrap();
        assert_eq!(
            (d.value, d.reason),
            (false, Some(EvaluationReason::Disabled))
        );

        let missing = provider.resolve_bool_value("nope", &ctx).await.unwrap_err();
        assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
        let wrong = provider.resolve_string_value("f", &ctx).await.unwrap_err();
        assert_eq!(wrong.code, EvaluationErrorCode::TypeMismatch);
        let no_key = provider
            .resolve_bool_value("f", &EvaluationContext::default())
            .await
            .unwrap_err();
        assert_eq!(no_key.code, EvaluationErrorCode::TargetingKeyMissing);

        td.update(td.flag("limit").value_for_all(42));
        assert_eq!(
            provider
                .resolve_int_value("limit", &ctx)
                .await
                .unwrap()
                .value,
            42
        );
        td.update(td.flag("cfg").value_for_all(serde_json::json!({"a": 1})));
        let s = provider.resolve_struct_value("cfg", &ctx).await.unwrap();
        assert!(s.value.fields.contains_key("a"));
        assert_eq!(provider.status(), ProviderStatus::Ready);
    }
}
