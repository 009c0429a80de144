//! Storage faults seen by the writer: the 503 detail of a failed BEGIN or COMMIT (telling a
//! read-only file system from other I/O errors), and [`Health`], the last fault until a write
//! succeeds again (what `/readyz` reports). No SQL beyond what the writer hands it.

use std::sync::Mutex;

use super::sql::{self, Conn};
use crate::error::{storage_fault, IO_ERROR, READ_ONLY};

/// Whether the database can be written, as the writer last found out: the detail of the last
/// storage fault, until a commit writes again.
#[derive(Debug, Default)]
pub struct Health {
    fault: Mutex<Option<String>>,
}

impl Health {
    /// The detail of the storage fault that made the last write fail, if none has succeeded
    /// since.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set(&self, fault: Option<String>) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }
}

/// The 503 detail of a failed BEGIN or COMMIT. An I/O error on a file system that has gone
/// read-only (the kernel does that after disk errors) says so.
pub(crate) fn failure_detail(conn: &Conn, e: &sql::Error) -> String {
    match storage_fault(e) {
        Some(IO_ERROR) if read_only_fs(conn) => READ_ONLY.to_owned(),
        Some(detail) => detail.to_owned(),
        None => "the database could not commit; the change was not saved".to_owned(),
    }
}

/// Whether the database's directory is on a read-only file system: tries to create (and
/// removes) a probe file beside it. Never opens the database file itself: closing another
/// descriptor of it would drop SQLite's POSIX locks. Always false on PostgreSQL (no file here).
fn read_only_fs(conn: &Conn) -> bool {
    let Some(db) = conn
        .as_sqlite()
        .and_then(|c| c.path())
        .filter(|p| !p.is_empty())
    else {
        return false;
    };
    let db = std::path::Path::new(db);
    let name = db
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("flags.db");
    let probe = db.with_file_name(format!(".{name}.probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => e.kind() == std::io::ErrorKind::ReadOnlyFilesystem,
    }
}
