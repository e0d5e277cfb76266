//! The guest's initramfs, written as a newc cpio archive (the format the kernel unpacks:
//! a 110-byte ASCII header per entry, name and data each padded to 4 bytes, then `TRAILER!!!`).
//!
//! Binaries are copied with the shared libraries `ldd` reports (and the ELF interpreter) at the
//! same paths. Building the tests statically instead would need the musl target, which a fresh
//! machine without rustup's network access does not have; copying the host's glibc is exact.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// An in-memory newc archive.
#[derive(Debug, Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A directory and its parents (each once).
    pub fn dir(&mut self, path: &str) {
        let mut so_far = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            so_far = format!("{so_far}/{part}");
            if self.dirs.insert(so_far.clone()) {
                let p = so_far.clone();
                self.entry(&p, S_IFDIR | 0o755, &[]);
            }
        }
    }

    /// A regular file (parents created); a second file at the same path is ignored.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        if !self.files.insert(path.to_string()) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, S_IFREG | mode, data);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        if !self.files.insert(path.to_string()) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, S_IFLNK | 0o777, target.as_bytes());
    }

    /// A host binary at `guest`, plus the shared libraries and interpreter it needs.
    pub fn binary(&mut self, host: &Path, guest: &str) -> Result<()> {
        let data = std::fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        self.file(guest, 0o755, &data);
        self.libraries(host)
    }

    /// Our own binary without its DWARF (symbols stay, so backtraces keep function names): the
    /// kernel unpacks the initramfs byte by byte, and under TCG every megabyte costs boot time.
    pub fn stripped_binary(&mut self, host: &Path, guest: &str, scratch: &Path) -> Result<()> {
        let out = scratch.join(guest.trim_start_matches('/').replace('/', "_"));
        let status = Command::new("objcopy").arg("--strip-all").arg(host).arg(&out).status();
        let data = match status {
            Ok(s) if s.success() => {
                std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?
            }
            _ => std::fs::read(host).with_context(|| format!("reading {}", host.display()))?,
        };
        self.file(guest, 0o755, &data);
        self.libraries(host)
    }

    fn libraries(&mut self, host: &Path) -> Result<()> {
        for lib in shared_libs(host)? {
            let path = lib.to_string_lossy().into_owned();
            if !self.files.contains(&path) {
                let data = std::fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
                self.file(&path, 0o755, &data);
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

/// The absolute paths `ldd` resolves for `bin` (libraries and the interpreter); none if static.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic")
        {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut c = Cpio::default();
        c.file("/etc/x", 0o644, b"hello");
        let a = c.finish();
        assert!(a.starts_with(b"070701"));
        // dir "etc" first: header 110 + "etc\0" (4) = 114, padded to 116.
        assert_eq!(&a[110..114], b"etc\0");
        let second = &a[116..];
        assert!(second.starts_with(b"070701"));
        assert_eq!(&second[54..62], b"00000005", "filesize field");
        assert_eq!(&second[110..116], b"etc/x\0");
        assert_eq!(&second[116..121], b"hello");
        assert!(a.len().is_multiple_of(4));
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
