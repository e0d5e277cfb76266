//! Building the test binaries and the `vethlab` binary, and naming each test binary's area.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::project::{cargo, project_root, run_status};

/// The cargo profile binaries are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo test`'s own (`dev`): what `cargo xtask test` and `conformance` run.
    Dev,
    /// `vm-guest` (workspace `Cargo.toml`): optimised, no debug info, assertions still on; for
    /// the test-VM guest, where TCG emulates every instruction and the kernel unpacks every byte.
    VmGuest,
}

impl Profile {
    fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Profile::Dev => &[],
            Profile::VmGuest => &["--profile", "vm-guest"],
        }
    }

    /// The directory under the target directory that holds this profile's binaries.
    fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::VmGuest => "vm-guest",
        }
    }
}

/// One libtest executable produced by `cargo test --no-run`.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// The package's name, e.g. `vethlab-harness`.
    pub package: String,
    /// Target kind: `lib`, `bin`, `test`, `example`, `bench`.
    pub kind: String,
    /// Human name for summaries: package directory plus target, e.g. `harness tests/scenarios`.
    pub area: String,
    pub path: PathBuf,
    /// The package directory: the test's working directory, as under `cargo test`.
    pub dir: PathBuf,
}

/// Builds the test binaries of the given packages (all of the workspace when empty) and
/// returns them in a stable order. Runs outside any namespace so crates can be fetched.
pub fn build_tests(packages: &[String], profile: Profile) -> Result<Vec<TestBinary>> {
    let mut cmd = cargo();
    cmd.args(["test", "--no-run", "--message-format=json-render-diagnostics"]);
    cmd.args(profile.cargo_args());
    if packages.is_empty() {
        cmd.arg("--workspace");
    }
    for p in packages {
        cmd.args(["--package", p]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("starting cargo test --no-run")?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let mut bins = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's json output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else { continue };
        let manifest = PathBuf::from(msg["manifest_path"].as_str().unwrap_or_default());
        let kind = msg["target"]["kind"][0].as_str().unwrap_or("?").to_string();
        let target = msg["target"]["name"].as_str().unwrap_or("?").to_string();
        let package = package_name(msg["package_id"].as_str().unwrap_or_default(), &manifest);
        let dir =
            manifest.parent().map(|d| d.strip_prefix(project_root()).unwrap_or(d).display().to_string());
        let dir = dir.filter(|d| !d.is_empty()).unwrap_or_else(|| package.clone());
        let area = match kind.as_str() {
            "lib" => format!("{dir} (unit)"),
            "test" => format!("{dir} tests/{target}"),
            other => format!("{dir} {other} {target}"),
        };
        let pkg_dir = manifest.parent().map(Path::to_path_buf).unwrap_or_else(project_root);
        bins.push(TestBinary { package, kind, area, path: PathBuf::from(exe), dir: pkg_dir });
    }
    let status = child.wait().context("waiting for cargo test --no-run")?;
    if !status.success() {
        bail!("building the test binaries failed ({status})");
    }
    bins.sort_by(|a, b| a.area.cmp(&b.area));
    bins.dedup_by(|a, b| a.path == b.path);
    Ok(bins)
}

/// Builds the `vethlab` CLI (harness tests spawn it through `$VETHLAB_BIN`) and returns its path.
pub fn build_vethlab(target_dir: &Path, profile: Profile) -> Result<PathBuf> {
    run_status(
        cargo().args(["build", "--package", "vethlab", "--bin", "vethlab"]).args(profile.cargo_args()),
        "cargo build -p vethlab",
    )?;
    let bin = target_dir.join(profile.dir()).join("vethlab");
    if !bin.is_file() {
        bail!("cargo build -p vethlab did not produce {}", bin.display());
    }
    Ok(bin)
}

/// Builds the guest's `/init` (`xtask/src/bin/vm-init`) and returns its path.
pub fn build_vm_init(target_dir: &Path) -> Result<PathBuf> {
    let profile = Profile::VmGuest;
    run_status(
        cargo()
            .args(["build", "--quiet", "--package", "xtask", "--bin", "vm-init"])
            .args(profile.cargo_args()),
        "cargo build -p xtask --bin vm-init",
    )?;
    let bin = target_dir.join(profile.dir()).join("vm-init");
    if !bin.is_file() {
        bail!("cargo build -p xtask --bin vm-init did not produce {}", bin.display());
    }
    Ok(bin)
}

/// `path+file:///…/crates/core#vethlab-core@0.1.0` → `vethlab-core`; `…/core#0.1.0` → `core`.
fn package_name(id: &str, manifest: &Path) -> String {
    if let Some((_, frag)) = id.rsplit_once('#') {
        if let Some((name, _)) = frag.split_once('@') {
            return name.to_string();
        }
        if let Some(last) = id.split('#').next().and_then(|p| p.rsplit('/').next()) {
            return last.to_string();
        }
    }
    manifest
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_from_ids() {
        let m = Path::new("/w/crates/core/Cargo.toml");
        assert_eq!(package_name("path+file:///w/crates/core#vethlab-core@0.1.0", m), "vethlab-core");
        assert_eq!(package_name("path+file:///w/xtask#0.1.0", m), "xtask");
        assert_eq!(package_name("", m), "core");
    }
}
