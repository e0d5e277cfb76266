//! Running one test as `<binary> --exact <name> --test-threads=1` in its package directory,
//! with a timeout, while reaping every orphan that PID 1 inherits.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One line of `/etc/vethlab/tests`: `<binary> <dir> <name>`.
#[derive(Debug, PartialEq, Eq)]
pub struct TestSpec {
    pub binary: String,
    pub dir: String,
    pub name: String,
}

impl TestSpec {
    pub fn parse(line: &str) -> Option<TestSpec> {
        let mut words = line.split_whitespace();
        let (binary, dir, name) = (words.next()?, words.next()?, words.next()?);
        Some(TestSpec { binary: binary.into(), dir: dir.into(), name: name.into() })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }

    /// libtest's verdict for a single `--exact` test: only its own summary line counts, so a
    /// binary that exits 0 without running the test (a wrong name, say) is a failure.
    pub fn from_libtest(exit_ok: bool, output: &str) -> Status {
        let summary = |s: &str| output.lines().any(|l| l.starts_with(s));
        if exit_ok && summary("test result: ok. 1 passed") {
            Status::Pass
        } else if exit_ok && summary("test result: ok. 0 passed; 0 failed; 1 ignored") {
            Status::Skip
        } else {
            Status::Fail
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub status: Status,
    pub duration: Duration,
    pub output: String,
}

/// The environment every test gets: what CI sets (a privileged test must not skip), where the
/// CLI is, plus the `KEY=VALUE` lines of `/etc/vethlab/env`.
pub fn test_env(extra: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        ("HOME", "/root"),
        ("TMPDIR", "/tmp"),
        ("CI", "1"),
        ("VETHLAB_BIN", "/bin/vethlab"),
        ("VETHLAB_IN_VM", "1"),
        ("RUST_BACKTRACE", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for line in extra.lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    env
}

/// `argv` from NUL-separated words; none means an interactive shell (job control needs a
/// controlling terminal: busybox's `cttyhack` gives the shell the console as one).
pub fn command_argv(command: &[u8]) -> Vec<String> {
    let argv: Vec<String> = command
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if argv.is_empty() {
        return ["setsid", "cttyhack", "sh", "-l"].map(String::from).to_vec();
    }
    argv
}

/// Runs the `--run` command on the console (PID 1's own stdio); returns its exit status, 128 +
/// the signal if one killed it, 127 if it could not start.
pub fn run_command(command: &[u8], env: &[(String, String)]) -> i32 {
    let argv = command_argv(command);
    let status =
        Command::new(&argv[0]).args(&argv[1..]).env_clear().envs(env.iter().map(|(k, v)| (k, v))).status();
    match status {
        Ok(s) => {
            s.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0))
        }
        Err(e) => {
            eprintln!("vethlab-init: cannot start {argv:?}: {e}");
            127
        }
    }
}

pub fn run(test: &TestSpec, env: &[(String, String)], timeout: Duration) -> Outcome {
    let started = Instant::now();
    let out_path = "/tmp/vethlab-test.out";
    let spawned = std::fs::File::create(out_path).and_then(|out| {
        let err = out.try_clone()?;
        Command::new(&test.binary)
            .args(["--exact", &test.name, "--test-threads=1"])
            .current_dir(&test.dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group, so a timeout kills what the test started too.
            .process_group(0)
            .spawn()
    });
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let output = format!("vethlab-init: cannot start {} in {}: {e}", test.binary, test.dir);
            return Outcome { status: Status::Fail, duration: started.elapsed(), output };
        }
    };
    let pid = child.id() as libc::pid_t;
    let exit_ok = wait_reaping(pid, started + timeout);
    let duration = started.elapsed();
    let mut output = std::fs::read_to_string(out_path).unwrap_or_default();
    if exit_ok.is_none() {
        output += &format!("\nvethlab-init: {} killed after {}s\n", test.name, timeout.as_secs());
    }
    Outcome { status: Status::from_libtest(exit_ok == Some(true), &output), duration, output }
}

/// Waits for `pid` until `deadline`, reaping any other child on the way (PID 1 adopts every
/// orphan). Returns whether it exited with status 0, or None when it was killed at the deadline.
fn wait_reaping(pid: libc::pid_t, deadline: Instant) -> Option<bool> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) writes only `status`.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if reaped == pid {
            return Some(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        if reaped > 0 {
            continue;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) of the test's process group, then of the test itself.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            // SAFETY: as above; blocks until the killed test is gone.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_verdicts() {
        let ok = "running 1 test\ntest a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored\n";
        assert_eq!(Status::from_libtest(true, ok), Status::Pass);
        assert_eq!(Status::from_libtest(false, ok), Status::Fail, "a non-zero exit is never a pass");
        let none = "running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored\n";
        assert_eq!(Status::from_libtest(true, none), Status::Fail, "a test that did not run");
        let ignored = "test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured\n";
        assert_eq!(Status::from_libtest(true, ignored), Status::Skip);
    }

    #[test]
    fn command_words_or_an_interactive_shell() {
        assert_eq!(command_argv(b"vethlab\0demo\0"), ["vethlab", "demo"]);
        assert_eq!(command_argv(b"sh\0-c\0ip link; exit 3"), ["sh", "-c", "ip link; exit 3"]);
        assert_eq!(command_argv(b""), ["setsid", "cttyhack", "sh", "-l"]);
    }

    #[test]
    fn a_command_status_is_its_exit_code_or_127() {
        let env = test_env("");
        assert_eq!(run_command(b"sh\0-c\0exit 3", &env), 3);
        assert_eq!(run_command(b"/nonexistent/vethlab-command", &env), 127);
    }

    #[test]
    fn test_lines_and_env() {
        let t = TestSpec::parse("/tests/a /w/harness mod::name").expect("three words");
        assert_eq!(
            (t.binary.as_str(), t.dir.as_str(), t.name.as_str()),
            ("/tests/a", "/w/harness", "mod::name")
        );
        assert_eq!(TestSpec::parse("/tests/a /w"), None);
        let env = test_env("INSTA_WORKSPACE_ROOT=/w\n\n");
        assert!(env.contains(&("CI".into(), "1".into())));
        assert!(env.contains(&("INSTA_WORKSPACE_ROOT".into(), "/w".into())));
    }

    #[test]
    // The child is reaped by `wait_reaping` (waitpid), not `Child::wait`.
    #[allow(clippy::zombie_processes)]
    fn a_test_that_hangs_is_killed_at_the_deadline() {
        // The only test here that spawns: waitpid(-1) takes no other test's child.
        let child = Command::new("/bin/sh").args(["-c", "sleep 30"]).process_group(0).spawn();
        let child = child.expect("spawning sh");
        let started = Instant::now();
        let r = wait_reaping(child.id() as libc::pid_t, Instant::now() + Duration::from_millis(200));
        assert_eq!(r, None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
