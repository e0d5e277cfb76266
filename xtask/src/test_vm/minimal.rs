//! `--minimal-kernel SERIES`: vethlab's own small kernel, built once from Debian's
//! `linux-source-SERIES` package with [`minimal.config`](minimal.config) on top of
//! `make tinyconfig`, and cached under `target/vm/minimal/` by series and config hash.
//!
//! Debian's kernel spends most of its TCG boot in initcalls for hardware and features a test VM
//! never meets; this one has everything the tests use built in and little else. The source comes
//! through `apt-get download` like the Debian kernels (nothing is installed); building needs
//! make, gcc, flex, bison, bc and libelf's headers, which `ci/install.sh` installs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::kernel::{Kernel, cache_dir, fetch};

/// The config fragment, applied on top of `make tinyconfig`.
pub const FRAGMENT: &str = include_str!("minimal.config");

/// Builds (or finds in the cache) the minimal kernel for a Debian source series (`6.12`, `6.1`).
pub fn kernel(series: &str, target: &Path) -> Result<Kernel> {
    let package = format!("linux-source-{series}");
    let sources = cache_dir(target);
    if !sources.join(&package).is_dir() {
        fetch(&package, &sources)?;
    }
    let tarball = find_tarball(&sources.join(&package).join("usr/src"))?;
    let mut hasher = DefaultHasher::new();
    (FRAGMENT, tarball.file_name(), std::fs::metadata(&tarball)?.len()).hash(&mut hasher);
    let out = target.join("vm").join("minimal").join(format!("{series}-{:016x}", hasher.finish()));
    let image = out.join("vmlinux");
    let release_file = out.join("kernel.release");
    if !image.is_file() || !release_file.is_file() {
        build(&tarball, &out)?;
    }
    let release = std::fs::read_to_string(&release_file)?.trim().to_string();
    Ok(Kernel {
        label: format!("{release}-minimal"),
        source: format!("vethlab's minimal config on Debian {package}, {}", image.display()),
        image,
        modules: None,
    })
}

fn find_tarball(dir: &Path) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .with_context(|| format!("no linux source tarball in {}", dir.display()))
}

/// Unpacks, configures and builds in `out/src` and `out/build`, then keeps `vmlinux`, `config`
/// and `kernel.release` (written last, so a half-done build is redone) and removes the trees.
fn build(tarball: &Path, out: &Path) -> Result<()> {
    let started = Instant::now();
    let src_parent = out.join("src");
    let _ = std::fs::remove_dir_all(&src_parent);
    std::fs::create_dir_all(&src_parent)?;
    println!("xtask: unpacking {}", tarball.display());
    run(Command::new("tar").arg("-xf").arg(tarball).arg("-C").arg(&src_parent), "tar -xf", None)?;
    let src = std::fs::read_dir(&src_parent)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .with_context(|| format!("the tarball unpacked nothing into {}", src_parent.display()))?;
    let build = out.join("build");
    std::fs::create_dir_all(&build)?;
    let log = out.join("build.log");
    let make = |args: &[&str]| {
        let mut cmd = Command::new("make");
        cmd.arg("-C").arg(&src).arg(format!("O={}", build.display())).args(args);
        cmd
    };
    run(&mut make(&["tinyconfig"]), "make tinyconfig", Some(&log))?;
    // Later assignments win in a .config: the fragment goes after tinyconfig's, then
    // olddefconfig resolves the dependencies.
    let mut config = std::fs::read_to_string(build.join(".config"))?;
    config.push_str(FRAGMENT);
    std::fs::write(build.join(".config"), config)?;
    run(&mut make(&["olddefconfig"]), "make olddefconfig", Some(&log))?;
    let dropped = not_applied(FRAGMENT, &std::fs::read_to_string(build.join(".config"))?);
    if !dropped.is_empty() {
        bail!(
            "the minimal kernel config did not take (dependencies missing in this source?): {}",
            dropped.join(", ")
        );
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("xtask: building the minimal kernel with {jobs} jobs (a few minutes; log: {})", log.display());
    run(&mut make(&[&format!("-j{jobs}"), "vmlinux"]), "make vmlinux", Some(&log))?;
    let release = std::fs::read_to_string(build.join("include/config/kernel.release"))
        .context("reading the built kernel's release")?;
    std::fs::copy(build.join("vmlinux"), out.join("vmlinux"))?;
    std::fs::copy(build.join(".config"), out.join("config"))?;
    std::fs::write(out.join("kernel.release"), release.trim())?;
    // The trees are over a gigabyte; the cache (and CI's) keeps only what boots and its config.
    for dir in [&src_parent, &build] {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    println!("xtask: minimal kernel {} built in {:.0}s", release.trim(), started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `cmd`, its output appended to `log` (or discarded); on failure names it and shows the
/// log's tail.
fn run(cmd: &mut Command, what: &str, log: Option<&Path>) -> Result<()> {
    let (stdout, stderr) = match log {
        Some(path) => {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            (Stdio::from(f.try_clone()?), Stdio::from(f))
        }
        None => (Stdio::null(), Stdio::inherit()),
    };
    let status = cmd.stdout(stdout).stderr(stderr).status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        let tail = log
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| {
                t.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            })
            .unwrap_or_default();
        bail!("{what} failed ({status}); ci/install.sh installs the build tools\n{tail}");
    }
    Ok(())
}

/// The fragment's `CONFIG_X=y` lines that the final `.config` does not have, and its
/// `CONFIG_X=n` lines that it has set: dependencies that olddefconfig silently overrode.
fn not_applied(fragment: &str, config: &str) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = config.lines().filter(|l| l.starts_with("CONFIG_")).collect();
    let mut missing = Vec::new();
    for line in fragment.lines().map(str::trim).filter(|l| l.starts_with("CONFIG_")) {
        let Some((sym, value)) = line.split_once('=') else { continue };
        let ok = if value == "n" {
            !set.iter().any(|l| l.split_once('=').is_some_and(|(s, v)| s == sym && v != "n"))
        } else {
            set.contains(line)
        };
        if !ok {
            missing.push(line.to_string());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_symbols_are_named() {
        let fragment = "# c\nCONFIG_VETH=y\nCONFIG_BRIDGE=y\nCONFIG_IPV6_SIT=n\nCONFIG_VT=n\n";
        let config = "CONFIG_VETH=y\n# CONFIG_BRIDGE is not set\nCONFIG_IPV6_SIT=y\n";
        assert_eq!(not_applied(fragment, config), ["CONFIG_BRIDGE=y", "CONFIG_IPV6_SIT=n"]);
    }

    #[test]
    fn the_fragment_builds_in_what_the_scenarios_use() {
        for sym in
            ["VETH", "BRIDGE", "NET_NS", "NF_TABLES", "NFT_NAT", "NFT_MASQ", "NFT_CT", "NFT_FIB_IPV4", "PVH"]
        {
            assert!(FRAGMENT.lines().any(|l| l == format!("CONFIG_{sym}=y")), "CONFIG_{sym}=y missing");
        }
        assert!(
            FRAGMENT.lines().any(|l| l == "CONFIG_MODULES=n"),
            "the minimal kernel has no modules to load"
        );
    }
}
