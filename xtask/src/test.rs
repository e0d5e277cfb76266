//! `cargo xtask test`: fmt check, clippy, then every test binary of the workspace, each inside a
//! fresh throwaway network + mount namespace, with a summary per area.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::artifacts::{self, TestBinary};
use crate::libtest::{self, Status, Summary, TestOutcome};
use crate::project::{cargo, display_rel, run_status, target_dir};
use crate::sandbox::{self, Mode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and `cargo clippy`.
    #[arg(long)]
    no_lint: bool,
    /// Skip the doc tests (`cargo test --doc`).
    #[arg(long)]
    no_doc: bool,
    /// Kill a test binary that runs longer than this many seconds.
    #[arg(long, default_value_t = 1200)]
    timeout: u64,
    /// Test name filters and libtest options, passed to every test binary
    /// (`cargo xtask test seed`, `cargo xtask test -- --exact seed`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    test_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    if !args.no_lint {
        step("cargo fmt --all -- --check");
        run_status(
            cargo().args(["fmt", "--all", "--", "--check"]),
            "cargo fmt --check (run `cargo fmt --all`)",
        )?;
        step("cargo clippy --workspace --all-targets -- -D warnings");
        run_status(
            cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
            "cargo clippy",
        )?;
    }
    step("building test binaries");
    let target = target_dir()?;
    let binaries = artifacts::build_tests(&[], artifacts::Profile::Dev)?;
    let vethlab = artifacts::build_vethlab(&target, artifacts::Profile::Dev)?;

    let mode = sandbox::detect()?;
    match &mode {
        Mode::Root => step("running tests as root, each binary in a fresh net+mount namespace"),
        Mode::UserNs => step(
            "running tests in a user namespace (root inside), each binary in a fresh net+mount namespace",
        ),
        Mode::Unavailable(why) if is_root() => {
            // Root without namespaces (e.g. an unprivileged container): the privileged tests
            // would believe they may run and would touch this machine. Refuse instead.
            bail!("running as root but cannot create namespaces ({why}); use a privileged container or a VM")
        }
        Mode::Unavailable(why) => {
            eprintln!("xtask: WARNING: no namespaces available: {why}");
            eprintln!(
                "xtask: running unprivileged tests only; privileged tests will report themselves skipped"
            );
        }
    }

    let logs = target.join("xtask").join("test-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut summary = Summary::default();
    for bin in &binaries {
        let outcome = run_binary(bin, &mode, &vethlab, &logs, &args)?;
        summary.add(&bin.area, outcome);
    }
    if !args.no_doc {
        summary.add("doctests", run_doctests(&logs)?);
    }

    println!("\n{}", summary.render());
    let ci = std::env::var_os("CI").is_some();
    println!("total time {:.1}s", started.elapsed().as_secs_f64());
    if summary.failed() > 0 {
        bail!("{} test(s) failed (logs in {})", summary.failed(), display_rel(&logs));
    }
    if ci && summary.skipped() > 0 {
        bail!("{} privileged test(s) skipped and CI is set: skipping is a failure here", summary.skipped());
    }
    if let Mode::Unavailable(why) = mode {
        eprintln!("xtask: note: privileged tests could not run: {why}");
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn step(what: &str) {
    println!("xtask: {what}");
}

/// Runs one test binary in its sandbox; returns its tests, with skips applied. A binary that
/// crashes or times out without a `test result:` line counts as one failed pseudo-test.
fn run_binary(
    bin: &TestBinary,
    mode: &Mode,
    vethlab: &Path,
    logs: &Path,
    args: &Args,
) -> Result<Vec<TestOutcome>> {
    let stem = bin.area.replace(['/', ' ', '(', ')'], "_");
    let log_path = logs.join(format!("{stem}.log"));
    let skip_log = logs.join(format!("{stem}.skips"));
    let _ = std::fs::remove_file(&skip_log);
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(&bin.path);
    cmd.args(&args.test_args)
        .env("VETHLAB_SKIP_LOG", &skip_log)
        .env("VETHLAB_BIN", vethlab)
        .current_dir(&bin.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file")?)
        .stderr(log);
    sandbox::wrap(&mut cmd, mode);
    let started = Instant::now();
    print!("xtask: {:<40} ", bin.area);
    let _ = std::io::stdout().flush();
    let mut child =
        cmd.spawn().with_context(|| format!("starting {} in its namespace", bin.path.display()))?;
    let status = loop {
        if let Some(s) = child.try_wait().context("waiting for a test binary")? {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(args.timeout) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut parsed = libtest::parse(&output);
    let skips = libtest::parse_skip_log(&std::fs::read_to_string(&skip_log).unwrap_or_default());
    for (name, reason) in libtest::apply_skips(&mut parsed.tests, &skips) {
        eprintln!("xtask: skip log names `{name}` ({reason}), which is no test of {}", bin.area);
    }
    let crashed = match status {
        None => Some(format!("<timed out after {}s>", args.timeout)),
        Some(s) if parsed.result_lines == 0 => {
            Some(format!("<binary exited with {s} without a test result>"))
        }
        Some(s) if !s.success() && !parsed.tests.iter().any(|t| t.status == Status::Failed) => {
            Some(format!("<binary exited with {s}>"))
        }
        Some(_) => None,
    };
    if let Some(name) = crashed {
        parsed.tests.push(TestOutcome { name, status: Status::Failed });
    }
    let count = |p: fn(&Status) -> bool| parsed.tests.iter().filter(|t| p(&t.status)).count();
    let failed = count(|s| *s == Status::Failed);
    println!(
        "{} passed, {failed} failed, {} skipped ({:.1}s)",
        count(|s| *s == Status::Passed),
        count(|s| matches!(s, Status::Skipped(_))),
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        print_failures(&output, &log_path);
    }
    Ok(parsed.tests)
}

/// Prints libtest's `failures:` section (or the log's tail) so the reason is on screen.
fn print_failures(output: &str, log: &Path) {
    let text = match output.find("\nfailures:\n") {
        Some(i) => &output[i..],
        None => {
            let lines: Vec<&str> = output.lines().collect();
            let start = lines.len().saturating_sub(40);
            println!("{}", lines[start..].join("\n"));
            println!("(full log: {})", display_rel(log));
            return;
        }
    };
    println!("{}", text.trim_end());
    println!("(full log: {})", display_rel(log));
}

/// Doc tests are built and run by cargo itself, outside the sandbox: they need no privileges.
fn run_doctests(logs: &Path) -> Result<Vec<TestOutcome>> {
    print!("xtask: {:<40} ", "doctests");
    let _ = std::io::stdout().flush();
    let started = Instant::now();
    let out = cargo().args(["test", "--workspace", "--doc"]).output().context("running cargo test --doc")?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let log_path = logs.join("doctests.log");
    std::fs::write(&log_path, &text).with_context(|| format!("writing {}", log_path.display()))?;
    let mut parsed = libtest::parse(&text);
    // Doc-test names look like `src/lib.rs - Foo (line 3)`; they parse like any other test.
    if !out.status.success() && !parsed.tests.iter().any(|t| t.status == Status::Failed) {
        parsed.tests.push(TestOutcome {
            name: format!("<cargo test --doc exited with {}>", out.status),
            status: Status::Failed,
        });
    }
    let failed = parsed.tests.iter().filter(|t| t.status == Status::Failed).count();
    println!("{} run, {failed} failed ({:.1}s)", parsed.tests.len(), started.elapsed().as_secs_f64());
    if failed > 0 {
        print_failures(&text, &log_path);
    }
    Ok(parsed.tests)
}
