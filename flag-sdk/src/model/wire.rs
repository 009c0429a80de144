//! The wire form of the model's enums that must accept the future: an operator or a flag
//! kind is a JSON string, kept as `Unknown` when this version does not know it; a serve is
//! an object with one key, `variation` or `rollout`, and any other object is kept whole as
//! `Serve::Unknown`. Each writes back exactly what it read.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{FlagKind, Op, Rollout, Serve};

/// Reads a JSON string into `T` through `from_name`, without allocating for a known name.
struct NameVisitor<T>(fn(&str) -> T, &'static str);

impl<T> Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<T, E> {
        Ok((self.0)(name))
    }
}

/// Serde for an enum written as its name: `as_str` to write, `from_name` to read.
macro_rules! by_name {
    ($ty:ty, $expecting:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(NameVisitor(<$ty>::from_name, $expecting))
            }
        }
    };
}

by_name!(FlagKind, "a flag kind");
by_name!(Op, "an operator name");

impl Serialize for Serve {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Serve::Variation(key) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("variation", key)?;
                map.end()
            }
            Serve::Rollout(rollout) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("rollout", rollout)?;
                map.end()
            }
            Serve::Unknown(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Serve {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ServeVisitor)
    }
}

struct ServeVisitor;

impl<'de> Visitor<'de> for ServeVisitor {
    type Value = Serve;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a serve: {"variation": KEY} or {"rollout": {...}}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Serve, A::Error> {
        // The known forms are read typed, so that their own errors name their fields.
        let mut rest = Map::new();
        let known = match map.next_key::<String>()? {
            None => None,
            Some(key) if key == "variation" => Some(Serve::Variation(map.next_value()?)),
            Some(key) if key == "rollout" => Some(Serve::Rollout(map.next_value::<Rollout>()?)),
            Some(key) => {
                rest.insert(key, map.next_value()?);
                None
            }
        };
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            rest.insert(key, value);
        }
        match known {
            Some(serve) if rest.is_empty() => Ok(serve),
            Some(serve) => {
                // A known form with extra keys is not one this version can trust.
                if let Ok(Value::Object(first)) = serde_json::to_value(&serve) {
                    rest.extend(first);
                }
                Ok(Serve::Unknown(Value::Object(rest)))
            }
            None => Ok(Serve::Unknown(Value::Object(rest))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_known_name_reads_back_as_itself() {
        for op in Op::KNOWN {
            assert_eq!(Op::from_name(op.as_str()), op);
            let written = serde_json::to_value(&op).unwrap();
            assert_eq!(serde_json::from_value::<Op>(written).unwrap(), op);
        }
        for kind in ["boolean", "string", "number", "json"] {
            assert!(!matches!(FlagKind::from_name(kind), FlagKind::Unknown(_)));
        }
    }

    #[test]
    fn unknown_names_and_serves_are_kept_as_written() {
        let op: Op = serde_json::from_value(json!("near")).unwrap();
        assert_eq!(op, Op::Unknown("near".into()));
        assert_eq!(serde_json::to_value(&op).unwrap(), json!("near"));
        let kind: FlagKind = serde_json::from_value(json!("xml")).unwrap();
        assert_eq!(serde_json::to_value(&kind).unwrap(), json!("xml"));
        for written in [
            json!({"split": {"by": "org"}}),
            json!({"variation": "on", "note": "x"}),
            json!({}),
        ] {
            let serve: Serve = serde_json::from_value(written.clone()).unwrap();
            assert!(matches!(serve, Serve::Unknown(_)), "{written}");
            assert_eq!(serde_json::to_value(&serve).unwrap(), written);
        }
        let serve: Serve = serde_json::from_value(json!({"variation": "on"})).unwrap();
        assert_eq!(serve, Serve::Variation("on".into()));
        assert!(serde_json::from_value::<Serve>(json!({"variation": 3})).is_err());
    }
}
