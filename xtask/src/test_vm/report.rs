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
    /// QEMU start → `/init`, the fastest of its VMs.
    pub(super) boot: Option<Duration>,
    /// QEMU start → first test started, the fastest of its VMs.
    pub(super) first: Option<Duration>,
    /// Wall time from its first VM's start to its last VM's end.
    pub(super) total: Duration,
    /// VM-level problems (a panic, a missing done marker, an exit code that disagrees).
    pub(super) problems: Vec<String>,
    /// Every test, in the order the results came; the counts are derived from these.
    pub(super) cases: Vec<Case>,
}

impl Row {
    /// A row with no case and no problem yet.
    pub(super) fn new(kernel: &str, accel: Accel, vms: usize) -> Row {
        Row {
            kernel: kernel.to_string(),
            accel: accel.name(),
            vms,
            boot: None,
            first: None,
            total: Duration::ZERO,
            problems: Vec::new(),
            cases: Vec::new(),
        }
    }

    pub(super) fn passed(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.verdict, CaseVerdict::Pass)).count()
    }

    pub(super) fn skipped(&self) -> usize {
        self.cases.iter().filter(|c| matches!(c.verdict, CaseVerdict::Skip)).count()
    }

    /// The failed tests as `area: name`, marked when the guest never reported them.
    pub(super) fn failed(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter_map(|c| match c.verdict {
                CaseVerdict::Fail(_) => Some(format!("{}: {}", c.area, c.name)),
                CaseVerdict::NoResult(_) => Some(format!("{}: {} (no result)", c.area, c.name)),
                CaseVerdict::Pass | CaseVerdict::Skip => None,
            })
            .collect()
    }

    pub(super) fn ok(&self) -> bool {
        self.problems.is_empty() && self.cases.iter().all(|c| !c.verdict.is_failure())
    }
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
    /// With what the test printed.
    Fail(String),
    /// The guest never reported it; with where to look.
    NoResult(String),
}

impl CaseVerdict {
    pub(super) fn is_failure(&self) -> bool {
        matches!(self, CaseVerdict::Fail(_) | CaseVerdict::NoResult(_))
    }
}

/// One VM's share of a kernel's run.
#[derive(Debug)]
pub(super) struct VmRun {
    /// Which of the kernel's test lists it ran.
    pub(super) shard: usize,
    pub(super) outcome: qemu::Outcome,
    pub(super) started: Instant,
    pub(super) ended: Instant,
}

/// Turns one kernel's VMs into a row. Each VM is judged on its own: every test it was given
/// must have a result, it must print the done marker, and QEMU's exit code must agree; a clean
/// exit code alone proves nothing. `shards` are the kernel's test lists (indices into `tests`).
pub(super) fn evaluate(
    k: &Kernel,
    accel: Accel,
    tests: &[GuestTest],
    shards: &[Vec<usize>],
    vms: &[VmRun],
    args: &Args,
) -> Row {
    let mut row = Row::new(&k.label, accel, vms.len());
    let started = vms.iter().map(|v| v.started).min();
    let ended = vms.iter().map(|v| v.ended).max();
    row.total = started.zip(ended).map_or(Duration::ZERO, |(s, e)| e - s);
    row.boot = vms.iter().filter_map(|v| v.outcome.boot).min();
    row.first = vms.iter().filter_map(|v| v.outcome.first_test).min();
    let case = |bin: &str, name: &str, verdict, seconds| Case {
        area: tests
            .iter()
            .find(|t| t.guest_bin == bin && t.name == name)
            .map_or("injected", |t| t.area.as_str())
            .to_string(),
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
        let cases_before = row.cases.len();
        let console = std::fs::read_to_string(&out.console).unwrap_or_default();
        for res in &out.results {
            let verdict = match res.status.as_str() {
                "pass" => CaseVerdict::Pass,
                "skip" => CaseVerdict::Skip,
                _ => {
                    let output = test_output(&console, res.k, &res.name);
                    println!("xtask:   output of {}:", res.name);
                    let lines: Vec<&str> = output.lines().collect();
                    for l in &lines[lines.len().saturating_sub(60)..] {
                        println!("    | {l}");
                    }
                    CaseVerdict::Fail(output)
                }
            };
            row.cases.push(case(&res.bin, &res.name, verdict, res.ms as f64 / 1000.0));
        }
        let mut wanted: Vec<(&str, &str)> =
            shards[vm.shard].iter().map(|&t| (tests[t].guest_bin.as_str(), tests[t].name.as_str())).collect();
        // The guest injects the self-test's failing test into its first list only.
        if args.inject_failure && vm.shard == 0 {
            wanted.push((INJECTED_BIN, INJECTED));
        }
        for (bin, name) in wanted {
            if !out.results.iter().any(|r| r.is(bin, name)) {
                let why = format!("no result from the guest (console: {})", out.console.display());
                row.cases.push(case(bin, name, CaseVerdict::NoResult(why), 0.0));
            }
        }
        let mut problems = out.problems.clone();
        if !out.done {
            problems.push("no done marker from the guest".into());
        }
        let vm_failed = row.cases[cases_before..].iter().any(|c| c.verdict.is_failure());
        let want_exit = if vm_failed { qemu::EXIT_FAIL } else { qemu::EXIT_PASS };
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
        println!(
            "{:<w$}  {:>5}  {:>3}  {:>6}  {:>6}  {:>7}  {:>8}  {:>10}  {:>8}  {}",
            r.kernel,
            r.accel,
            r.vms,
            r.passed(),
            r.failed().len(),
            r.skipped(),
            secs(r.boot),
            secs(r.first),
            secs(Some(r.total)),
            if r.ok() { "PASS" } else { "FAIL" }
        );
    }
    for r in rows {
        for f in r.failed() {
            println!("  failed on {}: {f}", r.kernel);
        }
    }
    println!(
        "(boot = QEMU start to the guest's /init; first test = QEMU start to the first test starting, \
         the fastest VM's; total = the kernel's wall time over its VMs)"
    );
}
