//! The committed change log: every effect of a write is appended as a row
//! `(seq, environment, revision, kind, key, data)` in the write's own transaction (a flag's
//! or a segment's [`Change`] as its parts, see [`append`]), so what is committed and what is
//! published can never disagree. It is the source of truth for the fan-out: the writer publishes a local commit from the effects it appended, and a replica
//! that did not make the commit publishes it from the rows it reads here; both take the same
//! path (`effects::after_commit`).
//!
//! `seq` is global and grows in commit order (writers hold the write lock while they append,
//! see `writer`), so a follower that reads `seq > last` never skips a row. Revisions are per
//! environment and gap-free. The log is pruned by count and age ([`prune`]); a reader asking
//! for rows older than what is kept gets a fresh snapshot instead.

use std::sync::mpsc::Sender;
use std::time::Duration;

use flag_sdk::{Change, Snapshot};
use postgres::fallible_iterator::FallibleIterator;

use super::effects::Effect;
use super::sql::{params, Conn, Error, Param, Row};
use super::to_json;
use super::writer::Msg;

/// Rows kept at least, whatever their age.
pub const KEEP_ROWS: u64 = 10_000;
/// Rows younger than this are kept, however many there are (milliseconds).
pub const KEEP_MILLIS: i64 = 24 * 3600 * 1000;

/// What a PostgreSQL group runs before COMMIT when it changed something: every replica's
/// [`listen`] thread hears it once the commit is visible.
pub const NOTIFY: &str = "NOTIFY flag_changes";

/// Follows other replicas' commits (PostgreSQL): a thread with its own connection that
/// `LISTEN`s and wakes the writer to read the log. A lost notification or a dropped listener
/// costs at most the writer's periodic read; the thread reconnects and ends when the writer
/// has gone.
pub fn listen(url: String, writer: Sender<Msg>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("change-listener".into())
        .spawn(move || loop {
            match postgres::Client::connect(&url, postgres::NoTls)
                .and_then(|mut c| c.batch_execute("LISTEN flag_changes").map(|()| c))
            {
                Ok(mut client) => {
                    if writer.send(Msg::CatchUp).is_err() {
                        return;
                    }
                    loop {
                        let heard = client
                            .notifications()
                            .timeout_iter(Duration::from_secs(1))
                            .next();
                        match heard {
                            Ok(Some(_)) => {
                                // One read of the log serves every notification queued now.
                                while let Ok(Some(_)) = client.notifications().iter().next() {}
                                if writer.send(Msg::CatchUp).is_err() {
                                    return;
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "change listener: connection lost");
                                break;
                            }
                            Ok(None) if client.is_closed() => break,
                            Ok(None) => {}
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "change listener: cannot connect"),
            }
            std::thread::sleep(Duration::from_secs(1));
        })
        .map(drop)
}

/// Appends `effects` in order (inside the caller's transaction), with the next round trip:
/// a change as its parts (`kind`, `key`, the flag's or segment's JSON as `data`, none for a
/// delete), an environment's creation with its snapshot, a change of the tokens with nothing.
pub fn append(conn: &Conn, effects: &[Effect], at_millis: i64) -> Result<(), Error> {
    let snapshots: Vec<Option<String>> = effects
        .iter()
        .map(|effect| match effect {
            Effect::Environment(snapshot) => Some(to_json(snapshot)),
            _ => None,
        })
        .collect();
    let params: Vec<Param<'_>> = effects
        .iter()
        .zip(&snapshots)
        .flat_map(|(effect, snapshot)| {
            let (environment, revision) = effect.target().unwrap_or(("", 0));
            let (kind, key, data) = match effect {
                Effect::Change { change, data, .. } => (change.kind(), change.key(), data.as_ref()),
                Effect::Environment(s) => {
                    ("environment", s.environment.as_str(), snapshot.as_ref())
                }
                Effect::Tokens => ("tokens", "", None),
            };
            [
                Param::from(environment),
                Param::from(revision),
                Param::from(kind),
                Param::from(key),
                Param::from(data),
                Param::from(at_millis),
            ]
        })
        .collect();
    conn.defer_insert(
        "changes (environment, revision, kind, key, data, at)",
        6,
        &params,
    )
}

/// The last `seq` committed (0 for an empty log).
pub fn head(conn: &Conn) -> Result<u64, Error> {
    conn.query_one(HEAD, params![])?.get(0)
}

/// [`head`] inside the caller's transaction, then `then` (its `COMMIT`), in one round trip.
pub fn head_then(conn: &Conn, then: &str) -> Result<u64, Error> {
    conn.query_one_then(HEAD, params![], then)?.get(0)
}

const HEAD: &str = "SELECT COALESCE(MAX(seq), 0) FROM changes";

/// The read of every row after `?1` (a `seq`), in order, at most `?2` of them
/// ([`since_rows`]).
pub const SINCE: &str = "SELECT seq, environment, revision, kind, key, data FROM changes \
                         WHERE seq > ?1 ORDER BY seq LIMIT ?2";

/// The effects of the rows of a [`SINCE`] read, with their `seq`.
pub fn since_rows(rows: &[Row]) -> Result<Vec<(u64, Effect)>, Error> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let seq: u64 = r.get(0)?;
        let environment: String = r.get(1)?;
        let revision: u64 = r.get(2)?;
        let kind: String = r.get(3)?;
        let key: String = r.get(4)?;
        let data: Option<String> = r.get(5)?;
        if let Some(e) = to_effect(environment, revision, &kind, key, data.as_deref()) {
            out.push((seq, e));
        }
    }
    Ok(out)
}

