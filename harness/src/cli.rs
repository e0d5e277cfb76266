//! Driving the `vethlab` binary as a separate process against a lab, as users do.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::lab::Lab;

/// What one `vethlab` invocation did.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The `vethlab` binary: `$VETHLAB_BIN`, else next to the test executable's `deps/` directory
/// (where `cargo build -p vethlab` puts it).
pub fn vethlab_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("VETHLAB_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe().context("locate the test executable")?;
    let profile_dir =
        exe.parent().and_then(|deps| deps.parent()).context("test executable has no target dir")?;
    let bin = profile_dir.join("vethlab");
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build -p vethlab` or run `cargo xtask test`",
            bin.display()
        );
    }
    Ok(bin)
}

impl Lab {
    /// Runs `vethlab ARGS…` with the lab's host namespace and state directory.
    pub fn cli(&self, args: &[&str]) -> Result<CliOutput> {
        self.cli_with(&vethlab_bin()?, args)
    }

    /// Runs the given `vethlab` binary with the lab's host namespace and state directory.
    pub fn cli_with(&self, bin: &std::path::Path, args: &[&str]) -> Result<CliOutput> {
        let out = Command::new(bin)
            .arg("--host-netns")
            .arg(self.host_path())
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(args)
            .env_remove("VETHLAB_STATE_DIR")
            .env_remove("VETHLAB_HOST_NETNS")
            .output()
            .context("run vethlab")?;
        Ok(CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
