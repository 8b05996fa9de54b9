//! The last-known-good (LKG) snapshot store on disk, and the crash-loop guard.
//!
//! # Files
//! An [`LkgStore`] owns one directory:
//!
//! - `current.json`: the snapshot the gateway last accepted, exactly as
//!   [`Snapshot::to_json_pretty`] writes it. A gateway that cannot reach the control plane boots
//!   from it (static stability).
//! - `previous.json`: the snapshot that was `current.json` before the last save of a *different*
//!   snapshot. The gateway falls back to it when the current one is quarantined.
//! - `guard.json`: the crash-loop guard's small state (see below).
//!
//! Every file is written atomically: the bytes go to a fresh temporary file in the same
//! directory, which is `fsync`ed and renamed over the target, and then the directory itself is
//! `fsync`ed so the rename survives a power cut. A reader therefore sees either the old file or
//! the new one, never a torn write. Snapshots are read back through [`Snapshot::from_json`], which
//! checks the format version and the content hash; a file that fails either check is reported as
//! [`LkgError::Corrupt`] naming the file, never a panic.
//!
//! When `current.json` is rotated to `previous.json`, its bytes are first written atomically to
//! `previous.json` and only then is `current.json` replaced, so there is no instant at which the
//! directory holds no `current.json`.
//!
//! # The crash-loop guard
//! The guard remembers which snapshot is being tried and how often trying it killed the process:
//!
//! 1. Right after activating snapshot `X`, the gateway calls [`LkgStore::begin_activation`],
//!    which persists an *activating* marker `{hash: X, since_unix_ms}`.
//! 2. If `X` then runs for the stability period, the gateway calls [`LkgStore::confirm`]: the
//!    marker is cleared and `X`'s crash count is reset. On a graceful shutdown before that, it
//!    calls [`LkgStore::clear_marker`], which clears the marker without counting anything.
//! 3. At process start the gateway calls [`LkgStore::on_boot`] once. A marker still present means
//!    the previous process died before confirming that snapshot: its crash count goes up by one
//!    and the marker is cleared.
//! 4. A snapshot whose crash count has reached [`CRASH_LIMIT`] is quarantined
//!    ([`LkgStore::is_quarantined`]): the gateway must not activate it again, boots the previous
//!    snapshot instead, and NACKs it.
//!
//! Counts are kept for at most [`GUARD_HISTORY`] snapshots, the most recently crashed ones, so
//! the file stays small. A `guard.json` that does not parse must not brick the gateway: it is
//! logged and treated as empty state (and [`BootCheck::guard_corrupt`] says so).
//!
//! # Concurrency
//! One gateway process owns the directory. Saves and loads may run from several threads (each
//! write uses its own temporary file); the guard methods that read, modify and write
//! `guard.json` take a lock, so activations and confirmations may race safely.

use rampart_model::clock::unix_ms;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rampart_model::{ContentHash, Snapshot};
use serde::{Deserialize, Serialize};

/// A snapshot that crashed the process this many times without being confirmed is quarantined.
pub const CRASH_LIMIT: u32 = 2;

/// How many snapshots' crash counts `guard.json` keeps (the most recently crashed ones).
pub const GUARD_HISTORY: usize = 16;

const CURRENT: &str = "current.json";
const PREVIOUS: &str = "previous.json";
const GUARD: &str = "guard.json";
/// Temporary files start with this prefix; leftovers from a crash are removed by
/// [`LkgStore::open`].
const TMP_PREFIX: &str = ".lkg-tmp.";

/// An LKG or guard file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LkgError {
    /// The file system refused an operation on `path`.
    #[error("LKG store: I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// `path` exists but does not hold what it should (bad JSON, bad version, hash mismatch).
    #[error("LKG store: {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