/// `environment`'s changes after revision `after` up to `upto`, in order, when the log
/// still holds each of them as a change of a flag or a segment; `None` when it does not
/// (pruned, unreadable, or a change the stream cannot carry such as the environment's
/// creation): the stream then starts with a `put`.
pub fn between(
    conn: &Conn,
    environment: &str,
    after: u64,
    upto: u64,
) -> Result<Option<Vec<Change>>, Error> {
    let rows = conn.query_map(
        "SELECT revision, kind, key, data FROM changes \
         WHERE environment = ?1 AND revision > ?2 AND revision <= ?3 ORDER BY revision, seq",
        params![environment, after, upto],
        |r| {
            let revision: u64 = r.get(0)?;
            let kind: String = r.get(1)?;
            let key: String = r.get(2)?;
            let data: Option<String> = r.get(3)?;
            Ok((revision, kind, key, data))
        },
    )?;
    let mut changes = Vec::with_capacity(rows.len());
    let mut at = after;
    for (revision, kind, key, data) in rows {
        // Revisions are gap-free: a missing one was pruned.
        if revision != at && revision != at + 1 {
            return Ok(None);
        }
        at = revision;
        match to_change(revision, &kind, key, data.as_deref()) {
            Some(change) => changes.push(change),
            None => return Ok(None),
        }
    }
    Ok((at == upto).then_some(changes))
}

/// Drops rows beyond the last [`KEEP_ROWS`] that are older than [`KEEP_MILLIS`].
pub fn prune(conn: &Conn, now_millis: i64) -> Result<u64, Error> {
    let head = head(conn)?;
    conn.execute(
        "DELETE FROM changes WHERE seq <= ?1 AND at < ?2",
        params![
            head.saturating_sub(KEEP_ROWS) as i64,
            now_millis - KEEP_MILLIS
        ],
    )
}

/// A row as the effect it recorded; `None` for a kind this build does not know (a newer
/// replica's) or data it cannot read (logged).
fn to_effect(
    environment: String,
    revision: u64,
    kind: &str,
    key: String,
    data: Option<&str>,
) -> Option<Effect> {
    match (kind, data) {
        ("environment", Some(data)) => serde_json::from_str::<Snapshot>(data)
            .map_err(|error| tracing::error!(kind, key, %error, "unreadable change log row"))
            .ok()
            .map(Effect::Environment),
        ("tokens", _) => Some(Effect::Tokens),
        _ => Some(Effect::Change {
            change: to_change(revision, kind, key, data)?,
            environment,
            data: data.map(str::to_owned),
        }),
    }
}

/// A row of a flag or a segment as its change; `None` for another kind, or data it cannot
/// read (logged).
fn to_change(revision: u64, kind: &str, key: String, data: Option<&str>) -> Option<Change> {
    Change::from_parts(revision, kind, key, data)
        .map_err(|error| tracing::error!(kind, revision, %error, "unreadable change log row"))
        .ok()
        .flatten()
}
