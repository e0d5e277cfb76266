//! Running QEMU: the KVM probe, the guest's command line, and watching its two serial ports
//! (console on ttyS0, results on ttyS1) until the done marker, a panic, a lockup or a timeout.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The vCPUs a guest gets unless `--smp` says otherwise. Under TCG one: with two, Linux's
    /// live code patching (`text_poke_bp`: int3 at the site, IPI, rewrite, IPI) races TCG's
    /// cross-vCPU handling of modified code, and the other vCPU sometimes executes the int3
    /// after the kernel has stopped expecting it: "Oops: int3" in `sched_clock_cpu` when the
    /// sched_clock static key flips at late init: 3 of about 85 Debian 6.12 boots here with
    /// `-smp 2`, none of 60 with `-smp 1`. One vCPU also runs the suite faster on a 2-core host
    /// (tests run one at a time, and a second TCG vCPU competes with QEMU's own threads):
    /// 134 s → 119 s on Debian 6.12, 125 s → 111 s on the minimal kernel.
    pub fn default_smp(self) -> u32 {
        match self {
            Accel::Kvm => 2,
            Accel::Tcg => 1,
        }
    }

    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// isa-debug-exit turns the guest's byte `v` into QEMU's exit status `(v << 1) | 1`.
pub const EXIT_PASS: i32 = (0x10 << 1) | 1;
pub const EXIT_FAIL: i32 = (0x11 << 1) | 1;

fn base_command(accel: Accel, kernel: &Path, memory_mib: u32, smp: u32) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(accel.args())
        // q35, not microvm: microvm hangs intermittently under TCG.
        .args(["-M", "q35", "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none"])
        .args(["-m", &memory_mib.to_string(), "-smp", &smp.to_string()])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(kernel)
        .stdin(Stdio::null());
    cmd
}

