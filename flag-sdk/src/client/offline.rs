//! Clients that never connect, served from a snapshot file (the section 2 JSON: a cache file,
//! or `GET /sdk/v1/snapshot` saved to disk), once or reloaded whenever the file changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::model::Snapshot;

use super::state::{Shared, Status};
use super::{Client, ClientError, StreamHandle};

impl Client {
    /// A client serving the snapshot file at `path`, never connecting (status `Offline`).
    pub fn offline_from_file(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        Ok(Client::offline(read_snapshot(path.as_ref())?))
    }

    /// A client serving the snapshot file at `path` and reloading it whenever it changes
    /// (its modification time or length, checked every `every`), never connecting (status
    /// `Offline`). A change is swapped in as a stream update would be, so
    /// [`subscribe`](Client::subscribe) sees it. A file that cannot be read or parsed when it
    /// changes (e.g. caught half-written) is logged and skipped; the next change is loaded.
    /// The file must be readable at start. Needs a tokio runtime; [`close`](Client::close)
    /// stops the reloading.
    pub fn offline_reloading(
        path: impl Into<PathBuf>,
        every: Duration,
    ) -> Result<Client, ClientError> {
        let path = path.into();
        let seen = stamp(&path);
        let snapshot = read_snapshot(&path)?;
        let shared = Arc::new(Shared::new());
        shared.replace(snapshot);
        shared.touch(SystemTime::now());
        shared.set_status(Status::Offline);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(reload(path, every, seen, shared.clone(), cancel.clone()));
        Ok(Client {
            shared,
            stream: Arc::new(StreamHandle {
                cancel,
                task: Mutex::new(Some(task)),
                events: Arc::default(),
                sink: None,
                events_task: Mutex::new(None),
            }),
        })
    }
}

/// What tells one version of a file from the next without reading it.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read_snapshot(path: &Path) -> Result<Snapshot, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::ReadSnapshot {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ClientError::ParseSnapshot {
        path: path.to_owned(),
        source,
    })
}

async fn reload(
    path: PathBuf,
    every: Duration,
    mut seen: Stamp,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
        let file = path.clone();
        let last = seen;
        let Ok((now, read)) = tokio::task::spawn_blocking(move || {
            let now = stamp(&file);
            (now, (now != last).then(|| read_snapshot(&file)))
        })
        .await
        else {
            continue;
        };
        seen = now;
        let Some(read) = read else {
            continue;
        };
        match read {
            Ok(snapshot) => {
                shared.replace(snapshot);
                shared.touch(SystemTime::now());
            }
            Err(error) => {
                tracing::warn!(error = %error, path = %path.display(), "snapshot file not reloaded");
            }
        }
    }
}
