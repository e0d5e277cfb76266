//! One kernel's verdict: the guest's results checked against the tests it was given (a clean
//! exit code alone proves nothing), the failed tests' output, and the matrix table.

use std::time::{Duration, Instant};

use super::guest::GuestTest;
use super::kernel::Kernel;
use super::qemu::{self, Accel};
use super::{Args, INJECTED, INJECTED_BIN};
use crate::project::display_rel;

/// One kernel's row of the table.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) kernel: String,
    pub(super) accel: &'static str,
    /// VMs its tests were spread over.
    pub(super) vms: usize,
    pub(super) passed: usize,
    pub(super) failed: Vec<String>,
    pub(super) skipped: usize,
    /// QEMU start → `/init`, the fastest of its VMs.
    pub(super) boot: Option<Duration>,
    /// QEMU start → first test started, the fastest of its VMs.
    pub(super) first: Option<Duration>,
    /// Wall time from its first VM's start to its last VM's end.
    pub(super) total: Duration,
    pub(super) problems: Vec<String>,
    /// Every test, for `--junit`.
    pub(super) cases: Vec<Case>,
}

/// One test's outcome on one kernel.
#[derive(Debug)]
pub(super) struct Case {
    /// The test binary's area, e.g. `harness tests/scenarios`.
    pub(super) area: String,
    pub(super) name: String,
    pub(super) verdict: CaseVerdict,
    pub(super) seconds: f64,
}

#[derive(Debug)]
pub(super) enum CaseVerdict {
    Pass,
    /// Ignored, or skipped itself.
    Skip,
    /// With what the test printed, or why there is no result.
    Fail(String),
}

/// One VM's share of a kernel's run.
#[derive(Debug)]
pub(super) struct VmRun {
    /// The tests it was given (indices into the tests).
    pub(super) shard: Vec<usize>,
    pub(super) outcome: qemu::Outcome,
    pub(super) started: Instant,
    pub(super) ended: Instant,
}

/// Turns one kernel's VMs into a row. Each VM is judged on its own: every test it was given
/// must have a result, it must print the done marker, and QEMU's exit code must agree; a clean
/// exit code alone proves nothing.
pub(super) fn evaluate(k: &Kernel, accel: Accel, tests: &[GuestTest], vms: &[VmRun], args: &Args) -> Row {
    let started = vms.iter().map(|v| v.started).min();
    let ended = vms.iter().map(|v| v.ended).max();
    let mut row = Row {
        kernel: k.label.clone(),
        accel: accel.name(),
        vms: vms.len(),
        passed: 0,
        failed: Vec::new(),
        skipped: tests.iter().filter(|t| t.ignored).count(),
        boot: vms.iter().filter_map(|v| v.outcome.boot).min(),
        first: vms.iter().filter_map(|v| v.outcome.first_test).min(),
        total: started.zip(ended).map_or(Duration::ZERO, |(s, e)| e - s),
        problems: Vec::new(),
        cases: Vec::new(),
    };
    let area = |bin: &str, name: &str| {
        tests.iter().find(|t| t.guest_bin == bin && t.name == name).map_or("injected", |t| t.area.as_str())
    };
    let display = |bin: &str, name: &str| format!("{}: {name}", area(bin, name));
    let case = |bin: &str, name: &str, verdict, seconds| Case {
        area: area(bin, name).to_string(),
        name: name.to_string(),
        verdict,
        seconds,
    };
    for t in tests.iter().filter(|t| t.ignored) {
        row.cases.push(case(&t.guest_bin, &t.name, CaseVerdict::Skip, 0.0));
    }
    for (i, vm) in vms.iter().enumerate() {
        let out = &vm.outcome;
        let who = if vms.len() > 1 { format!("vm {}/{}: ", i + 1, vms.len()) } else { String::new() };
        let failed_before = row.failed.len();
        let console = std::fs::read_to_string(&out.console).unwrap_or_default();
        for res in &out.results {
            let (bin, name) = (res.bin.as_str(), res.name.as_str());
            let seconds = res.ms as f64 / 1000.0;
            let verdict = match res.status.as_str() {
                "pass" => {
                    row.passed += 1;
                    CaseVerdict::Pass
                }
                "skip" => {
                    row.skipped += 1;
                    CaseVerdict::Skip
                }
                _ => {
                    row.failed.push(display(bin, name));
                    let output = test_output(&console, res.k, name);
                    println!("xtask:   output of {name}:");
                    let lines: Vec<&str> = output.lines().collect();
                    for l in &lines[lines.len().saturating_sub(60)..] {
                        println!("    | {l}");
                    }
                    CaseVerdict::Fail(output)
                }
            };
            row.cases.push(case(bin, name, verdict, seconds));
        }
        let mut wanted: Vec<(&str, &str)> =
            vm.shard.iter().map(|&t| (tests[t].guest_bin.as_str(), tests[t].name.as_str())).collect();
        // The guest injects the self-test's failing test into its first list only.
        if args.inject_failure && i == 0 {
            wanted.push((INJECTED_BIN, INJECTED));
        }
        for (bin, name) in wanted {
            if !out.results.iter().any(|r| r.is(bin, name)) {
                row.failed.push(format!("{} (no result)", display(bin, name)));
                let why = format!("no result from the guest (console: {})", out.console.display());
                row.cases.push(case(bin, name, CaseVerdict::Fail(why), 0.0));
            }
        }
        let mut problems = out.problems.clone();
        if !out.done {
            problems.push("no done marker from the guest".into());
        }
        let want_exit = if row.failed.len() == failed_before { qemu::EXIT_PASS } else { qemu::EXIT_FAIL };
        if out.exit != Some(want_exit) && problems.is_empty() {
            problems.push(format!("QEMU exited with {:?}, expected {want_exit} (isa-debug-exit)", out.exit));
        }
        if !problems.is_empty() {
            println!("xtask:   {who}VM problem: {}", problems.join("; "));
            print_console_tail(&console, &out.console);
        }
        row.problems.extend(problems.into_iter().map(|p| format!("{who}{p}")));
    }
    row
}

