//! One kernel's verdict: the guest's results checked against the tests it was given (a clean
//! exit code alone proves nothing), the failed tests' output, and the matrix table.

use std::time::Duration;

use anyhow::Result;

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
    pub(super) passed: usize,
    pub(super) failed: Vec<String>,
    pub(super) skipped: usize,
    pub(super) boot: Option<Duration>,
    pub(super) first: Option<Duration>,
    pub(super) total: Duration,
    pub(super) problems: Vec<String>,
}

/// Turns one boot's outcome into a row; a clean exit code alone proves nothing.
pub(super) fn evaluate(
    k: &Kernel,
    accel: Accel,
    tests: &[GuestTest],
    out: &qemu::Outcome,
    args: &Args,
) -> Result<Row> {
    let mut row = Row {
        kernel: k.label.clone(),
        accel: accel.name(),
        passed: 0,
        failed: Vec::new(),
        skipped: tests.iter().filter(|t| t.ignored).count(),
        boot: out.boot,
        first: out.first_test,
        total: out.total,
        problems: out.problems.clone(),
    };
    let display = |bin: &str, name: &str| {
        tests
            .iter()
            .find(|t| t.guest_bin == bin && t.name == name)
            .map_or(name.to_string(), |t| format!("{}: {name}", t.area))
    };
    let console = std::fs::read_to_string(&out.console).unwrap_or_default();
    for (k, st, _, bin, name) in &out.results {
        match st.as_str() {
            "pass" => row.passed += 1,
            "skip" => row.skipped += 1,
            _ => {
                row.failed.push(display(bin, name));
                print_test_output(&console, *k, name);
            }
        }
    }
    let mut wanted: Vec<(String, String)> =
        tests.iter().filter(|t| !t.ignored).map(|t| (t.guest_bin.clone(), t.name.clone())).collect();
    if args.inject_failure {
        wanted.push((INJECTED_BIN.into(), INJECTED.into()));
    }
    for (bin, name) in &wanted {
        if !out.results.iter().any(|r| &r.3 == bin && &r.4 == name) {
            row.failed.push(format!("{} (no result)", display(bin, name)));
        }
    }
    if !out.done {
        row.problems.push("no done marker from the guest".into());
    }
    let want_exit = if row.failed.is_empty() { qemu::EXIT_PASS } else { qemu::EXIT_FAIL };
    if out.exit != Some(want_exit) && row.problems.is_empty() {
        row.problems.push(format!("QEMU exited with {:?}, expected {want_exit} (isa-debug-exit)", out.exit));
    }
    if !row.problems.is_empty() {
        println!("xtask:   VM problem: {}", row.problems.join("; "));
        let lines: Vec<&str> = console.lines().collect();
        println!("xtask:   last lines of the console ({}):", display_rel(&out.console));
        for l in &lines[lines.len().saturating_sub(40)..] {
            println!("    | {l}");
        }
        if lines.is_empty() {
            println!("    (empty: the kernel boots with `quiet`; --verbose shows its whole log)");
        }
    }
    Ok(row)
}

/// The failed test's output, which the guest framed on the console.
fn print_test_output(console: &str, k: usize, name: &str) {
    let start = format!("===VMOUT {k} {name}===");
    let end = format!("===VMEND {k}===");
    let Some(s) = console.find(&start) else { return };
    let body = &console[s + start.len()..];
    let body = &body[..body.find(&end).unwrap_or(body.len())];
    println!("xtask:   output of {name}:");
    let lines: Vec<&str> = body.trim().lines().collect();
    for l in &lines[lines.len().saturating_sub(60)..] {
        println!("    | {l}");
    }
}

pub(super) fn print_table(rows: &[Row]) {
    let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2}s", d.as_secs_f64()));
    let w = rows.iter().map(|r| r.kernel.len()).max().unwrap_or(6).max(6);
    println!(
        "\n{:<w$}  {:>5}  {:>6}  {:>6}  {:>7}  {:>8}  {:>10}  {:>8}  verdict",
        "kernel", "accel", "passed", "failed", "skipped", "boot", "first test", "total"
    );
    for r in rows {
        let ok = r.failed.is_empty() && r.problems.is_empty();
        println!(
            "{:<w$}  {:>5}  {:>6}  {:>6}  {:>7}  {:>8}  {:>10}  {:>8}  {}",
            r.kernel,
            r.accel,
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
    println!("(boot = QEMU start to the guest's /init; first test = QEMU start to the first test starting)");
}