/// Whether KVM really runs a guest here: `/dev/kvm` may exist while KVM hangs or aborts. Boots
/// `kernel` without an initramfs (it panics at once and `-no-reboot` ends QEMU); a working KVM
/// does that in well under the deadline, a broken one hangs and is killed.
pub fn kvm_works(kernel: &Path, dir: &Path) -> Result<bool> {
    let kvm = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm");
    if kvm.is_err() {
        return Ok(false);
    }
    let console = dir.join("kvm-probe.log");
    let mut cmd = base_command(Accel::Kvm, kernel, 256, 1);
    cmd.args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().context("starting qemu-system-x86_64 (ci/install.sh installs it)")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            let log = std::fs::read_to_string(&console).unwrap_or_default();
            return Ok(log.contains("Kernel panic") || log.contains("VFS"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(false)
}

/// One boot's inputs.
#[derive(Debug)]
pub struct Boot<'a> {
    pub accel: Accel,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: String,
    pub memory_mib: u32,
    pub smp: u32,
    pub dir: &'a Path,
    pub timeout: Duration,
    /// Fail when the guest reports nothing (boot, module or test line) for this long.
    pub silence: Duration,
    pub verbose: bool,
    pub nonce: &'a str,
    /// Prefix of this VM's progress lines: empty when it runs alone, else which kernel and VM.
    pub tag: &'a str,
    /// Shared by the VMs of one kernel, for its `k/N` progress lines.
    pub progress: &'a Progress,
    /// The console on this terminal (input too), still logged to the console file: `--run`.
    pub interactive: bool,
}

/// One `VMRESULT` line: test `k` of its VM, `pass`, `fail` or `skip`, how long it took.
#[derive(Debug, Clone)]
pub struct GuestResult {
    pub k: usize,
    pub status: String,
    pub ms: u64,
    /// The test binary inside the guest (`/tests/…`).
    pub bin: String,
    pub name: String,
}

impl GuestResult {
    /// Whether this is the result of test `name` of `bin`.
    pub fn is(&self, bin: &str, name: &str) -> bool {
        self.bin == bin && self.name == name
    }
}

/// Tests finished so far over every VM of one kernel, out of how many.
#[derive(Debug)]
pub struct Progress {
    done: AtomicUsize,
    total: usize,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress { done: AtomicUsize::new(0), total }
    }

    /// Counts one more finished test; returns its number.
    fn finish_one(&self) -> usize {
        self.done.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// What one boot produced.
#[derive(Debug)]
pub struct Outcome {
    pub console: PathBuf,
    /// QEMU start → the guest's /init reported in.
    pub boot: Option<Duration>,
    /// QEMU start → the guest's modules loaded and `lo` up.
    pub modules_ready: Option<Duration>,
    /// QEMU start → the first test started.
    pub first_test: Option<Duration>,
    pub total: Duration,
    /// Result lines carrying our nonce.
    pub results: Vec<GuestResult>,
    pub done: bool,
    pub exit: Option<i32>,
    /// VM-level problems: panic, lockup, timeout, modules that failed to load, foreign lines.
    pub problems: Vec<String>,
    /// The exit status of the `--run` command.
    pub command_status: Option<i32>,
}

/// Console lines that mean the guest is broken, whatever happens next. An oops or BUG need not
/// panic the kernel (a process dies and the guest goes on), but its state is suspect from then on.
const FATAL: &[&str] =
    &["Kernel panic", "soft lockup", "hard LOCKUP", "rcu_sched self-detected stall", "Oops: ", "BUG: "];

/// The first sign in [`FATAL`] that the console shows.
fn fatal_sign(console: &str) -> Option<&'static str> {
    FATAL.iter().copied().find(|f| console.contains(f))
}

pub fn run(boot: &Boot) -> Result<Outcome> {
    let console = boot.dir.join("console.log");
    let results = boot.dir.join("results.log");
    for f in [&console, &results] {
        std::fs::write(f, b"").with_context(|| format!("creating {}", f.display()))?;
    }
    let mut cmd = base_command(boot.accel, boot.kernel, boot.memory_mib, boot.smp);
    cmd.arg("-initrd").arg(boot.initramfs).arg("-append").arg(&boot.cmdline);
    if boot.interactive {
        // Ctrl-C goes to the guest; Ctrl-A X leaves QEMU (mux with the monitor on Ctrl-A C).
        cmd.arg("-chardev")
            .arg(format!("stdio,id=console,mux=on,signal=off,logfile={}", console.display()))
            .args(["-serial", "chardev:console", "-mon", "chardev=console,mode=readline"])
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit());
    } else {
        cmd.arg("-serial").arg(format!("file:{}", console.display())).stdout(Stdio::null());
    }
    cmd.arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stderr(std::fs::File::create(boot.dir.join("qemu.stderr"))?);
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let mut out = Outcome {
        console: console.clone(),
        boot: None,
        modules_ready: None,
        first_test: None,
        total: Duration::ZERO,
        results: Vec::new(),
        done: false,
        exit: None,
        problems: Vec::new(),
        command_status: None,
    };
    let mut con = Tail::open(&console)?;
    let mut res = Tail::open(&results)?;
    let mut fatal_seen = false;
    let mut last_report = Instant::now();
    loop {
        let exited = child.try_wait()?;
        let new_console = con.read_new()?;
        if boot.verbose && !new_console.is_empty() {
            print!("{new_console}");
            let _ = std::io::stdout().flush();
        }
        if !fatal_seen && let Some(f) = fatal_sign(&con.all) {
            out.problems.push(format!("the guest console shows {f:?}"));
            fatal_seen = true;
        }
        res.read_new()?;
        for line in res.take_lines() {
            handle_result_line(&line, boot, started, &mut out);
            last_report = Instant::now();
        }
        if let Some(status) = exited {
            out.exit = status.code();
            break;
        }
        if fatal_seen {
            // Let a panicking kernel finish printing, then stop it.
            std::thread::sleep(Duration::from_millis(500));
            kill(&mut child);
            con.read_new()?;
            break;
        }
        if last_report.elapsed() > boot.silence {
            out.problems.push(format!("the guest reported nothing for {}s", boot.silence.as_secs()));
            kill(&mut child);
            break;
        }
        if started.elapsed() > boot.timeout {
            out.problems.push(format!("overall timeout: the VM ran longer than {}s", boot.timeout.as_secs()));
            kill(&mut child);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    res.read_new()?;
    for line in res.take_lines() {
        handle_result_line(&line, boot, started, &mut out);
    }
    out.total = started.elapsed();
    Ok(out)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn handle_result_line(line: &str, boot: &Boot, started: Instant, out: &mut Outcome) {
    let mut words = line.split_whitespace();
    let (Some(kind), Some(nonce)) = (words.next(), words.next()) else { return };
    if nonce != boot.nonce {
        out.problems.push(format!("result line with a foreign nonce: {line:?}"));
        return;
    }
    let rest: Vec<&str> = words.collect();
    match (kind, rest.as_slice()) {
        ("VMBOOT", _) => {
            out.boot = Some(started.elapsed());
            let secs = started.elapsed().as_secs_f64();
            println!("xtask:   {}guest /init started {secs:.2}s after QEMU start", boot.tag);
        }
        ("VMREADY", _) => {
            out.modules_ready = Some(started.elapsed());
            let secs = started.elapsed().as_secs_f64();
            println!("xtask:   {}modules loaded {secs:.2}s after QEMU start", boot.tag);
        }
        ("VMMODFAIL", [m]) => out.problems.push(format!("module {m} failed to load (see console)")),
        ("VMRUN", [_, _]) => {
            out.first_test.get_or_insert(started.elapsed());
        }
        ("VMRESULT", [k, st, ms, bin, name]) => {
            let k: usize = k.parse().unwrap_or(0);
            let ms: u64 = ms.parse().unwrap_or(0);
            let done = boot.progress.finish_one();
            if !boot.verbose {
                println!(
                    "xtask:   {}test {done}/{} {:<4} {name} ({:.2}s)",
                    boot.tag,
                    boot.progress.total,
                    st.to_uppercase(),
                    ms as f64 / 1000.0
                );
            }
            let (status, bin, name) = (st.to_string(), bin.to_string(), name.to_string());
            out.results.push(GuestResult { k, status, ms, bin, name });
        }
        ("VMCMD", [status]) => out.command_status = status.parse().ok(),
        ("VMDONE", _) => out.done = true,
        _ => out.problems.push(format!("unexpected result line: {line:?}")),
    }
}

/// Reads what was appended to a file since the last call.
struct Tail {
    file: std::fs::File,
    pos: u64,
    all: String,
    pending: String,
}

impl Tail {
    fn open(path: &Path) -> Result<Tail> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Tail { file, pos: 0, all: String::new(), pending: String::new() })
    }

    fn read_new(&mut self) -> Result<String> {
        self.file.seek(SeekFrom::Start(self.pos))?;
        let mut buf = Vec::new();
        self.file.read_to_end(&mut buf)?;
        self.pos += buf.len() as u64;
        let text = String::from_utf8_lossy(&buf).replace('\r', "");
        self.all.push_str(&text);
        self.pending.push_str(&text);
        Ok(text)
    }

    /// Complete lines received so far.
    fn take_lines(&mut self) -> Vec<String> {
        let Some(end) = self.pending.rfind('\n') else { return Vec::new() };
        let done: String = self.pending.drain(..=end).collect();
        done.lines().map(str::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oops_that_does_not_panic_is_fatal_too() {
        let oops = "[    2.066553] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n[    2.067242] RIP: 0010:sched_clock_cpu+0x9/0x190\n";
        assert_eq!(fatal_sign(oops), Some("Oops: "));
        assert_eq!(fatal_sign("[ 9.1] BUG: kernel NULL pointer dereference, address: 0\n"), Some("BUG: "));
        assert_eq!(fatal_sign("[ 1.0] Run /init as init process\n===VMOUT 1 t===\nok\n"), None);
    }
}