fn print_console_tail(console: &str, path: &std::path::Path) {
    let lines: Vec<&str> = console.lines().collect();
    println!("xtask:   last lines of the console ({}):", display_rel(path));
    for l in &lines[lines.len().saturating_sub(40)..] {
        println!("    | {l}");
    }
    if lines.is_empty() {
        println!("    (empty: the kernel boots with `quiet`; --verbose shows its whole log)");
    }
}

/// The failed test's output, which the guest framed on the console.
fn test_output(console: &str, k: usize, name: &str) -> String {
    let start = format!("===VMOUT {k} {name}===");
    let end = format!("===VMEND {k}===");
    let Some(s) = console.find(&start) else { return "(no output on the console)".into() };
    let body = &console[s + start.len()..];
    body[..body.find(&end).unwrap_or(body.len())].trim().to_string()
}

pub(super) fn print_table(rows: &[Row]) {
    let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2}s", d.as_secs_f64()));
    let w = rows.iter().map(|r| r.kernel.len()).max().unwrap_or(6).max(6);
    println!(
        "\n{:<w$}  {:>5}  {:>3}  {:>6}  {:>6}  {:>7}  {:>8}  {:>10}  {:>8}  verdict",
        "kernel", "accel", "vms", "passed", "failed", "skipped", "boot", "first test", "total"
    );
    for r in rows {
        let ok = r.failed.is_empty() && r.problems.is_empty();
        println!(
            "{:<w$}  {:>5}  {:>3}  {:>6}  {:>6}  {:>7}  {:>8}  {:>10}  {:>8}  {}",
            r.kernel,
            r.accel,
            r.vms,
            r.passed,
            r.failed.len(),
            r.skipped,
            secs(r.boot),
            secs(r.first),
            secs(Some(r.total)),
            if ok { "PASS" } else { "FAIL" }
        );
    }
    for r in rows {
        for f in &r.failed {
            println!("  failed on {}: {f}", r.kernel);
        }
    }
    println!(
        "(boot = QEMU start to the guest's /init; first test = QEMU start to the first test starting, \
         the fastest VM's; total = the kernel's wall time over its VMs)"
    );
}
