//! OpenAPI schemas (utoipa) of the enums whose wire form `wire` writes by hand: an operator
//! and a flag kind are a string from a closed list, a serve is an object with exactly one of
//! `variation` or `rollout`. The schemas describe what validation accepts (no `Unknown`), so
//! the server's API document says what a write may carry. Only with the `openapi` feature.

use std::borrow::Cow;

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{FlagKind, Op, Rollout, Serve};

/// A string schema whose value is one of `names`.
fn names(names: impl IntoIterator<Item = String>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .into()
}

impl PartialSchema for Op {
    fn schema() -> RefOr<Schema> {
        names(
            Op::KNOWN.iter().map(|op| op.as_str().to_owned()),
            "A clause operator (contract section 2): `in` (equal, same JSON type), \
             `starts_with`, `ends_with`, `contains`, `matches` (Rust regex, unanchored), \
             `lt`, `lte`, `gt`, `gte` (numbers), `before`, `after` (RFC 3339 or Unix \
             milliseconds), `semver_eq`, `semver_lt`, `semver_gt`, `in_segment` (values are \
             segment keys).",
        )
    }
}

impl ToSchema for Op {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Op")
    }
}

impl PartialSchema for FlagKind {
    fn schema() -> RefOr<Schema> {
        let known = [
            FlagKind::Boolean,
            FlagKind::String,
            FlagKind::Number,
            FlagKind::Json,
        ];
        names(
            known.iter().map(|k| k.as_str().to_owned()),
            "The type every variation value of the flag has.",
        )
    }
}

impl ToSchema for FlagKind {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FlagKind")
    }
}

impl PartialSchema for Serve {
    /// One object with exactly one of the two keys (rather than a `oneOf` of two objects:
    /// the same set of documents, and one that schema-driven test generators draw from
    /// without trouble).
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "variation",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("the variation key served")),
            )
            .property("rollout", Ref::from_schema_name(Rollout::name()))
            .min_properties(Some(1))
            .max_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some(
                "What to serve: `{\"variation\": KEY}` or `{\"rollout\": {...}}`, exactly one.",
            ))
            .into()
    }
}

impl ToSchema for Serve {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Serve")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Rollout::name().into_owned(), Rollout::schema()));
        <Rollout as ToSchema>::schemas(schemas);
    }
}
