//! `flag log [KEY]`: the audit log, newest first, each entry with what it changed (the
//! before and after of its row, path by path); `--since 2h`, `--until TIME` and `--around
//! TIME` (± `--window`, 30 minutes by default) bound it in time.

use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::Ctx;
use crate::api::What;
use crate::diff;
use crate::output::{emit, emit_json, table};

/// `flag log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only changes of this flag.
    pub key: Option<String>,
    /// How many entries (1 to 500).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: u32,
    /// Only changes in the environment given by --env (or the profile).
    #[arg(long)]
    pub this_env: bool,
    /// Only changes since this long ago (`90s`, `30m`, `2h`, `1d`) or this time (RFC 3339).
    #[arg(long, value_name = "AGE|TIME", conflicts_with = "around")]
    pub since: Option<String>,
    /// Only changes until this time (RFC 3339) or this long ago.
    #[arg(long, value_name = "AGE|TIME", conflicts_with = "around")]
    pub until: Option<String>,
    /// Only changes around this time: from --window before it to --window after it
    /// (`2026-12-01T03:00Z`; seconds and an offset are optional).
    #[arg(long, value_name = "TIME")]
    pub around: Option<String>,
    /// How far before and after --around to look.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30m",
        requires = "around"
    )]
    pub window: String,
    /// One line per entry, without what changed.
    #[arg(long)]
    pub brief: bool,
}

/// A point in time as people write it: an age (`2h`: that long before `now`) or a date-time
/// (RFC 3339; seconds may be left out, `2026-12-01T03:00Z`), as RFC 3339 UTC.
fn point_in_time(text: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    let text = text.trim();
    if text.starts_with(|c: char| c.is_ascii_digit()) && !text.contains('-') {
        let secs = super::release::parse_duration_secs(text).map_err(anyhow::Error::msg)?;
        return Ok(now - time::Duration::seconds(secs as i64));
    }
    let with_seconds = add_seconds(text);
    OffsetDateTime::parse(&with_seconds, &Rfc3339).map_err(|_| {
        anyhow::anyhow!("`{text}` is neither an age like 2h nor a date-time like 2026-12-01T03:00Z")
    })
}

/// `2026-12-01T03:00Z` → `2026-12-01T03:00:00Z` (RFC 3339 needs the seconds).
fn add_seconds(text: &str) -> String {
    let Some(t) = text.find(['T', 't']) else {
        return text.to_owned();
    };
    let time = &text[t + 1..];
    let zone = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
    if time[..zone].matches(':').count() == 1 {
        format!("{}:00{}", &text[..t + 1 + zone], &time[zone..])
    } else {
        text.to_owned()
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The `since` and `until` query parameters the options ask for.
fn window(a: &LogArgs, now: OffsetDateTime) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut query = Vec::new();
    if let Some(around) = &a.around {
        let at = point_in_time(around, now)?;
        let half = super::release::parse_duration_secs(&a.window).map_err(anyhow::Error::msg)?;
        let half = time::Duration::seconds(half as i64);
        query.push(("since", rfc3339(at - half)));
        query.push(("until", rfc3339(at + half)));
    }
    if let Some(since) = &a.since {
        query.push(("since", rfc3339(point_in_time(since, now)?)));
    }
    if let Some(until) = &a.until {
        query.push(("until", rfc3339(point_in_time(until, now)?)));
    }
    Ok(query)
}

#[derive(Debug, Deserialize)]
struct Entry {
    at: String,
    actor: String,
    action: String,
    #[serde(default)]
    flag: Option<String>,
    #[serde(default)]
    segment: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    before: Option<Value>,
    #[serde(default)]
    after: Option<Value>,
}

impl Entry {
    /// What the entry changed, one line per path (nothing for a creation or a deletion,
    /// whose whole object is the change).
    fn changes(&self) -> Vec<String> {
        let (Some(before), Some(after)) = (&self.before, &self.after) else {
            return Vec::new();
        };
        diff::changes(before, after, &["version", "updated_at"])
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Runs `flag log`.
pub fn run(ctx: &Ctx, a: LogArgs) -> anyhow::Result<()> {
    let (api, env) = ctx.api()?;
    let mut query = vec![("limit", a.limit.to_string())];
    if let Some(k) = &a.key {
        query.push(("flag", k.clone()));
    }
    if a.this_env {
        query.push(("environment", env.clone()));
    }
    query.extend(window(&a, OffsetDateTime::now_utc())?);
    let raw: Value = api.get_query("/api/v1/audit", &query, What::Other)?;
    if ctx.json {
        emit_json(&raw);
        return Ok(());
    }
    let entries: Vec<Entry> =
        serde_json::from_value(raw.get("entries").cloned().unwrap_or(Value::Array(vec![])))?;
    if entries.is_empty() {
        emit("no audit entries");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.actor.clone(),
                e.action.clone(),
                e.flag
                    .clone()
                    .or_else(|| e.segment.clone())
                    .unwrap_or_else(|| "-".into()),
                e.environment.clone().unwrap_or_else(|| "-".into()),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let text = table(&["WHEN", "WHO", "ACTION", "WHAT", "ENV", "REASON"], &rows);
    let mut lines = text.lines();
    emit(lines.next().unwrap_or_default());
    for (line, entry) in lines.zip(&entries) {
        emit(line);
        if !a.brief {
            for change in entry.changes() {
                emit(format!("    {change}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    fn query(args: &[&str]) -> Vec<(&'static str, String)> {
        let cli = Cli::try_parse_from([&["log"], args].concat()).unwrap();
        let now = OffsetDateTime::parse("2026-12-01T12:00:00Z", &Rfc3339).unwrap();
        window(&cli.log, now).unwrap()
    }

    #[test]
    fn ages_and_times_become_a_window() {
        assert_eq!(
            query(&["--since", "2h"]),
            [("since", "2026-12-01T10:00:00Z".to_owned())]
        );
        assert_eq!(
            query(&["--around", "2026-12-01T03:00Z"]),
            [
                ("since", "2026-12-01T02:30:00Z".to_owned()),
                ("until", "2026-12-01T03:30:00Z".to_owned())
            ]
        );
        assert_eq!(
            query(&["--around", "2026-12-01T04:00:00+01:00", "--window", "1h"]),
            [
                ("since", "2026-12-01T02:00:00Z".to_owned()),
                ("until", "2026-12-01T04:00:00Z".to_owned())
            ]
        );
        assert!(
            Cli::try_parse_from(["log", "--since", "2h", "--around", "2026-12-01T03:00Z"]).is_err()
        );
        let cli = Cli::try_parse_from(["log", "--since", "yesterday"]).unwrap();
        assert!(window(&cli.log, OffsetDateTime::now_utc()).is_err());
    }
}
