//! Kernels for the VM: a path, a Debian version fetched into a cache under `target/` (with
//! `apt-get download` + `dpkg-deb -x`, nothing installed on the system), or the default; and the
//! uncompressed `vmlinux` extracted once from a bzImage so QEMU can boot it directly (PVH entry).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The Debian series fetched when `/boot` and the cache have nothing.
pub const DEFAULT_SERIES: &str = "6.12";

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// Short name for tables, e.g. `6.12.118+deb12-amd64`.
    pub label: String,
    /// What was asked for (`/boot`, a path, or the Debian package).
    pub source: String,
    /// The image as given (bzImage or vmlinux).
    pub image: PathBuf,
    /// `lib/modules/<version>` of this kernel, when known.
    pub modules: Option<PathBuf>,
}

/// Where fetched kernels are unpacked: `target/vm/kernels/<package>/`.
pub fn cache_dir(target: &Path) -> PathBuf {
    target.join("vm").join("kernels")
}

/// `--kernel PATH [--modules DIR]`.
pub fn from_path(image: &Path, modules: Option<&Path>) -> Result<Kernel> {
    let image = image.canonicalize().with_context(|| format!("kernel image {}", image.display()))?;
    let label = image.file_name().map(|n| n.to_string_lossy().replace("vmlinuz-", "")).unwrap_or_default();
    Ok(Kernel { label, source: image.display().to_string(), image, modules: modules.map(Path::to_path_buf) })
}

/// The newest kernel in `/boot` that has its modules in `/lib/modules`, else the newest cached
/// Debian kernel of [`DEFAULT_SERIES`], else that series fetched now.
pub fn default_kernel(target: &Path) -> Result<Kernel> {
    let mut boot: Vec<(String, PathBuf)> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let ver = name.strip_prefix("vmlinuz-")?.to_string();
            Path::new("/lib/modules").join(&ver).is_dir().then(|| (ver, e.path()))
        })
        .collect();
    boot.sort_by_key(|(ver, _)| version_key(ver));
    if let Some((ver, image)) = boot.pop() {
        return Ok(Kernel {
            label: ver.clone(),
            source: "/boot".into(),
            image,
            modules: Some(Path::new("/lib/modules").join(ver)),
        });
    }
    debian(DEFAULT_SERIES, target)
}

/// A Debian kernel: `6.12` or `6.1` (the newest of that series: cached, else from `apt-cache`),
/// or an exact version as in the package name (`6.12.118+deb12`, `6.1.0-57`).
pub fn debian(version: &str, target: &Path) -> Result<Kernel> {
    let cache = cache_dir(target);
    let cached: Vec<String> = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    let package = match newest_matching(version, &cached) {
        Some(p) => p,
        None => {
            let out = Command::new("apt-cache")
                .args(["pkgnames", "linux-image-"])
                .output()
                .context("running apt-cache pkgnames (is this Debian/Ubuntu?)")?;
            let names: Vec<String> =
                String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
            let Some(p) = newest_matching(version, &names) else {
                bail!(
                    "no Debian kernel package matches {version:?} (apt-cache pkgnames linux-image-; run apt-get update?)"
                )
            };
            fetch(&p, &cache)?;
            p
        }
    };
    let tree = cache.join(&package);
    let release = package.trim_start_matches("linux-image-").to_string();
    let image = tree.join("boot").join(format!("vmlinuz-{release}"));
    if !image.is_file() {
        bail!("{} has no {}", tree.display(), image.display());
    }
    Ok(Kernel {
        label: release.clone(),
        source: format!("Debian {package}"),
        image,
        modules: Some(tree.join("lib").join("modules").join(&release)),
    })
}

/// The newest `linux-image-<version>…-amd64` package in `names` (plain signed images only).
fn newest_matching(version: &str, names: &[String]) -> Option<String> {
    let exact = format!("linux-image-{version}-amd64");
    // `6.12` or `6.1` name a series: `linux-image-6.12-amd64` is then a metapackage (it only
    // depends on the real image), never the answer. `6.12.118+deb12` or `6.1.0-57` are exact.
    let series_only = version.matches('.').count() < 2 && !version.contains('-');
    if !series_only && names.contains(&exact) {
        return Some(exact);
    }
    let series = [format!("linux-image-{version}."), format!("linux-image-{version}-")];
    names
        .iter()
        .filter(|n| series.iter().any(|s| n.starts_with(s.as_str())) && n.ends_with("-amd64"))
        .filter(|n| !["-rt-", "-cloud-", "-dbg", "-unsigned"].iter().any(|x| n.contains(x)))
        .filter(|n| **n != exact)
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .cloned()
}

/// Sort key comparing digit runs numerically: `6.12.9` < `6.12.118`.
fn version_key(s: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
        let other: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_ascii_digit())).collect();
        key.push((digits.parse().unwrap_or(0), other));
    }
    key
}

