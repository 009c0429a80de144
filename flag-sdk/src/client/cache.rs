//! The cache file: the last good snapshot on disk, for a cold start while the server is down.
//!
//! The file holds exactly the section 2 snapshot JSON, so a cache file is also a valid input
//! for [`Client::offline_from_file`](super::Client::offline_from_file) and `flag eval
//! --snapshot`. Writes are atomic (temp file in the same directory, fsync, rename); a file
//! that cannot be read or parsed is ignored with a warning, never an error. Blocking I/O:
//! callers run it on `spawn_blocking`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::model::Snapshot;

/// A snapshot read from disk, with when it was written.
#[derive(Debug)]
pub struct Cached {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The file's modification time.
    pub written: Option<SystemTime>,
}

/// Reads a cache file; `None` (with a warning unless it is simply absent) when unusable.
pub fn load(path: &Path) -> Option<Cached> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "flag cache file unreadable; ignored");
            return None;
        }
    };
    match serde_json::from_slice::<Snapshot>(&bytes) {
        Ok(snapshot) => Some(Cached {
            snapshot,
            written: fs::metadata(path).and_then(|m| m.modified()).ok(),
        }),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "flag cache file corrupt; ignored");
            None
        }
    }
}

/// Checks, at build time, that `path` can be written: creates its folder if missing, then
/// creates and removes the temporary file a write would use.
pub fn check_writable(path: &Path) -> io::Result<()> {
    create_parent(path)?;
    let tmp = temp_path(path);
    File::create(&tmp)?;
    fs::remove_file(&tmp)
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => fs::create_dir_all(dir),
        None => Ok(()),
    }
}

/// Writes `snapshot` to `path` atomically: a reader sees the old file or the new one. Creates
/// the folder if it is missing (e.g. removed since the client started).
pub fn store(path: &Path, snapshot: &Snapshot) -> io::Result<()> {
    let json = serde_json::to_vec(snapshot).map_err(io::Error::other)?;
    create_parent(path)?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable; not every platform can open a directory.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "flags.json".to_owned());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            environment: "production".to_owned(),
            revision: 9,
            ..Snapshot::default()
        }
    }

    /// A temporary folder, removed when the test ends.
    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn round_trips_and_leaves_no_temp_file() {
        let tmp = dir();
        let dir = tmp.path().join("round");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flags.json");
        store(&path, &sample()).unwrap();
        let cached = load(&path).unwrap();
        assert_eq!(cached.snapshot, sample());
        assert!(cached.written.is_some());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("flags.json")]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_or_missing_files_are_ignored() {
        let tmp = dir();
        let dir = tmp.path().join("corrupt");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flags.json");
        assert!(load(&path).is_none());
        fs::write(&path, b"{\"environment\": \"production\", \"revis").unwrap();
        assert!(load(&path).is_none());
        fs::write(&path, b"[]").unwrap();
        assert!(load(&path).is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_folders_are_created() {
        let tmp = dir();
        let dir = tmp.path().join("missing");
        let path = dir.join("a/b/flags.json");
        check_writable(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        store(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap().snapshot, sample());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_an_error() {
        // A regular file where a folder should be: refused even for root.
        let tmp = dir();
        let dir = tmp.path().join("blocked");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("file"), b"").unwrap();
        let path = dir.join("file/flags.json");
        assert!(check_writable(&path).is_err());
        assert!(store(&path, &sample()).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
