//! The readable diff of a change request: each changed field by JSON path, both values.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One changed field: its JSON path and both values (`null` where absent).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DiffEntry {
    /// E.g. `enabled`, `fallthrough.rollout.weights[0].weight`.
    pub path: String,
    /// The value in the base version.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The proposed value.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// The fields that differ between `before` and `after` (the version aside), by JSON path.
pub fn diff(before: &Value, after: &Value) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    walk("", Some(before), Some(after), &mut out);
    out.retain(|d| d.path != "version");
    out
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<DiffEntry>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(&join(key), b.get(key), a.get(key), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if b.len() == a.len() => {
            for (i, (b, a)) in b.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), Some(b), Some(a), out);
            }
        }
        (b, a) if b != a => out.push(DiffEntry {
            path: path.to_owned(),
            before: b.cloned(),
            after: a.cloned(),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_each_changed_field_by_path() {
        let before = json!({"version": 3, "enabled": false, "rules": [{"id": "a"}],
                            "fallthrough": {"variation": "off"}});
        let after = json!({"version": 4, "enabled": true, "rules": [{"id": "a"}],
                           "fallthrough": {"variation": "on"}});
        let paths: Vec<String> = diff(&before, &after).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["enabled", "fallthrough.variation"]);
        let grown = diff(&json!({"rules": []}), &json!({"rules": [{"id": "b"}]}));
        assert_eq!(grown[0].path, "rules");
        assert_eq!(grown[0].after, Some(json!([{"id": "b"}])));
    }
}