/// `apt-get download` + `dpkg-deb -x` into `cache/<package>`, atomically (a `.tmp` dir renamed).
pub fn fetch(package: &str, cache: &Path) -> Result<()> {
    println!("xtask: fetching {package} (apt-get download; nothing is installed)");
    let tmp = cache.join(format!("{package}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let status = Command::new("apt-get")
        .args(["download", "-q", "-o", "APT::Sandbox::User=root", package])
        .current_dir(&tmp)
        .stdout(Stdio::null())
        .status()
        .context("running apt-get download")?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status})");
    }
    let deb = std::fs::read_dir(&tmp)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let tree = tmp.join("tree");
    let status =
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree).status().context("running dpkg-deb -x")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed ({status})", deb.display());
    }
    let dest = cache.join(package);
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tree, &dest)
        .with_context(|| format!("moving the unpacked kernel to {}", dest.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// The uncompressed ELF `vmlinux` for `kernel`, extracted once and cached in `cache`.
/// A kernel that is already an ELF is returned as is.
pub fn vmlinux(kernel: &Kernel, cache: &Path) -> Result<PathBuf> {
    let data = std::fs::read(&kernel.image).with_context(|| format!("reading {}", kernel.image.display()))?;
    if data.starts_with(b"\x7fELF") {
        return Ok(kernel.image.clone());
    }
    let meta = std::fs::metadata(&kernel.image)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let out = cache.join(format!("{}-{}-{mtime}.vmlinux", kernel.label, meta.len()));
    if out.is_file() {
        return Ok(out);
    }
    let elf = extract_vmlinux(&data)
        .with_context(|| format!("extracting vmlinux from {}", kernel.image.display()))?;
    std::fs::create_dir_all(cache)?;
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, &elf).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// The kernel's own extract-vmlinux, done with the boot protocol header instead of a magic scan:
/// `payload_offset`/`payload_length` (boot protocol ≥ 2.08) locate the compressed payload exactly;
/// its last 4 bytes are the uncompressed size, which checks the result.
pub fn extract_vmlinux(bz: &[u8]) -> Result<Vec<u8>> {
    let u16_at = |o: usize| bz.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| bz.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if bz.get(0x202..0x206) != Some(b"HdrS") {
        bail!("not a bzImage (no HdrS header)");
    }
    let protocol = u16_at(0x206).context("truncated header")?;
    if protocol < 0x208 {
        bail!("boot protocol {protocol:#x} has no payload fields");
    }
    let setup_sects = match bz.get(0x1f1).copied().context("truncated header")? {
        0 => 4,
        n => n as usize,
    };
    let offset = (setup_sects + 1) * 512 + u32_at(0x248).context("truncated header")? as usize;
    let len = u32_at(0x24c).context("truncated header")? as usize;
    let payload = bz.get(offset..offset + len).context("payload outside the file")?;
    let (stream, size) = payload.split_at(len.checked_sub(4).context("empty payload")?);
    let expected = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    let tool: &[&str] = if stream.starts_with(b"\x28\xb5\x2f\xfd") {
        &["zstd", "-dcq"]
    } else if stream.starts_with(b"\xfd7zXZ\x00") {
        &["xz", "-dc", "--single-stream"]
    } else if stream.starts_with(b"\x1f\x8b") {
        &["gzip", "-dc"]
    } else {
        bail!("unsupported payload compression (magic {:02x?})", &stream[..stream.len().min(6)]);
    };
    let elf = pipe_through(tool, stream)?;
    if !elf.starts_with(b"\x7fELF") || elf.len() != expected {
        bail!("decompressed payload is not the expected ELF ({} bytes, want {expected})", elf.len());
    }
    Ok(elf)
}

/// Runs `tool` with `input` on stdin and returns its stdout.
pub fn pipe_through(tool: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (ci/install.sh installs it)", tool[0]))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().with_context(|| format!("running {}", tool[0]))?;
    let _ = writer.join();
    if !out.status.success() {
        bail!("{} failed: {}", tool.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_of_a_series() {
        let names: Vec<String> = [
            "linux-image-6.1.0-9-amd64",
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.1.0-57-amd64-dbg",
            "linux-image-6.12.9+deb12-amd64",
            "linux-image-6.12.118+deb12-amd64",
            "linux-image-6.12.118+deb12-rt-amd64",
            "linux-image-amd64",
            "linux-image-6.12-amd64",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(newest_matching("6.1", &names).as_deref(), Some("linux-image-6.1.0-57-amd64"));
        assert_eq!(newest_matching("6.12", &names).as_deref(), Some("linux-image-6.12.118+deb12-amd64"));
        assert_eq!(
            newest_matching("6.12.9+deb12", &names).as_deref(),
            Some("linux-image-6.12.9+deb12-amd64")
        );
        assert_eq!(newest_matching("5.10", &names), None);
    }

    #[test]
    fn rejects_non_bzimages() {
        assert!(extract_vmlinux(&[0u8; 1024]).is_err());
    }
}
