//! `cargo xtask`: vethlab's developer and CI commands, so that a local run and CI are the same thing.
//!
//! One module per subcommand: [`test`] (lint + the whole suite in throwaway namespaces),
//! [`test_vm`] (the scenario suite inside throwaway QEMU VMs, with a kernel matrix) and
//! [`check_ci`] (the GitHub Actions workflow is in sync, parses and names only real commands).

mod artifacts;
mod check_ci;
mod conformance;
mod libtest;
mod project;
mod sandbox;
mod test;
mod test_vm;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "vethlab developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// fmt check, clippy, then every test binary inside a fresh throwaway network namespace.
    Test(test::Args),
    /// The scenario suite inside throwaway QEMU VMs (several per kernel, `--jobs`).
    TestVm(test_vm::Args),
    /// Proves `test-vm` can fail: an injected failing test and a guest kernel panic must each fail it.
    TestVmSelftest(test_vm::SelftestArgs),
    /// Checks the CI workflow: ci/ and .github/ copies identical, valid YAML, only real commands.
    CheckCi,
    /// `vethlab conformance` against native, cli, the CNI bridge plugin, netavark and vethlab's CNI mode.
    Conformance(conformance::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::TestVm(args) => test_vm::run(args),
        Command::TestVmSelftest(args) => test_vm::selftest(args),
        Command::CheckCi => check_ci::run(),
        Command::Conformance(args) => conformance::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
