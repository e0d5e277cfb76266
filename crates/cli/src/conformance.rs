//! `vethlab conformance`: the scenario catalogue against each runtime given, every scenario in a
//! throwaway lab, reported as a scenario × runtime matrix (table, JSON or JUnit XML). The work is
//! the harness's (`vethlab_harness::conformance`); this module picks runtimes and scenarios and
//! prints. Its labs' named namespaces live in a `/run/netns` private to this process, so a run
//! that is interrupted leaves nothing behind.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use vethlab_harness::conformance::{self, Verdict};
use vethlab_harness::scenario::catalogue;

use crate::args::{ConformanceArgs, ReportFormat};

pub async fn conformance(args: ConformanceArgs) -> Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!("conformance needs root: every scenario builds network namespaces");
    }
    // Before anything starts a thread (the async runtime is single-threaded and idle so far).
    vethlab_harness::lab::private_netns_dir()?;
    let me = std::env::current_exe().context("locate the vethlab binary for the cli runtime")?;
    let specs = if args.runtimes.is_empty() { vec!["native".to_owned()] } else { args.runtimes };
    let mut runtimes =
        specs.iter().map(|s| vethlab_harness::runtimes::parse(s, &me)).collect::<Result<Vec<_>>>()?;
    let all = catalogue();
    for name in &args.scenarios {
        if !all.iter().any(|s| s.name == name) {
            let names: Vec<&str> = all.iter().map(|s| s.name).collect();
            bail!("scenario {name} does not exist (catalogue: {})", names.join(", "));
        }
    }
    let chosen: Vec<_> = all
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|n| n == s.name))
        .collect();
    let mut results = Vec::new();
    for scenario in &chosen {
        for rt in &mut runtimes {
            let result = conformance::run_case(rt.as_mut(), scenario).await;
            eprintln!(
                "{} on {}: {} ({:.2}s)",
                scenario.name,
                rt.name(),
                result.verdict.word(),
                result.seconds
            );
            results.push(result);
        }
    }
    match args.format {
        ReportFormat::Table => print!("{}", conformance::table(&results)),
        ReportFormat::Json => println!("{}", conformance::json(&results)?),
        ReportFormat::Junit => print!("{}", conformance::junit(&results)),
    }
    let failed = results.iter().any(|r| matches!(r.verdict, Verdict::Fail(_)));
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
