//! `/init` of the `cargo xtask test-vm` guest: PID 1 of a throwaway VM.
//!
//! A Rust program rather than a shell script because under TCG every fork+exec of busybox costs
//! tens of milliseconds: loading 29 modules with `insmod` and wrapping each test in `timeout`,
//! `grep` and `cat` added about a second before the first test and a few hundred milliseconds
//! per test. Here modules load with `finit_module(2)` from this process, tests are spawned
//! directly, timed with a monotonic clock and killed (their whole process group) on timeout.
//!
//! The protocol with the host ([`report`]), one line each on the second serial port (ttyS1), all
//! tagged with the run's nonce from the kernel command line (`vethlab.nonce=`):
//! - `VMBOOT <nonce> <uptime_ms>` when /init starts;
//! - `VMMODFAIL <nonce> <module>` for a module that failed to load (the console says why);
//! - `VMREADY <nonce> <uptime_ms>` once the modules are loaded and `lo` is up;
//! - `VMRUN <nonce> <k> <name>` when test `k` starts;
//! - `VMRESULT <nonce> <k> pass|fail|skip <duration_ms> <binary> <name>` when it ends;
//! - `VMDONE <nonce> <count> <failed>` after the last one.
//!
//! With `vethlab.run=1` (`cargo xtask test-vm --run`) no test runs: `/init` runs the command in
//! `/etc/vethlab/command` (its arguments NUL-separated; empty for an interactive shell) on the
//! console, reports `VMCMD <nonce> <exit status>` and then `VMDONE`.
//!
//! A failed test's output goes to the console (ttyS0) framed by `===VMOUT k name===` and
//! `===VMEND k===`. Then QEMU is left through isa-debug-exit: 0x10 all passed, 0x11 not.
//!
//! Inputs, written by the host into the initramfs: `/etc/vethlab/modules` (module names in
//! load order, each at `/lib/modules/<name>.ko`), `/etc/vethlab/tests.<shard>` (`<binary> <dir>
//! <name>` per line; the host boots one VM per shard, each with `vethlab.shard=<shard>`, default
//! 0), `/etc/vethlab/env` (`KEY=VALUE` lines added to every test's environment). `k` in the
//! protocol counts the tests of this shard.

mod runner;
mod sys;

use std::io::Write;
use std::time::Duration;

use runner::{Status, TestSpec};

/// Where result lines go: the guest's second serial port.
const RESULTS_PORT: &str = "/dev/ttyS1";
/// The test the host's self-test injects (`vethlab.inject_failure=1`).
const INJECTED: &str = "/bin/vethlab-injected-failure / injected::always_fails";

/// Settings from the kernel command line.
#[derive(Debug)]
struct Settings {
    nonce: String,
    inject_failure: bool,
    test_timeout: Duration,
    /// Stop after this many tests (the host's boot-time benchmark runs only the first).
    max_tests: Option<usize>,
    /// Which of the host's test lists this VM runs.
    shard: usize,
    /// Run `/etc/vethlab/command` instead of the tests.
    run_command: bool,
}

