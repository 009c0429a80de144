//! What changed between two JSON documents, one line per changed path:
//! `~ enabled: false -> true`, `+ rules[1]: {...}`, `- targets[0]: {...}`. Used by `flag log`
//! (an audit row's before and after) and `flag diff` (one flag in two environments).

use serde_json::Value;

/// One difference at a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Only in the second document.
    Added(String, Value),
    /// Only in the first document.
    Removed(String, Value),
    /// In both, with different values.
    Changed(String, Value, Value),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added(path, v) => write!(f, "+ {}: {v}", name(path)),
            Change::Removed(path, v) => write!(f, "- {}: {v}", name(path)),
            Change::Changed(path, a, b) => write!(f, "~ {}: {a} -> {b}", name(path)),
        }
    }
}

fn name(path: &str) -> &str {
    if path.is_empty() {
        "(whole)"
    } else {
        path
    }
}

/// The differences from `a` to `b`, in document order; paths in `ignore` (top-level field
/// names, e.g. `version`) are skipped.
pub fn changes(a: &Value, b: &Value, ignore: &[&str]) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", a, b, ignore, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, a: &Value, b: &Value, ignore: &[&str], out: &mut Vec<Change>) {
    match (a, b) {
        _ if a == b => {}
        (Value::Object(x), Value::Object(y)) => {
            let ignored = |key: &str| path.is_empty() && ignore.contains(&key);
            for (key, va) in x {
                if ignored(key) {
                    continue;
                }
                let p = join(path, key);
                match y.get(key) {
                    Some(vb) => walk(&p, va, vb, ignore, out),
                    None => out.push(Change::Removed(p, va.clone())),
                }
            }
            for (key, vb) in y {
                if !x.contains_key(key) && !ignored(key) {
                    out.push(Change::Added(join(path, key), vb.clone()));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.iter().chain(y).any(is_container) => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), va, vb, ignore, out);
            }
            for (i, va) in x.iter().enumerate().skip(y.len()) {
                out.push(Change::Removed(format!("{path}[{i}]"), va.clone()));
            }
            for (i, vb) in y.iter().enumerate().skip(x.len()) {
                out.push(Change::Added(format!("{path}[{i}]"), vb.clone()));
            }
        }
        _ => out.push(Change::Changed(path.to_owned(), a.clone(), b.clone())),
    }
}

fn is_container(v: &Value) -> bool {
    v.is_object() || v.is_array()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lines(a: Value, b: Value) -> Vec<String> {
        changes(&a, &b, &["version"])
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn names_each_changed_path() {
        let a = json!({"version": 1, "enabled": false, "rules": [{"id": "nl", "clauses": [{"values": ["NL"]}]}]});
        let b = json!({"version": 2, "enabled": true, "rules": [{"id": "nl", "clauses": [{"values": ["NL", "BE"]}]}],
            "targets": [{"keys": ["u"]}]});
        assert_eq!(
            lines(a, b),
            [
                "~ enabled: false -> true",
                "~ rules[0].clauses[0].values: [\"NL\"] -> [\"NL\",\"BE\"]",
                "+ targets: [{\"keys\":[\"u\"]}]",
            ]
        );
    }

    #[test]
    fn added_and_removed_elements_of_lists_of_objects() {
        let a = json!({"rules": [{"id": "a"}, {"id": "b"}]});
        let b = json!({"rules": [{"id": "a"}]});
        assert_eq!(lines(a.clone(), b.clone()), ["- rules[1]: {\"id\":\"b\"}"]);
        assert_eq!(lines(b, a), ["+ rules[1]: {\"id\":\"b\"}"]);
        assert!(lines(json!({"x": 1}), json!({"x": 1})).is_empty());
    }
}
