//! The typed getters of a [`CompiledSnapshot`] and their [`Detail`] forms: one naming scheme,
//! shared with the client (`bool`, `string`, `int`, `float` and `json_variation`, each with a
//! `_detail` form).
//!
//! A getter stops at the compact outcome (flag, variation, reason code) and reads the value;
//! only a `_detail` form spells the reason out. Nothing here allocates except a `_detail`
//! form's variation key and rule id.

use serde::Serialize;
use serde_json::Value;

use crate::compile::{CompiledSnapshot, Kind, Slot};
use crate::context::Context;
use crate::eval::{ErrorKind, Evaluation, Outcome, Reason, Why};

/// What a typed getter served and why: the value (the flag's, or the caller's default), the
/// variation and the reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Detail<T> {
    /// The flag's value, or the caller's default when `variation` is `None`.
    pub value: T,
    /// The key of the variation served; `None` when the default was served (see `reason`).
    pub variation: Option<String>,
    /// The index of the variation served in the flag's variations.
    pub variation_index: Option<usize>,
    /// Why (contract section 3); `ERROR` with its kind when the default was served.
    pub reason: Reason<'static>,
}

impl<T> Detail<T> {
    /// Whether the caller's default was served.
    pub fn is_default(&self) -> bool {
        self.variation.is_none()
    }

    /// The same detail with the value mapped (e.g. borrowed to owned).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Detail<U> {
        Detail {
            value: f(self.value),
            variation: self.variation,
            variation_index: self.variation_index,
            reason: self.reason,
        }
    }

    /// The default, for `error`.
    pub(crate) fn error(default: T, error: ErrorKind) -> Detail<T> {
        Detail {
            value: default,
            variation: None,
            variation_index: None,
            reason: Reason::Error { error },
        }
    }
}

impl From<Evaluation<'_>> for Detail<Option<Value>> {
    fn from(e: Evaluation<'_>) -> Self {
        Detail {
            value: e.value.cloned(),
            variation: e.variation.map(str::to_owned),
            variation_index: e.variation_index,
            reason: e.reason.into_owned(),
        }
    }
}

/// (flag index, variation index, why, value), or why the default applies.
pub(crate) type Typed<T> = Result<(usize, usize, Why, T), ErrorKind>;

/// What a value getter needs: the value alone when no context can change it (nothing to
/// count either: a constant answer is never a rollout's), else the evaluated outcome.
pub(crate) enum Answer<T> {
    Constant(T),
    Evaluated(Typed<T>),
}

/// How each getter reads a value: the flag kind it accepts and the conversion.
pub(crate) trait Read<'a>: Sized {
    const KIND: Kind;
    fn read(value: &'a Value) -> Option<Self>;
    /// The value from the flag table's slot alone, when it holds it (only for a slot with a
    /// `constant` answer).
    #[inline(always)]
    fn from_slot(_slot: &Slot) -> Option<Self> {
        None
    }
}

impl Read<'_> for bool {
    const KIND: Kind = Kind::Boolean;
    #[inline]
    fn read(value: &Value) -> Option<bool> {
        value.as_bool()
    }
    #[inline(always)]
    fn from_slot(slot: &Slot) -> Option<bool> {
        slot.constant_bool
    }
}

impl<'a> Read<'a> for &'a str {
    const KIND: Kind = Kind::String;
    #[inline]
    fn read(value: &'a Value) -> Option<&'a str> {
        value.as_str()
    }
}

/// The largest integer every `f64` below it represents exactly (2^53).
const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

impl Read<'_> for i64 {
    const KIND: Kind = Kind::Number;
    /// An integer, or a float with no fraction that is exact as an integer (`3.0`); `2.5`
    /// is not an integer (`WRONG_TYPE`).
    #[inline]
    fn read(value: &Value) -> Option<i64> {
        value.as_i64().or_else(|| {
            let f = value.as_f64()?;
            (f.fract() == 0.0 && f.abs() <= EXACT_IN_F64).then_some(f as i64)
        })
    }
}

impl Read<'_> for f64 {
    const KIND: Kind = Kind::Number;
    #[inline]
    fn read(value: &Value) -> Option<f64> {
        value.as_f64()
    }
}

impl<'a> Read<'a> for &'a Value {
    const KIND: Kind = Kind::Json;
    #[inline]
    fn read(value: &'a Value) -> Option<&'a Value> {
        Some(value)
    }
}

impl CompiledSnapshot {
    /// The outcome of `key` for `ctx` read as a `T`: `WRONG_TYPE` when the flag is of another
    /// kind or its value does not convert.
    #[inline(always)]
    pub(crate) fn typed<'a, T: Read<'a>>(&'a self, key: &str, ctx: &Context) -> Typed<T> {
        let Some(slot) = self.index.get_inlined(key) else {
            return Err(ErrorKind::FlagNotFound);
        };
        if let (Some((v, why)), Some(value)) = (slot.constant, T::from_slot(slot)) {
            return Ok((slot.index, v, why, value));
        }
        self.typed_evaluated(slot, ctx)
    }

