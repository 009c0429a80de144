//! One server per database: an OS file lock on `<db>.lock`, held for the server's life.
//!
//! Two servers on one SQLite file would each serve their own in-memory state and both run
//! the release scheduler, so the second refuses to start. The lock is the kernel's (`flock`
//! on Unix), so it dies with the process: a server killed with `kill -9` never blocks the
//! next start. The file holds the holder's PID, for the message the second one prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

/// The lock on a database; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DbLock {
    _file: File,
    path: PathBuf,
}

impl DbLock {
    /// Takes the lock beside `db`, or fails at once, naming the database and the PID of the
    /// server holding it.
    pub fn acquire(db: &Path) -> anyhow::Result<DbLock> {
        let path = lock_path(db);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot create the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = match holder_pid(&mut file) {
                    Some(pid) => format!("another flag-server (pid {pid})"),
                    None => "another flag-server".to_owned(),
                };
                anyhow::bail!(
                    "the database {} is in use by {holder}; stop it first, or give this one \
                     another --db",
                    db.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .with_context(|| format!("cannot write to the lock file {}", path.display()))?;
        Ok(DbLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `flags.db` → `flags.db.lock`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The PID the holder wrote; it writes it right after taking the lock, so an empty file is
/// read again for a moment.
fn holder_pid(file: &mut File) -> Option<u32> {
    for _ in 0..20 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_string(&mut text).is_ok() {
            if let Ok(pid) = text.trim().parse() {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("flags.db");
        let first = DbLock::acquire(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("flags.db.lock"));
        let pid = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(first.path()).unwrap().trim(), pid);
        let refused = DbLock::acquire(&db).unwrap_err().to_string();
        assert!(refused.contains(&db.display().to_string()), "{refused}");
        assert!(refused.contains(&format!("pid {pid}")), "{refused}");
        assert!(refused.contains("--db"), "{refused}");
        drop(first);
        DbLock::acquire(&db).unwrap();
    }
}