impl Settings {
    fn from_cmdline(cmdline: &str) -> Settings {
        let mut s = Settings {
            nonce: "none".into(),
            inject_failure: false,
            test_timeout: Duration::from_secs(120),
            max_tests: None,
            shard: 0,
            run_command: false,
        };
        for word in cmdline.split_whitespace() {
            if let Some(v) = word.strip_prefix("vethlab.nonce=") {
                s.nonce = v.to_string();
            } else if word == "vethlab.run=1" {
                s.run_command = true;
            } else if word == "vethlab.inject_failure=1" {
                s.inject_failure = true;
            } else if let Some(v) = word.strip_prefix("vethlab.max_tests=") {
                s.max_tests = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("vethlab.shard=") {
                s.shard = v.parse().unwrap_or(0);
            } else if let Some(v) = word.strip_prefix("vethlab.test_timeout=")
                && let Ok(secs) = v.parse()
            {
                s.test_timeout = Duration::from_secs(secs);
            }
        }
        s
    }
}

/// Writes one protocol line to the results port (opened per line: it is rare and must not be
/// lost in a buffer if the guest dies).
fn report(line: &str) {
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(RESULTS_PORT)
        .and_then(|mut port| port.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!("vethlab-init: writing {line:?} to {RESULTS_PORT}: {e}");
    }
}

fn main() {
    if let Err(e) = sys::basic_mounts() {
        eprintln!("vethlab-init: {e}");
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let settings = Settings::from_cmdline(&cmdline);
    let nonce = &settings.nonce;
    report(&format!("VMBOOT {nonce} {}", sys::uptime_ms()));

    let modules = std::fs::read_to_string("/etc/vethlab/modules").unwrap_or_default();
    for name in modules.lines().filter(|l| !l.is_empty()) {
        if let Err(e) = sys::load_module(&format!("/lib/modules/{name}.ko")) {
            eprintln!("vethlab-init: loading module {name}: {e}");
            report(&format!("VMMODFAIL {nonce} {name}"));
        }
    }
    if let Err(e) = sys::loopback_up() {
        eprintln!("vethlab-init: bringing lo up: {e}");
    }
    report(&format!("VMREADY {nonce} {}", sys::uptime_ms()));

    let env = runner::test_env(&std::fs::read_to_string("/etc/vethlab/env").unwrap_or_default());
    if settings.run_command {
        let command = std::fs::read("/etc/vethlab/command").unwrap_or_default();
        let status = runner::run_command(&command, &env);
        report(&format!("VMCMD {nonce} {status}"));
        report(&format!("VMDONE {nonce} 0 0"));
        sys::exit_qemu(status == 0);
    }
    let tests_file = format!("/etc/vethlab/tests.{}", settings.shard);
    let mut list = std::fs::read_to_string(&tests_file).unwrap_or_else(|e| {
        // An empty run still ends with a done marker; the host sees the missing results.
        eprintln!("vethlab-init: reading {tests_file}: {e}");
        String::new()
    });
    // The host's self-test injects its failing test into the first shard only.
    if settings.inject_failure && settings.shard == 0 {
        list.push_str(INJECTED);
        list.push('\n');
    }
    let mut tests: Vec<TestSpec> = list.lines().filter_map(TestSpec::parse).collect();
    if let Some(n) = settings.max_tests {
        tests.truncate(n);
    }
    let mut failed = 0;
    for (i, test) in tests.iter().enumerate() {
        let k = i + 1;
        report(&format!("VMRUN {nonce} {k} {}", test.name));
        let outcome = runner::run(test, &env, settings.test_timeout);
        if outcome.status == Status::Fail {
            failed += 1;
            println!("===VMOUT {k} {}===\n{}\n===VMEND {k}===", test.name, outcome.output.trim_end());
        }
        report(&format!(
            "VMRESULT {nonce} {k} {} {} {} {}",
            outcome.status.word(),
            outcome.duration.as_millis(),
            test.binary,
            test.name
        ));
    }
    report(&format!("VMDONE {nonce} {} {failed}", tests.len()));
    sys::exit_qemu(failed == 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_kernel_command_line() {
        let s = Settings::from_cmdline(
            "console=ttyS0 quiet vethlab.nonce=ab12 vethlab.test_timeout=30 vethlab.inject_failure=1 \
             vethlab.max_tests=1 vethlab.shard=3 vethlab.run=1\n",
        );
        assert_eq!(s.shard, 3);
        assert!(s.run_command);
        assert_eq!(s.nonce, "ab12");
        assert_eq!(s.test_timeout, Duration::from_secs(30));
        assert!(s.inject_failure);
        assert_eq!(s.max_tests, Some(1));
        let d = Settings::from_cmdline("console=ttyS0 vethlab.test_timeout=soon");
        assert_eq!(
            (d.nonce.as_str(), d.test_timeout, d.inject_failure, d.shard, d.run_command),
            ("none", Duration::from_secs(120), false, 0, false)
        );
    }
}
