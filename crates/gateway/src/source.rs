//! Config sources. A [`FileSource`] watches a fleet file (YAML or JSON) or a snapshot file,
//! and yields a snapshot each time its content changes. The control plane's stream feeds the
//! same [`crate::Gateway::offer`].

use std::path::PathBuf;

use rampart_model::load::{from_json, from_yaml};
use rampart_model::{Config, Snapshot};
use sha2::{Digest, Sha256};

/// A file polled for changes.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    last: Option<[u8; 32]>,
}

impl FileSource {
    pub fn new(path: PathBuf) -> Self {
        FileSource { path, last: None }
    }

    /// The snapshot in the file, if its content changed since the last call: `Ok(None)` when
    /// unchanged or unreadable, `Err` with the reason (file, field, line) when it does not parse.
    pub fn poll(&mut self) -> Result<Option<Snapshot>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                if self.last.is_some() || e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot read the config file");
                }
                return Ok(None);
            }
        };
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.last == Some(digest) {
            return Ok(None);
        }
        self.last = Some(digest);
        parse(&text).map(Some).map_err(|e| {
            tracing::error!(file = %self.path.display(), error = %e, "config file refused; still serving the previous snapshot");
            format!("{}: {e}", self.path.display())
        })
    }
}

/// A snapshot (JSON with a `format_version`) or a fleet file (YAML, or JSON).
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') && trimmed.contains("\"format_version\"") {
        return Snapshot::from_json(text).map_err(|e| e.to_string());
    }
    let config: Config = if trimmed.starts_with('{') {
        from_json(text)
    } else {
        from_yaml(text)
    }
    .map_err(|e| e.to_string())?;
    Ok(Snapshot::new(config, vec![]))
}
