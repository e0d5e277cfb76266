//! `cargo xtask conformance`: builds `vethlab` and runs `vethlab conformance` against every
//! runtime of the matrix — vethlab in-process, its CLI, Debian's CNI bridge plugin, netavark and
//! vethlab as a CNI plugin — inside the same throwaway namespace `cargo xtask test` uses.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::project::{run_status, target_dir};
use crate::{artifacts, sandbox};

/// Debian's packages put the peers here (`ci/install.sh` installs them).
const CNI_BRIDGE: &str = "/usr/lib/cni/bridge";
const NETAVARK: &str = "/usr/lib/podman/netavark";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Passed on to `vethlab conformance` (e.g. `--format junit`, `--scenario seed`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let vethlab = artifacts::build_vethlab(&target_dir()?, artifacts::Profile::Dev)?;
    let mut runtimes = vec!["native".to_owned(), "cli".to_owned()];
    for (kind, path) in [("cni", CNI_BRIDGE), ("netavark", NETAVARK)] {
        if Path::new(path).is_file() {
            runtimes.push(format!("{kind}:{path}"));
        } else if std::env::var_os("CI").is_some() {
            bail!("{path} is missing: run ci/install.sh (CI runs the whole matrix)");
        } else {
            eprintln!("xtask: {path} is missing (ci/install.sh installs it); leaving it out of the matrix");
        }
    }
    runtimes.push(format!("cni:{}", vethlab.display()));

    let mode = sandbox::detect()?;
    if let sandbox::Mode::Unavailable(why) = &mode {
        bail!("conformance needs network namespaces: {why}");
    }
    let mut cmd = Command::new(&vethlab);
    cmd.arg("conformance").env("VETHLAB_BIN", &vethlab);
    for rt in &runtimes {
        cmd.args(["--runtime", rt]);
    }
    cmd.args(&args.rest);
    sandbox::wrap(&mut cmd, &mode);
    println!("xtask: vethlab conformance --runtime {}", runtimes.join(" --runtime "));
    run_status(&mut cmd, "vethlab conformance")
}