impl LkgError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LkgError::Io { path, .. } | LkgError::Corrupt { path, .. } => path,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LkgError + '_ {
    move |source| LkgError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What [`LkgStore::on_boot`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootCheck {
    /// The snapshot the previous process died on before confirming it, with its crash count
    /// after this crash.
    pub crashed: Option<(ContentHash, u32)>,
    /// `guard.json` was corrupt and has been reset to empty state; the reason. Crash history
    /// from before is lost.
    pub guard_corrupt: Option<String>,
}

/// The guard's persisted state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct GuardState {
    /// The snapshot activated but not yet confirmed stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activating: Option<Marker>,
    /// Crash counts, oldest crash first; at most [`GUARD_HISTORY`] entries.
    #[serde(default)]
    crashes: Vec<CrashRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Marker {
    hash: ContentHash,
    since_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CrashRecord {
    hash: ContentHash,
    count: u32,
    last_crash_unix_ms: u64,
}

impl GuardState {
    fn count(&self, hash: ContentHash) -> u32 {
        self.crashes
            .iter()
            .find(|r| r.hash == hash)
            .map_or(0, |r| r.count)
    }

    /// Count one crash of `hash`, keeping the most recently crashed [`GUARD_HISTORY`] records.
    fn record_crash(&mut self, hash: ContentHash, now_ms: u64) -> u32 {
        let count = match self.crashes.iter().position(|r| r.hash == hash) {
            Some(i) => self.crashes.remove(i).count.saturating_add(1),
            None => 1,
        };
        self.crashes.push(CrashRecord {
            hash,
            count,
            last_crash_unix_ms: now_ms,
        });
        let excess = self.crashes.len().saturating_sub(GUARD_HISTORY);
        self.crashes.drain(..excess);
        count
    }
}

/// The on-disk LKG snapshots and crash-loop guard of one gateway.
#[derive(Debug)]
pub struct LkgStore {
    dir: PathBuf,
    /// Serializes the guard's read-modify-write of `guard.json` within this process.
    guard: std::sync::Mutex<()>,
}

impl LkgStore {
    /// Open (creating it if needed) the store in `dir`, and remove temporary files left by a
    /// crash in the middle of a write.
    pub fn open(dir: impl Into<PathBuf>) -> Result<LkgStore, LkgError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let store = LkgStore {
            dir,
            guard: std::sync::Mutex::new(()),
        };
        store.remove_stale_temps();
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `current.json`.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    /// The path of `previous.json`.
    pub fn previous_path(&self) -> PathBuf {
        self.dir.join(PREVIOUS)
    }

    /// The path of `guard.json`.
    pub fn guard_path(&self) -> PathBuf {
        self.dir.join(GUARD)
    }

    /// Make `snapshot` the current LKG.
    ///
    /// If `current.json` holds a valid snapshot with a different hash, it becomes
    /// `previous.json` first. If it already holds this snapshot, nothing is written (and
    /// `previous.json` is left alone). A corrupt `current.json` is overwritten without being
    /// rotated, so it never replaces a good `previous.json`.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), LkgError> {
        let current = self.current_path();
        if let Some(bytes) = read_optional(&current)? {
            match parse_snapshot(&current, &bytes) {
                Ok(old) if old.hash() == snapshot.hash() => return Ok(()),
                Ok(_) => self.write_atomic(&self.previous_path(), &bytes)?,
                Err(e) => {
                    tracing::warn!(
                        path = %current.display(),
                        error = %e,
                        "corrupt LKG snapshot overwritten without rotating it to previous.json"
                    );
                }
            }
        }
        let mut json = snapshot.to_json_pretty();
        json.push('\n');
        self.write_atomic(&current, json.as_bytes())
    }

    /// The current LKG snapshot, if there is one.
    pub fn load_current(&self) -> Result<Option<Snapshot>, LkgError> {
        load_snapshot(&self.current_path())
    }

    /// The snapshot before the current one, if there is one.
    pub fn load_previous(&self) -> Result<Option<Snapshot>, LkgError> {
        load_snapshot(&self.previous_path())
    }

    /// Record that snapshot `hash` was just activated and is not yet confirmed stable.
    pub fn begin_activation(&self, hash: ContentHash) -> Result<(), LkgError> {
        let _one_at_a_time = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) = self.read_guard()?;
        state.activating = Some(Marker {
            hash,
            since_unix_ms: unix_ms(),
        });
        self.write_guard(&state)
    }

    /// Snapshot `hash` ran for the stability period: clear the marker if it is for `hash`, and
    /// forget `hash`'s crashes.
    pub fn confirm(&self, hash: ContentHash) -> Result<(), LkgError> {
        let _one_at_a_time = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, corrupt) = self.read_guard()?;
        let before = state.clone();
        if state.activating.as_ref().is_some_and(|m| m.hash == hash) {
            state.activating = None;
        }
        state.crashes.retain(|r| r.hash != hash);
        if state != before || corrupt.is_some() {
            self.write_guard(&state)?;
        }
        Ok(())
    }

    /// Graceful shutdown: clear the marker without counting a crash.
    pub fn clear_marker(&self) -> Result<(), LkgError> {
        let _one_at_a_time = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, corrupt) = self.read_guard()?;
        if state.activating.take().is_some() || corrupt.is_some() {
            self.write_guard(&state)?;
        }
        Ok(())
    }

    /// Call once at process start. If a snapshot was being activated when the previous process
    /// ended, that process died before confirming it: count a crash for it and clear the marker.
    pub fn on_boot(&self) -> Result<BootCheck, LkgError> {
        let _one_at_a_time = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, guard_corrupt) = self.read_guard()?;
        let crashed = state.activating.take().map(|marker| {
            let count = state.record_crash(marker.hash, unix_ms());
            tracing::warn!(
                hash = %marker.hash,
                crashes = count,
                limit = CRASH_LIMIT,
                activated_unix_ms = marker.since_unix_ms,
                "previous process died before confirming this snapshot"
            );
            (marker.hash, count)
        });
        if crashed.is_some() || guard_corrupt.is_some() {
            self.write_guard(&state)?;
        }
        Ok(BootCheck {
            crashed,
            guard_corrupt,
        })
    }

    /// How many times snapshot `hash` crashed the process without being confirmed.
    pub fn crash_count(&self, hash: ContentHash) -> Result<u32, LkgError> {
        Ok(self.read_guard()?.0.count(hash))
    }

    /// Whether snapshot `hash` crashed the process [`CRASH_LIMIT`] times or more, so that it
    /// must not be activated again.
    pub fn is_quarantined(&self, hash: ContentHash) -> Result<bool, LkgError> {
        Ok(self.crash_count(hash)? >= CRASH_LIMIT)
    }

    /// Read `guard.json`. Missing means empty; corrupt means empty too, with the reason returned
    /// and logged. Only I/O errors other than "not found" fail.
    fn read_guard(&self) -> Result<(GuardState, Option<String>), LkgError> {
        let path = self.guard_path();
        let Some(bytes) = read_optional(&path)? else {
            return Ok((GuardState::default(), None));
        };
        match serde_json::from_slice::<GuardState>(&bytes) {
            Ok(state) => Ok((state, None)),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "crash-loop guard state is corrupt; treating it as empty"
                );
                Ok((GuardState::default(), Some(e.to_string())))
            }
        }
    }

    fn write_guard(&self, state: &GuardState) -> Result<(), LkgError> {
        let mut json = serde_json::to_vec_pretty(state).expect("guard state always serializes");
        json.push(b'\n');
        self.write_atomic(&self.guard_path(), &json)
    }

    /// Replace `target` (in the store's directory) with `bytes` atomically and durably.
    fn write_atomic(&self, target: &Path, bytes: &[u8]) -> Result<(), LkgError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = target
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy());
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{name}.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            file.write_all(bytes).map_err(io_err(&tmp))?;
            file.sync_all().map_err(io_err(&tmp))?;
            drop(file);
            fs::rename(&tmp, target).map_err(io_err(target))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        sync_dir(&self.dir)
    }

    /// Best effort: remove temporary files a crash left behind.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let path = entry.path();
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove stale LKG temp file");
                }
            }
        }
    }
}

