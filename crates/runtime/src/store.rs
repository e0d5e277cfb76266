//! The state directory: one JSON file per network, guarded by a lock file, written atomically.
//!
//! Layout: `DIR/lock` (flock), `DIR/networks/NAME.json`. Every mutating operation holds the
//! exclusive lock from loading the state until its result is written, so two `vethlab` processes
//! can never hand out the same address. A file is replaced by writing a temporary file, fsyncing
//! it, renaming it over the old one and fsyncing the directory, so a crash leaves either the old or
//! the new version, never a truncated one. A file that does not parse is reported and left alone.
//!
//! The directory is deliberately not fsynced after the rename: that would only make the rename
//! itself survive a power loss, and a power loss also wipes the kernel state the file describes
//! (bridges and veths do not survive a reboot), so the previous complete version is no less true.
//! It halves the cost of every operation (one journal commit instead of two).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use vethlab_core::{NetworkName, NetworkRecord, State, StateError};

/// Where state lives unless `--state-dir` or `VETHLAB_STATE_DIR` say otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vethlab";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("state {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("state file {path} is corrupt ({reason}); it was left untouched: fix or remove it")]
    Corrupt { path: PathBuf, reason: String },
    #[error("state directory {dir} is inconsistent: {source}; no change was made")]
    Inconsistent { dir: PathBuf, source: Box<StateError> },
}

/// A state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// Proof that the caller holds the state lock; released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }

    fn network_file(&self, name: &NetworkName) -> PathBuf {
        self.networks_dir().join(format!("{name}.json"))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io { path: path.to_owned(), source }
    }

    /// Creates the directory (mode 0700) if needed and takes the exclusive lock.
    pub fn lock(&self) -> Result<StateLock, StoreError> {
        for dir in [&self.root, &self.networks_dir()] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Self::io(dir))?;
        }
        // The directory may predate us (or have been created by `mkdir -p` with a umask).
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(Self::io(&self.root))?;
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(Self::io(&path))?;
        file.lock().map_err(Self::io(&path))?;
        Ok(StateLock { _file: file })
    }

    /// Takes a shared lock for reading, or `None` if there is no state directory yet.
    pub fn lock_shared(&self) -> Result<Option<StateLock>, StoreError> {
        let path = self.root.join("lock");
        match File::open(&path) {
            Ok(file) => {
                file.lock_shared().map_err(Self::io(&path))?;
                Ok(Some(StateLock { _file: file }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }

    /// Reads and cross-checks every network record.
    pub fn load(&self, _lock: &StateLock) -> Result<State, StoreError> {
        let dir = self.networks_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(Self::io(&dir)(e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Self::io(&dir))?;
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                return Err(StoreError::Corrupt { path, reason: "file name is not UTF-8".into() });
            };
            // Leftover temporary files of an interrupted write: the rename never happened, so the
            // previous version is intact and these carry nothing.
            if file_name.starts_with('.') {
                continue;
            }
            let corrupt = |reason: String| StoreError::Corrupt { path: path.clone(), reason };
            let stem = file_name.strip_suffix(".json").ok_or_else(|| corrupt("not a .json file".into()))?;
            let bytes = fs::read(&path).map_err(Self::io(&path))?;
            let record: NetworkRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if record.spec.name.as_str() != stem {
                return Err(corrupt(format!("it describes network {}", record.spec.name)));
            }
            records.push(record);
        }
        State::new(records)
            .map_err(|source| StoreError::Inconsistent { dir: self.root.clone(), source: Box::new(source) })
    }

    /// Writes one network's record atomically.
    pub fn save(&self, _lock: &StateLock, record: &NetworkRecord) -> Result<(), StoreError> {
        let path = self.network_file(&record.spec.name);
        let dir = self.networks_dir();
        let tmp = dir.join(format!(".{}.json.{}.tmp", record.spec.name, std::process::id()));
        let mut json = serde_json::to_vec_pretty(record).map_err(|e| Self::io(&path)(e.into()))?;
        json.push(b'\n');
        let result = (|| {
            let mut file =
                OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(Self::io(&path))
    }

    /// Deletes one network's record.
    pub fn remove(&self, _lock: &StateLock, name: &NetworkName) -> Result<(), StoreError> {
        let path = self.network_file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vethlab_core::{NetworkRequest, NetworkSpec};

    fn record(name: &str, subnet: &str) -> NetworkRecord {
        let req = NetworkRequest { name: name.into(), subnet: subnet.into(), ..Default::default() };
        NetworkRecord::new(NetworkSpec::validate(&req).expect("valid"))
    }

    #[test]
    fn round_trip_and_mode() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(tmp.path().join("state"));
        let lock = dir.lock().expect("lock");
        assert_eq!(dir.load(&lock).expect("empty").networks().count(), 0);
        dir.save(&lock, &record("zdocker0", "192.168.1.0/24")).expect("save");
        let state = dir.load(&lock).expect("load");
        assert_eq!(state.networks().map(|n| n.spec.name.to_string()).collect::<Vec<_>>(), ["zdocker0"]);
        let mode = fs::metadata(dir.path()).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        dir.remove(&lock, &NetworkName::new("zdocker0").expect("n")).expect("remove");
        assert_eq!(dir.load(&lock).expect("load").networks().count(), 0);
    }

    #[test]
    fn corrupt_file_is_reported_and_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(tmp.path());
        let lock = dir.lock().expect("lock");
        let path = tmp.path().join("networks/zdocker0.json");
        fs::write(&path, b"{\"name\": \"zdocker0\", \"subn").expect("write");
        let err = dir.load(&lock).expect_err("corrupt").to_string();
        assert!(err.contains("zdocker0.json is corrupt"), "{err}");
        assert_eq!(fs::read(&path).expect("still there"), b"{\"name\": \"zdocker0\", \"subn");
    }

    #[test]
    fn record_under_wrong_name_is_corrupt() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(tmp.path());
        let lock = dir.lock().expect("lock");
        dir.save(&lock, &record("a", "10.0.0.0/24")).expect("save");
        fs::rename(tmp.path().join("networks/a.json"), tmp.path().join("networks/b.json")).expect("mv");
        let err = dir.load(&lock).expect_err("corrupt").to_string();
        assert!(err.contains("describes network a"), "{err}");
    }

    #[test]
    fn leftover_temp_files_are_ignored() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(tmp.path());
        let lock = dir.lock().expect("lock");
        dir.save(&lock, &record("a", "10.0.0.0/24")).expect("save");
        fs::write(tmp.path().join("networks/.a.json.123.tmp"), b"{trunc").expect("write");
        assert_eq!(dir.load(&lock).expect("load").networks().count(), 1);
    }

    /// Two processes' worth of lockers: the second blocks until the first drops its lock.
    #[test]
    fn lock_is_exclusive() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = StateDir::new(tmp.path());
        let first = dir.lock().expect("lock");
        let other = dir.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _second = other.lock().expect("lock");
            tx.send(()).expect("send");
        });
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "second lock must wait");
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5)).expect("second lock after release");
        waiter.join().expect("join");
    }
}
