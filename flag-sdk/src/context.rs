//! The context a flag is evaluated for: a required string `key` and any attributes.
//!
//! Attributes are strings, numbers, booleans, or arrays of those (contract section 2). Any other
//! JSON value is kept but never matches a clause; `null` reads as a missing attribute.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::keys::{Name, Print};

/// The attribute that holds the context key.
pub const KEY_ATTRIBUTE: &str = "key";

/// Who or what a flag is evaluated for.
#[derive(Clone, PartialEq)]
pub struct Context {
    key: String,
    /// Sorted by name, each with its name's print: a context carries a handful of
    /// attributes, and a scan comparing prints finds one in a few instructions.
    attributes: Vec<(String, Print, Value)>,
}

/// Why a JSON value is not a context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The value is not a JSON object.
    #[error("a context must be a JSON object")]
    NotAnObject,
    /// `key` is absent or not a string.
    #[error("a context needs a string `key`")]
    MissingKey,
}

impl Context {
    /// A context with only a key.
    pub fn new(key: impl Into<String>) -> Self {
        Context {
            key: key.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds or replaces an attribute (`key` replaces the context key when it is a string).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// Adds or replaces an attribute (`key` replaces the context key when it is a string).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        if name == KEY_ATTRIBUTE {
            if let Value::String(key) = value {
                self.key = key;
            }
            return;
        }
        match self.position(&name) {
            Ok(i) => self.attributes[i].2 = value,
            Err(i) => {
                let print = Print::of(&name);
                self.attributes.insert(i, (name, print, value));
            }
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.attributes
            .binary_search_by(|(k, _, _)| k.as_str().cmp(name))
    }

    /// The value of `name`, whose print is `print`, read on every clause: a scan comparing
    /// prints, or a binary search for a context with many attributes.
    #[inline(always)]
    fn find(&self, name: &str, print: Print) -> Option<&Value> {
        if self.attributes.len() > 16 {
            return self.search(name);
        }
        self.attributes
            .iter()
            .find(|(k, p, _)| print.same(name, *p, k))
            .map(|(_, _, v)| v)
    }

    /// [`find`](Self::find) for a context with many attributes.
    #[inline(never)]
    fn search(&self, name: &str) -> Option<&Value> {
        self.position(name).ok().map(|i| &self.attributes[i].2)
    }

    /// The context key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// An attribute's value; `None` when absent or `null`. `key` is the context key.
    #[inline]
    pub fn attribute(&self, name: &str) -> Option<Attribute<'_>> {
        self.lookup(name, Print::of(name), name == KEY_ATTRIBUTE)
    }

    /// [`attribute`](Self::attribute) of a name compiled once for many lookups, inlined
    /// into the clause that reads it.
    #[inline(always)]
    pub(crate) fn attribute_named(&self, name: &Name) -> Option<Attribute<'_>> {
        self.lookup(name.as_str(), name.print(), name.is_key())
    }

    #[inline(always)]
    fn lookup(&self, name: &str, print: Print, is_key: bool) -> Option<Attribute<'_>> {
        if is_key {
            return Some(Attribute::Key(&self.key));
        }
        match self.find(name, print) {
            None | Some(Value::Null) => None,
            Some(value) => Some(Attribute::Value(value)),
        }
    }

    /// Builds a context from a JSON object.
    pub fn from_json(value: Value) -> Result<Self, ContextError> {
        let Value::Object(map) = value else {
            return Err(ContextError::NotAnObject);
        };
        Self::from_map(map)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, ContextError> {
        let Some(Value::String(key)) = map.remove(KEY_ATTRIBUTE) else {
            return Err(ContextError::MissingKey);
        };
        let mut attributes: Vec<(String, Print, Value)> = map
            .into_iter()
            .map(|(name, value)| {
                let print = Print::of(&name);
                (name, print, value)
            })
            .collect();
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Context { key, attributes })
    }

    /// The context as a JSON object, `key` included.
    pub fn to_json(&self) -> Value {
        let mut map: Map<String, Value> = self
            .attributes
            .iter()
            .map(|(k, _, v)| (k.clone(), v.clone()))
            .collect();
        map.insert(KEY_ATTRIBUTE.to_owned(), Value::String(self.key.clone()));
        Value::Object(map)
    }
}

/// An attribute as read for a clause: the context key, or a stored JSON value.
#[derive(Debug, Clone, Copy)]
pub enum Attribute<'a> {
    /// The context key.
    Key(&'a str),
    /// Any other attribute.
    Value(&'a Value),
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("key", &self.key)
            .field(
                "attributes",
                &self
                    .attributes
                    .iter()
                    .map(|(k, _, v)| (k, v))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Context::from_map(map).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_is_required_and_must_be_a_string() {
        assert_eq!(
            Context::from_json(json!({"country": "NL"})),
            Err(ContextError::MissingKey)
        );
        assert_eq!(
            Context::from_json(json!({"key": 7})),
            Err(ContextError::MissingKey)
        );
        assert_eq!(
            Context::from_json(json!([1])),
            Err(ContextError::NotAnObject)
        );
        let ctx = Context::from_json(json!({"key": "u1", "country": "NL"})).unwrap();
        assert_eq!(ctx.key(), "u1");
        assert!(matches!(ctx.attribute("key"), Some(Attribute::Key("u1"))));
    }

    #[test]
    fn null_reads_as_missing() {
        let ctx = Context::new("u1").with("plan", Value::Null);
        assert!(ctx.attribute("plan").is_none());
        assert!(ctx.attribute("absent").is_none());
    }

    #[test]
    fn round_trips_through_json() {
        let ctx = Context::new("u1").with("tags", json!(["a", "b"]));
        let back: Context = serde_json::from_value(serde_json::to_value(&ctx).unwrap()).unwrap();
        assert_eq!(back, ctx);
    }
}
