//! `cargo xtask check-ci`: the workflow in `ci/` is the source of truth; `.github/workflows/`
//! must hold an identical copy, it must parse as YAML, and every `cargo xtask <cmd>` it names
//! must be a real subcommand.

use anyhow::Result;

pub fn run() -> Result<()> {
    anyhow::bail!("not yet")
}
