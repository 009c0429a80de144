//! The console's files, embedded at compile time from `flag-server/console/` (so `cargo
//! build` alone builds the console), each with a strong `ETag` (its SHA-256) computed once.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Its path under `/assets/` (the shell is served at `/`).
    pub name: &'static str,
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    etag: OnceLock<String>,
}

impl Asset {
    /// `"<hex SHA-256>"`.
    pub fn etag(&self) -> &str {
        self.etag
            .get_or_init(|| format!("\"{}\"", hex::encode(&Sha256::digest(self.body)[..16])))
    }
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
            etag: OnceLock::new(),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page shell at `/`.
pub static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Every file under `/assets/`.
pub static ASSETS: [Asset; 14] = [
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/flags.js", JS),
    asset!("js/flag.js", JS),
    asset!("js/rules.js", JS),
    asset!("js/playground.js", JS),
    asset!("js/audit.js", JS),
    asset!("js/segments.js", JS),
    asset!("js/releases.js", JS),
    asset!("js/admin.js", JS),
    asset!("js/compare.js", JS),
];

/// The file at `/assets/<name>`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `console/` but not to [`ASSETS`] would be a 404 in the browser.
    #[test]
    fn every_console_file_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let name = path.strip_prefix(&root).unwrap().to_string_lossy();
                    on_disk.push(name.replace('\\', "/"));
                }
            }
        }
        for name in on_disk {
            assert!(
                name == INDEX.name || find(&name).is_some(),
                "console/{name} is not in ASSETS"
            );
        }
    }
}
