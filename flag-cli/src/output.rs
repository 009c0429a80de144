//! Everything the CLI prints on stdout: aligned tables for people, JSON for scripts, and the
//! one-line descriptions of what a flag serves. Writes ignore a closed pipe (`flag list | head`).

use std::fmt::Display;
use std::io::Write;

use flag_sdk::{Flag, Serve};
use serde::Serialize;

/// Prints one line (or block) on stdout.
pub fn emit(text: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Prints a value as pretty JSON.
pub fn emit_json<T: Serialize + ?Sized>(value: &T) {
    emit(serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
}

/// Prints a value as one line of JSON (JSON Lines).
pub fn emit_json_line<T: Serialize + ?Sized>(value: &T) {
    emit(serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
}

/// An aligned table: headers in capitals, two spaces between columns, no trailing blanks.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// Thousandths of a percent as a percentage: `25000` → `25%`, `500` → `0.5%`.
pub fn percent(weight: u32) -> String {
    let whole = weight / 1000;
    let frac = weight % 1000;
    if frac == 0 {
        format!("{whole}%")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}%", frac.trim_end_matches('0'))
    }
}

/// What a serve gives: `on`, or `25% on / 75% off`.
pub fn serve(serve: &Serve) -> String {
    match serve {
        Serve::Variation(v) => v.clone(),
        Serve::Rollout(r) => r
            .weights
            .iter()
            .map(|w| format!("{} {}", percent(w.weight), w.variation))
            .collect::<Vec<_>>()
            .join(" / "),
        Serve::Unknown(other) => other.to_string(),
        other => format!("{other:?}"),
    }
}

/// A variation key with its value: `off (false)`.
pub fn variation(flag: &Flag, key: &str) -> String {
    match flag.variations.iter().find(|v| v.key == key) {
        Some(v) => format!("{key} ({})", v.value),
        None => key.to_owned(),
    }
}

/// One line of what a flag serves: off and its variation, or on with its fallthrough.
pub fn state(flag: &Flag) -> String {
    let mut on = format!("fallthrough {}", serve(&flag.fallthrough));
    let mut extra = Vec::new();
    if !flag.prerequisites.is_empty() {
        extra.push(plural(flag.prerequisites.len(), "prerequisite"));
    }
    if !flag.targets.is_empty() {
        extra.push(plural(flag.targets.len(), "target list"));
    }
    if !flag.rules.is_empty() {
        extra.push(plural(flag.rules.len(), "rule"));
    }
    if !extra.is_empty() {
        on.push_str(&format!(" (after {})", extra.join(", ")));
    }
    if flag.enabled {
        format!("ON, {on}")
    } else {
        format!(
            "OFF, serving {} to everyone; when on: {on}",
            variation(flag, &flag.off_variation)
        )
    }
}

/// `1 rule`, `2 rules`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents() {
        assert_eq!(percent(25_000), "25%");
        assert_eq!(percent(500), "0.5%");
        assert_eq!(percent(12_345), "12.345%");
        assert_eq!(percent(100_000), "100%");
        assert_eq!(percent(0), "0%");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["KEY", "STATE"],
            &[
                vec!["a".into(), "on".into()],
                vec!["longer".into(), "off".into()],
            ],
        );
        assert_eq!(t, "KEY     STATE\na       on\nlonger  off");
    }

    #[test]
    fn states() {
        let mut flag: Flag = serde_json::from_value(serde_json::json!({
            "key": "f", "kind": "boolean", "enabled": true, "off_variation": "off",
            "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
            "fallthrough": {"rollout": {"bucket_by": "key", "weights": [
                {"variation": "on", "weight": 25000}, {"variation": "off", "weight": 75000}]}}
        }))
        .unwrap();
        assert_eq!(state(&flag), "ON, fallthrough 25% on / 75% off");
        flag.enabled = false;
        assert_eq!(
            state(&flag),
            "OFF, serving off (false) to everyone; when on: fallthrough 25% on / 75% off"
        );
    }
}