    /// The value of `key` for `ctx` read as a `T`, from the flag table's slot alone when it
    /// holds it: for the value getters, which need neither the variation nor the reason.
    #[inline(always)]
    pub(crate) fn answer<'a, T: Read<'a>>(&'a self, key: &str, ctx: &Context) -> Answer<T> {
        let Some(slot) = self.index.get_inlined(key) else {
            return Answer::Evaluated(Err(ErrorKind::FlagNotFound));
        };
        match T::from_slot(slot) {
            Some(value) => Answer::Constant(value),
            None => Answer::Evaluated(self.typed_evaluated(slot, ctx)),
        }
    }

    /// The value of `key` for `ctx` as a `T`, or `default`.
    #[inline(always)]
    fn value_or<'a, T: Read<'a>>(&'a self, key: &str, ctx: &Context, default: T) -> T {
        match self.answer(key, ctx) {
            Answer::Constant(value) => value,
            Answer::Evaluated(typed) => typed.map_or(default, |(.., value)| value),
        }
    }

    /// [`typed`](Self::typed) when the slot alone cannot answer.
    #[inline(never)]
    fn typed_evaluated<'a, T: Read<'a>>(&'a self, slot: &Slot, ctx: &Context) -> Typed<T> {
        let (i, v, why) = self.outcome_of(slot, ctx, Some(T::KIND))?;
        let value = self.value_of(i, v).ok_or(ErrorKind::MalformedFlag)?;
        let value = T::read(value).ok_or(ErrorKind::WrongType)?;
        Ok((i, v, why, value))
    }

    /// A typed outcome spelled out, `default` when it failed.
    pub(crate) fn typed_detail<T>(&self, typed: Typed<T>, default: T) -> Detail<T> {
        match typed {
            Ok((i, v, why, value)) => {
                let outcome: Outcome = Ok((i, v, why));
                let e = self.detail(outcome);
                Detail {
                    value,
                    variation: e.variation.map(str::to_owned),
                    variation_index: e.variation_index,
                    reason: e.reason.into_owned(),
                }
            }
            Err(error) => Detail::error(default, error),
        }
    }

    /// A boolean flag's value for `ctx`, or `default` (unknown flag, another kind, malformed).
    #[inline]
    pub fn bool_variation(&self, key: &str, ctx: &Context, default: bool) -> bool {
        self.value_or(key, ctx, default)
    }

    /// A string flag's value for `ctx`, or `default`.
    pub fn string_variation<'a>(&'a self, key: &str, ctx: &Context, default: &'a str) -> &'a str {
        self.value_or(key, ctx, default)
    }

    /// A number flag's value for `ctx` as an integer, or `default`. A value with a fraction
    /// (`2.5`) is not an integer: `default`, reason `WRONG_TYPE`.
    pub fn int_variation(&self, key: &str, ctx: &Context, default: i64) -> i64 {
        self.value_or(key, ctx, default)
    }

    /// A number flag's value for `ctx`, or `default`.
    pub fn float_variation(&self, key: &str, ctx: &Context, default: f64) -> f64 {
        self.value_or(key, ctx, default)
    }

    /// Any flag's value for `ctx` as JSON, or `default`.
    pub fn json_variation<'a>(&'a self, key: &str, ctx: &Context, default: &'a Value) -> &'a Value {
        self.value_or(key, ctx, default)
    }

    /// [`bool_variation`](Self::bool_variation) with the variation and the reason.
    pub fn bool_variation_detail(&self, key: &str, ctx: &Context, default: bool) -> Detail<bool> {
        self.typed_detail(self.typed(key, ctx), default)
    }

    /// [`string_variation`](Self::string_variation) with the variation and the reason.
    pub fn string_variation_detail<'a>(
        &'a self,
        key: &str,
        ctx: &Context,
        default: &'a str,
    ) -> Detail<&'a str> {
        self.typed_detail(self.typed(key, ctx), default)
    }

    /// [`int_variation`](Self::int_variation) with the variation and the reason.
    pub fn int_variation_detail(&self, key: &str, ctx: &Context, default: i64) -> Detail<i64> {
        self.typed_detail(self.typed(key, ctx), default)
    }

    /// [`float_variation`](Self::float_variation) with the variation and the reason.
    pub fn float_variation_detail(&self, key: &str, ctx: &Context, default: f64) -> Detail<f64> {
        self.typed_detail(self.typed(key, ctx), default)
    }

    /// [`json_variation`](Self::json_variation) with the variation and the reason.
    pub fn json_variation_detail<'a>(
        &'a self,
        key: &str,
        ctx: &Context,
        default: &'a Value,
    ) -> Detail<&'a Value> {
        self.typed_detail(self.typed(key, ctx), default)
    }

    /// Every flag's evaluation for `ctx`, in key order: for rendering a page's flags or for
    /// debugging. Borrows everything; allocates nothing.
    pub fn all_flags<'a>(
        &'a self,
        ctx: &'a Context,
    ) -> impl ExactSizeIterator<Item = (&'a str, Evaluation<'a>)> + 'a {
        (0..self.flags.len()).map(move |i| {
            let key = &*self.flags[i].key;
            (key, self.detail(self.outcome_at(i, ctx, None)))
        })
    }
}
