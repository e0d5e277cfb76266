//! Network namespace handles.
//!
//! A [`Netns`] is an open file descriptor on a namespace (`/run/netns/NAME`, `/proc/PID/ns/net`,
//! or one we unshared ourselves), checked to really be a *network* namespace. Code that must run
//! inside a namespace runs on a short-lived dedicated thread ([`Netns::run`]): `setns` only affects
//! the calling thread, and a thread that is thrown away afterwards can never be left switched.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns, unshare};
use thiserror::Error;

/// `NSFS_MAGIC` from linux/magic.h: the filesystem of every namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

#[derive(Debug, Error)]
pub enum NetnsError {
    #[error("netns {path}: no such file")]
    NotFound { path: PathBuf },
    #[error("netns {path}: not a network namespace ({why})")]
    NotNetns { path: PathBuf, why: &'static str },
    #[error("process {pid} does not exist (no {path})")]
    NoSuchProcess { pid: i32, path: PathBuf },
    #[error("netns {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("netns {label}: cannot enter: {source}")]
    Enter { label: String, source: nix::Error },
    #[error("cannot create a network namespace: {0}")]
    Unshare(nix::Error),
    #[error("netns {label}: worker thread panicked")]
    ThreadPanicked { label: String },
}

/// Identity of a namespace: the device and inode of its nsfs file, as `ip netns identify` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    id: NsId,
    label: String,
}

impl Netns {
    /// Opens the namespace at `path` (`/run/netns/NAME` or `/proc/PID/ns/net`), refusing anything
    /// that is not a network namespace.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => NetnsError::NotFound { path: path.to_owned() },
            _ => NetnsError::Io { path: path.to_owned(), source },
        })?;
        Self::from_file(file, path.display().to_string(), path)
    }

    /// The namespace of process `pid`.
    pub fn from_pid(pid: i32) -> Result<Self, NetnsError> {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        if pid <= 0 {
            return Err(NetnsError::NoSuchProcess { pid, path });
        }
        match File::open(&path) {
            Ok(file) => Self::from_file(file, format!("pid:{pid}"), &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(NetnsError::NoSuchProcess { pid, path })
            }
            Err(source) => Err(NetnsError::Io { path, source }),
        }
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Self, NetnsError> {
        Self::open("/proc/thread-self/ns/net").map(|ns| ns.with_label("current"))
    }

    /// A brand-new, empty network namespace (only `lo`, down) that lives as long as this handle
    /// or anything that joined it.
    pub fn new_anonymous(label: impl Into<String>) -> Result<Self, NetnsError> {
        let label = label.into();
        let thread_label = label.clone();
        std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(NetnsError::Unshare)?;
            Self::open("/proc/thread-self/ns/net").map(|ns| ns.with_label(thread_label))
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanicked { label })?
    }

    fn from_file(file: File, label: String, path: &Path) -> Result<Self, NetnsError> {
        let io = |source| NetnsError::Io { path: path.to_owned(), source };
        let stat = nix::sys::statfs::fstatfs(&file).map_err(|e| io(e.into()))?;
        if stat.filesystem_type().0 as i64 != NSFS_MAGIC {
            let why = if file.metadata().map_err(io)?.is_dir() { "a directory" } else { "not an nsfs file" };
            return Err(NetnsError::NotNetns { path: path.to_owned(), why });
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind != libc::CLONE_NEWNET {
            return Err(NetnsError::NotNetns { path: path.to_owned(), why: "a namespace of another type" });
        }
        let meta = file.metadata().map_err(io)?;
        let id = NsId { dev: meta.dev(), ino: meta.ino() };
        Ok(Self { fd: file.into(), id, label })
    }

    /// Replaces the label used in messages.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn id(&self) -> NsId {
        self.id
    }

    /// How messages and records name this namespace (its path, `pid:N`, or a given label).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether both handles refer to the same namespace.
    pub fn same_as(&self, other: &Netns) -> bool {
        self.id == other.id
    }

    /// A second handle on the same namespace.
    pub fn try_clone(&self) -> Result<Self, NetnsError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|source| NetnsError::Io { path: self.label.clone().into(), source })?;
        Ok(Self { fd, id: self.id, label: self.label.clone() })
    }

    /// Runs `f` on a fresh thread that has entered this namespace; the thread ends with `f`.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|source| NetnsError::Io { path: self.label.clone().into(), source })?;
        let label = self.label.clone();
        std::thread::spawn(move || {
            setns(&fd, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter { label, source })?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanicked { label: self.label.clone() })?
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}
