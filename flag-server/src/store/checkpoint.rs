//! SQLite's WAL checkpoints, off the write path.
//!
//! By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages: that
//! commit copies every page into the database file and fsyncs it before it returns, so one
//! write in a few hundred waits 100–300 ms and every change behind it (a kill among them)
//! waits too. The writer connection turns automatic checkpoints off
//! (`wal_autocheckpoint = 0`) and this thread, on its own connection, runs a `PASSIVE`
//! checkpoint every [`EVERY`]: it copies what it can without taking any lock a writer or
//! a reader needs.
//!
//! SQLite starts the WAL over only when a write transaction begins with all of it copied,
//! which never happens while writes go on: each pass copies what was committed before it
//! started, and the groups committed during the pass are left. Left alone, a write storm
//! grew the WAL by 85 MB a second (427 MB in 5 s), every commit then appending to a growing
//! file. So when a pass finds the WAL past [`RESTART_AFTER`] frames, it asks the writer
//! ([`Msg::Checkpoint`]) to copy that rest itself between two groups (a short copy: what
//! was committed during the pass), after which the writer's next group starts the WAL over.
//! While writes go on, passes come every [`SOON`], so the WAL stays near a few MB.
//! The thread ends with the store (when the last [`Checkpointer`] is dropped).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;

use super::writer::Msg;

/// How often the WAL is copied into the database file.
const EVERY: Duration = Duration::from_secs(1);

/// A WAL longer than this many frames (one page each, about 4 MB: SQLite's own threshold)
/// is started over: the writer is asked to copy the rest.
const RESTART_AFTER: i64 = 1000;

/// How soon a pass follows one that found the WAL past [`RESTART_AFTER`], or grown by a
/// tenth of it since the pass before (writes go on).
const SOON: Duration = Duration::from_millis(50);

/// A WAL that grew past this (a burst of writes) is cut back to it when the writer starts
/// it over.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Keeps the checkpoint thread running while the store lives.
pub(super) struct Checkpointer {
    _stop: Sender<()>,
}

/// Starts checkpointing `path` (a database the writer opened in WAL mode), asking `writer`
/// to finish a pass when the WAL grows long.
pub(super) fn start(path: &Path, writer: Sender<Msg>) -> anyhow::Result<Checkpointer> {
    let conn = open(path)?;
    let (stop, stopped) = channel::<()>();
    let path: PathBuf = path.to_owned();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            // Logged when it starts failing (a full disk, say) and when it works again.
            let mut failing = false;
            let mut wait = SOON;
            // Frames in the WAL at the last pass.
            let mut last: i64 = 0;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                // (busy, frames in the WAL, frames copied)
                let frames = match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    r.get::<_, i64>(1)
                }) {
                    Ok(frames) => frames,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(db = %path.display(), error = %e, "WAL checkpoint failed; retrying every second");
                            failing = true;
                        }
                        wait = EVERY;
                        continue;
                    }
                };
                if failing {
                    tracing::info!(db = %path.display(), "WAL checkpoint works again");
                    failing = false;
                }
                // Frames written since the last pass (all of them when the WAL started over).
                let grown = if frames >= last { frames - last } else { frames };
                last = frames;
                if frames > RESTART_AFTER && writer.send(Msg::Checkpoint).is_err() {
                    return;
                }
                wait = if frames > RESTART_AFTER || grown > RESTART_AFTER / 10 {
                    SOON
                } else {
                    EVERY
                };
            }
        })
        .context("cannot start the checkpoint thread")?;
    Ok(Checkpointer { _stop: stop })
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    // `synchronous = FULL`: the checkpoint fsyncs the database file before the WAL may be
    // started over.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
        .context("cannot configure the checkpoint connection")?;
    Ok(conn)
}