/// Make a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), LkgError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Directories cannot be opened for `fsync` here; the rename is atomic but its durability is
/// left to the file system.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), LkgError> {
    Ok(())
}

/// The bytes of `path`, or `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LkgError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn parse_snapshot(path: &Path, bytes: &[u8]) -> Result<Snapshot, LkgError> {
    let corrupt = |reason: String| LkgError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
    Snapshot::from_json(text).map_err(|e| corrupt(e.to_string()))
}

fn load_snapshot(path: &Path) -> Result<Option<Snapshot>, LkgError> {
    read_optional(path)?
        .map(|bytes| parse_snapshot(path, &bytes))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_model::Config;

    fn fleet() -> Config {
        rampart_model::load::from_yaml::<Config>(include_str!("../../../examples/fleet.yaml"))
            .expect("the example fleet loads")
    }

    /// Distinct snapshots, one per `n`.
    fn snapshot(n: u32) -> Snapshot {
        let mut config = fleet();
        config.settings.tenant_header = format!("x-tenant-{n}");
        Snapshot::new(config, vec![])
    }

    /// A store in a new directory that has saved `snapshot(n)` for each of `saved` in turn.
    fn store(saved: &[u32]) -> (tempfile::TempDir, LkgStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LkgStore::open(dir.path().join("lkg")).unwrap();
        for &n in saved {
            store.save(&snapshot(n)).unwrap();
        }
        (dir, store)
    }

    /// An activation of `hash` that the process did not survive, and the boot after it.
    fn crash(store: &LkgStore, hash: ContentHash) -> BootCheck {
        store.begin_activation(hash).unwrap();
        store.on_boot().unwrap()
    }

    fn assert_corrupt(err: LkgError, file: &str) {
        let message = err.to_string();
        match &err {
            LkgError::Corrupt { path, reason } => {
                assert_eq!(path.file_name().unwrap(), file);
                assert!(!reason.is_empty());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(message.contains(file), "{message}");
    }

    #[test]
    fn missing_files_load_as_none() {
        let (_dir, store) = store(&[]);
        assert!(store.load_current().unwrap().is_none());
        assert!(store.load_previous().unwrap().is_none());
    }

    #[test]
    fn save_and_load_round_trip() {
        let (_dir, store) = store(&[]);
        let s = snapshot(1);
        store.save(&s).unwrap();
        assert_eq!(store.load_current().unwrap(), Some(s.clone()));
        assert!(store.load_previous().unwrap().is_none());
        // A fresh handle on the same directory sees the same thing.
        let again = LkgStore::open(store.dir()).unwrap();
        assert_eq!(again.load_current().unwrap().unwrap().hash(), s.hash());
    }

    /// Assert the store holds `snapshot(current)` and, before it, `snapshot(previous)`.
    fn assert_holds(store: &LkgStore, current: u32, previous: u32) {
        let hash = |s: Option<Snapshot>| s.map(|s| s.hash());
        assert_eq!(
            hash(store.load_current().unwrap()),
            Some(snapshot(current).hash())
        );
        assert_eq!(
            hash(store.load_previous().unwrap()),
            Some(snapshot(previous).hash())
        );
    }

    #[test]
    fn a_different_snapshot_rotates_current_to_previous() {
        let (_dir, store) = store(&[1, 2]);
        assert_holds(&store, 2, 1);
        store.save(&snapshot(3)).unwrap();
        assert_holds(&store, 3, 2);
    }

    #[test]
    fn saving_the_same_snapshot_again_does_not_rotate() {
        let (_dir, store) = store(&[1, 2, 2]);
        assert_holds(&store, 2, 1);
    }

    #[test]
    fn no_temp_files_are_left_behind() {
        let (_dir, store) = store(&[1, 2]);
        store.begin_activation(snapshot(2).hash()).unwrap();
        let mut names: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [CURRENT, GUARD, PREVIOUS]);
    }

    #[test]
    fn stale_temp_files_are_removed_on_open() {
        let (_dir, store) = store(&[]);
        let stale = store.dir().join(format!("{TMP_PREFIX}current.json.1.0"));
        fs::write(&stale, b"half a snap").unwrap();
        let _reopened = LkgStore::open(store.dir()).unwrap();
        assert!(!stale.exists());
    }

    #[test]
    fn a_flipped_hash_digit_is_corrupt() {
        let (_dir, store) = store(&[1]);
        let path = store.current_path();
        let text = fs::read_to_string(&path).unwrap();
        let at = text.find("\"hash\": \"").unwrap() + "\"hash\": \"".len();
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        fs::write(&path, bytes).unwrap();
        let err = store.load_current().unwrap_err();
        assert!(err.to_string().contains("hash mismatch"), "{err}");
        assert_corrupt(err, CURRENT);
    }

    #[test]
    fn a_flipped_content_byte_is_corrupt() {
        let (_dir, store) = store(&[1]);
        let path = store.current_path();
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("x-tenant-1", "x-tenant-9")).unwrap();
        assert_corrupt(store.load_current().unwrap_err(), CURRENT);
    }

    #[test]
    fn a_truncated_file_is_corrupt() {
        let (_dir, store) = store(&[1, 2]);
        for path in [store.current_path(), store.previous_path()] {
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }
        assert_corrupt(store.load_current().unwrap_err(), CURRENT);
        assert_corrupt(store.load_previous().unwrap_err(), PREVIOUS);
        // Empty and non-UTF-8 files too.
        fs::write(store.current_path(), b"").unwrap();
        assert_corrupt(store.load_current().unwrap_err(), CURRENT);
        fs::write(store.current_path(), [0xff, 0xfe, 0x00]).unwrap();
        assert_corrupt(store.load_current().unwrap_err(), CURRENT);
    }

    #[test]
    fn saving_over_a_corrupt_current_keeps_the_good_previous() {
        let (_dir, store) = store(&[1, 2]);
        fs::write(store.current_path(), b"{ torn").unwrap();
        store.save(&snapshot(3)).unwrap();
        assert_holds(&store, 3, 1);
    }

    #[test]
    fn two_unconfirmed_crashes_quarantine_a_snapshot() {
        let (_dir, store) = store(&[]);
        let x = snapshot(1).hash();
        assert_eq!(store.on_boot().unwrap(), BootCheck::default());

        // The process dies; the next one boots.
        let check = crash(&store, x);
        assert_eq!(check.crashed, Some((x, 1)));
        assert!(!store.is_quarantined(x).unwrap());
        // The marker was cleared: booting again without activating counts nothing.
        assert_eq!(store.on_boot().unwrap().crashed, None);

        let check = crash(&store, x);
        assert_eq!(check.crashed, Some((x, CRASH_LIMIT)));
        assert!(store.is_quarantined(x).unwrap());
        assert!(!store.is_quarantined(snapshot(2).hash()).unwrap());
        // The verdict survives a fresh handle.
        let reopened = LkgStore::open(store.dir()).unwrap();
        assert!(reopened.is_quarantined(x).unwrap());
    }

    #[test]
    fn confirm_resets_the_crash_count() {
        let (_dir, store) = store(&[]);
        let (x, y) = (snapshot(1).hash(), snapshot(2).hash());
        for h in [x, x, y] {
            crash(&store, h);
        }
        assert!(store.is_quarantined(x).unwrap());
        assert_eq!(store.crash_count(y).unwrap(), 1);

        store.begin_activation(x).unwrap();
        store.confirm(x).unwrap();
        assert_eq!(store.crash_count(x).unwrap(), 0);
        assert!(!store.is_quarantined(x).unwrap());
        assert_eq!(store.crash_count(y).unwrap(), 1, "other hashes keep theirs");
        assert_eq!(store.on_boot().unwrap().crashed, None, "marker cleared");
    }

    #[test]
    fn confirming_another_hash_keeps_the_marker() {
        let (_dir, store) = store(&[]);
        let (x, y) = (snapshot(1).hash(), snapshot(2).hash());
        store.begin_activation(x).unwrap();
        store.confirm(y).unwrap();
        assert_eq!(store.on_boot().unwrap().crashed, Some((x, 1)));
    }

    #[test]
    fn a_graceful_shutdown_counts_no_crash() {
        let (_dir, store) = store(&[]);
        let x = snapshot(1).hash();
        store.begin_activation(x).unwrap();
        store.clear_marker().unwrap();
        assert_eq!(store.on_boot().unwrap(), BootCheck::default());
        assert_eq!(store.crash_count(x).unwrap(), 0);
        // Clearing with no marker is fine too.
        store.clear_marker().unwrap();
    }

    #[test]
    fn a_corrupt_guard_file_is_treated_as_empty() {
        let (_dir, store) = store(&[]);
        let x = snapshot(1).hash();
        for _ in 0..CRASH_LIMIT {
            crash(&store, x);
        }
        assert!(store.is_quarantined(x).unwrap());

        fs::write(store.guard_path(), b"{\"activating\": {\"hash\": \"zz").unwrap();
        assert!(!store.is_quarantined(x).unwrap());
        let check = store.on_boot().unwrap();
        assert_eq!(check.crashed, None);
        assert!(check.guard_corrupt.is_some());
        // on_boot rewrote it, so the guard works normally from here on.
        assert_eq!(store.on_boot().unwrap(), BootCheck::default());
        assert_eq!(crash(&store, x).crashed, Some((x, 1)));

        // A corrupt file is also replaced by the next activation.
        fs::write(store.guard_path(), [0xff; 8]).unwrap();
        let check = crash(&store, x);
        assert_eq!(check.crashed, Some((x, 1)));
        assert_eq!(check.guard_corrupt, None);
    }

    #[test]
    fn the_guard_keeps_a_bounded_history() {
        let (_dir, store) = store(&[]);
        let hashes: Vec<_> = (0..GUARD_HISTORY as u32 + 4)
            .map(|n| snapshot(n).hash())
            .collect();
        for &h in &hashes {
            crash(&store, h);
        }
        let (state, _) = store.read_guard().unwrap();
        assert_eq!(state.crashes.len(), GUARD_HISTORY);
        assert_eq!(store.crash_count(hashes[0]).unwrap(), 0, "oldest dropped");
        assert_eq!(store.crash_count(*hashes.last().unwrap()).unwrap(), 1);

        // A crash moves a hash to the recent end, so it survives eviction.
        let old = hashes[4];
        crash(&store, old);
        for n in 100..100 + GUARD_HISTORY as u32 - 1 {
            crash(&store, snapshot(n).hash());
        }
        assert_eq!(store.crash_count(old).unwrap(), 2);
    }

    #[test]
    fn errors_name_the_file() {
        let (dir, _store) = store(&[]);
        // A store whose directory is a file cannot be opened.
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let err = LkgStore::open(&file).unwrap_err();
        assert!(matches!(err, LkgError::Io { .. }));
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
