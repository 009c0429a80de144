//! SQLite's WAL checkpoints, off the write path.
//!
//! By default SQLite checkpoints inside the COMMIT that takes the WAL past 1,000 pages: that
//! commit copies every page into the database file and fsyncs it before it returns, so one
//! write in a few hundred waits 100–300 ms and every change behind it (a kill among them)
//! waits too. The writer connection turns automatic checkpoints off
//! (`wal_autocheckpoint = 0`) and this thread, on its own connection, runs a `PASSIVE`
//! checkpoint every [`EVERY`]: it copies what it can without taking any lock a writer or
//! a reader needs, and the writer starts the WAL over once a checkpoint has copied it all.
//! The thread ends with the store (when the last [`Checkpointer`] is dropped).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;

/// How often the WAL is copied into the database file.
const EVERY: Duration = Duration::from_secs(1);

/// A WAL that grew past this (a burst of writes) is cut back to it when the writer starts
/// it over.
pub(super) const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Keeps the checkpoint thread running while the store lives.
pub(super) struct Checkpointer {
    _stop: Sender<()>,
}

/// Starts checkpointing `path` (a database the writer opened in WAL mode).
pub(super) fn start(path: &Path) -> anyhow::Result<Checkpointer> {
    let conn = open(path)?;
    let (stop, stopped) = channel::<()>();
    let path: PathBuf = path.to_owned();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            // Logged when it starts failing (a full disk, say) and when it works again.
            let mut failing = false;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    Err(e) if !failing => {
                        tracing::warn!(db = %path.display(), error = %e, "WAL checkpoint failed; retrying every second");
                        failing = true;
                    }
                    Ok(()) if failing => {
                        tracing::info!(db = %path.display(), "WAL checkpoint works again");
                        failing = false;
                    }
                    _ => {}
                }
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
