//! `cargo xtask test-vm`: the scenario suite inside throwaway QEMU VMs, one per kernel.

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, clap::Args)]
pub struct SelftestArgs {}

pub fn run(_args: Args) -> Result<()> {
    anyhow::bail!("not yet")
}

pub fn selftest(_args: SelftestArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
