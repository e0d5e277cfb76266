//! `cargo xtask test-vm`: the scenario suite inside throwaway QEMU VMs, one per kernel.
//!
//! Per kernel: extract (once, cached) the `vmlinux` to boot it directly, resolve the modules the
//! scenarios need, write an initramfs holding busybox, the test binaries, `vethlab`, their shared
//! libraries, the modules and our `/init` (the `vm-init` binary of this package, whose docs give
//! the result protocol); boot it under KVM when a probe shows KVM works, else TCG, as several
//! VMs that split its tests between them ([`shard`], [`pool`]); collect one result line per test
//! from each guest's second serial port. Submodules: [`kernel`], [`minimal`], [`modules`],
//! [`initramfs`], [`guest`], [`shard`], [`pool`], [`qemu`], [`report`], [`bench`].
//!
//! What a test meets in the guest (the contract with the harness):
//! - it runs alone, as root, as `<binary> --exact <name> --test-threads=1`, in its package
//!   directory (the same absolute path as on the host; the package's non-Rust files, such as
//!   insta snapshots, are there), with a per-test timeout (`--test-timeout`);
//! - env: `CI=1` (a privileged test must not skip), `VETHLAB_BIN=/bin/vethlab`,
//!   `VETHLAB_IN_VM=1`, `RUST_BACKTRACE=1`, `INSTA_WORKSPACE_ROOT` (there is no cargo);
//! - `/run/netns` and `/tmp` live on the RAM-backed rootfs (a tmpfs over them would hide a checkout
//!   under `/tmp`), `lo` is up; the tests of one VM share it, in catalogue order, so leaving
//!   residue affects the tests that follow (which tests share a VM depends on `--jobs` and on
//!   the last run's durations);
//! - tools: busybox applets, and from the host when present iproute2's `ip`/`bridge`, `nft`,
//!   iptables-nft with its extensions, Debian's CNI plugins in `/usr/lib/cni`, netavark.

mod bench;
mod command;
mod guest;
mod initramfs;
mod junit;
mod kernel;
mod minimal;
mod modules;
mod pool;
mod qemu;
mod report;
mod shard;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::artifacts::{self, Profile, TestBinary};
use crate::project::target_dir;
use guest::{GuestBinaries, GuestTest, build_initramfs, list_tests};
use kernel::Kernel;
use qemu::Accel;
use report::{Row, print_table};

/// The test the self-test injects into the guest's list (see `VETHLAB_VM_INJECT_FAILURE`).
const INJECTED: &str = "injected::always_fails";
const INJECTED_BIN: &str = "/bin/vethlab-injected-failure";

/// Kernel arguments that skip what a throwaway test VM does not need (each measured under TCG
/// with `--boots`): CPU vulnerability mitigations; write-protecting the kernel's own memory
/// (`rodata=off`: about 0.2 s of page-table work); and the self-tests and key loading that
/// Debian's kernel runs at boot, about 1.5 s together under TCG: the SP800-108 KDF self-test,
/// the jitter entropy collector's start-up, parsing the built-in X.509 certificates (modules are
/// unsigned here anyway, see `modules`), a BPF type registration and the crypto self-tests.
/// Unknown initcall names are ignored, so the list is safe on every kernel.
///
/// `rcupdate.rcu_expedited=1` makes RCU grace periods expedited: network-namespace setup and
/// teardown wait for many of them (IPv6's init alone took 0.36 s), and under TCG a normal grace
/// period is long. Measured on Debian 6.12 with one vCPU: the whole suite 119 s → 109 s.
const BOOT_SPEEDUPS: &str = "mitigations=off random.trust_cpu=on rodata=off cryptomgr.notests \
    rcupdate.rcu_expedited=1 \
    initcall_blacklist=crypto_kdf108_init,jent_mod_init,load_system_certificate_list,bpf_tcp_ca_kfunc_init";

/// With a single vCPU the guest needs no ACPI (its CPU, ISA serial ports and isa-debug-exit are
/// all found without it), and Debian's ACPI initialisation is 0.16 s of interpreted AML under TCG.
/// With more vCPUs ACPI's tables are how the kernel finds them, so it stays.
const UNIPROCESSOR_SPEEDUPS: &str = "acpi=off";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A kernel image (bzImage or vmlinux) to boot instead of a Debian kernel.
    #[arg(long, conflicts_with = "kernel_version")]
    kernel: Option<PathBuf>,
    /// The kernel's modules directory (`lib/modules/<version>`), with --kernel.
    #[arg(long, requires = "kernel")]
    modules: Option<PathBuf>,
    /// A Debian kernel: a series (`6.12`, `6.1`: the newest available) or an exact version
    /// (`6.12.118+deb12`, `6.1.0-57`). Repeat for a matrix.
    #[arg(long = "kernel-version", value_name = "V")]
    kernel_version: Vec<String>,
    /// vethlab's minimal kernel (`minimal.config`) built from Debian's `linux-source-SERIES`
    /// (`6.12`, `6.1`) and cached: boots about twice as fast under TCG. Repeatable; joins the
    /// matrix with any --kernel-version.
    #[arg(long = "minimal-kernel", value_name = "SERIES", conflicts_with = "kernel")]
    minimal_kernel: Vec<String>,
    /// Packages whose test binaries run in the guest (default: vethlab-harness, and
    /// vethlab-verify's integration tests).
    #[arg(long = "package", short = 'p')]
    packages: Vec<String>,
    /// Also run the whole-catalogue conformance tests (every scenario through the CLI, CNI
    /// plugins and netavark): minutes each under TCG, so left to the namespace backend unless asked.
    #[arg(long)]
    conformance: bool,
    /// Stream the guest console.
    #[arg(long)]
    verbose: bool,
    /// Per-test timeout inside the guest, in seconds (generous: under TCG a whole-catalogue
    /// conformance test takes minutes). The host also fails a guest that reports nothing for
    /// this long plus a minute.
    #[arg(long, default_value_t = 900)]
    test_timeout: u64,
    /// Overall timeout per VM, in seconds (default: 2 hours).
    #[arg(long)]
    timeout: Option<u64>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// vCPUs (default: 2 under KVM, 1 under TCG, where SMP guests hit a code-patching race;
    /// see `Accel::default_smp`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    smp: Option<u32>,
    /// Accelerator: auto (KVM if the probe shows it works, else TCG), kvm or tcg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
    accel: String,
    /// Extra kernel command-line arguments.
    #[arg(long, value_name = "ARGS")]
    append: Option<String>,
    /// Boot-time benchmark: boot each kernel this many times with the whole suite packed but
    /// only its first test run, and print min/median/max of the boot figures.
    #[arg(long, default_value_t = 0, value_name = "N")]
    boots: usize,
    /// VMs at a time: a kernel's tests are split across them by the durations of its last run,
    /// and the kernels of a matrix run side by side (default: the host's cores divided by the
    /// guest's vCPUs; always 1 with --boots or --verbose).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: Option<u32>,
    /// Instead of the tests, run the command given after `--` in the guest (the same guest the
    /// tests get), on this terminal; its exit status is ours. Without a command: an interactive
    /// shell (leave it with `exit`; Ctrl-A X stops QEMU).
    #[arg(long, conflicts_with_all = ["filters", "junit", "boots", "jobs", "inject_failure", "conformance"])]
    run: bool,
    /// Also write the results as JUnit XML here (a suite per kernel, a failing `vm` case for a
    /// broken VM).
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Add a test that always fails (also: env VETHLAB_VM_INJECT_FAILURE=1).
    #[arg(long)]
    inject_failure: bool,
    /// Only tests whose name contains one of these.
    filters: Vec<String>,
    /// With --run: the command and its arguments.
    #[arg(last = true, value_name = "CMD", requires = "run")]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    vm: Args,
}

pub fn run(mut args: Args) -> Result<()> {
    if args.run {
        let status = command::run(&args)?;
        if status != 0 {
            println!("xtask: the command exited with status {status} in the guest");
            std::process::exit(status);
        }
        return Ok(());
    }
    if std::env::var("VETHLAB_VM_INJECT_FAILURE").is_ok_and(|v| !v.is_empty() && v != "0") {
        args.inject_failure = true;
    }
    let rows = run_rows(&args, None)?;
    if let Some(path) = &args.junit {
        junit::write(&rows, path)?;
    }
    let failures: Vec<String> =
        rows.iter().flat_map(|r| r.failed().into_iter().map(move |f| format!("{}: {f}", r.kernel))).collect();
    let broken: Vec<&Row> = rows.iter().filter(|r| !r.problems.is_empty()).collect();
    if !failures.is_empty() || !broken.is_empty() {
        let mut msg = String::new();
        if !failures.is_empty() {
            msg += &format!("failed tests: {}", failures.join(", "));
        }
        for r in broken {
            msg +=
                &format!("{}{}: {}", if msg.is_empty() { "" } else { "; " }, r.kernel, r.problems.join("; "));
        }
        bail!("test-vm failed: {msg}");
    }
    Ok(())
}

/// Proves the runner can fail: an injected failing test next to the first two real tests must
/// fail the run, naming the injected test, while the real tests still pass; and a guest whose
/// kernel panics before any test must fail the run although QEMU exits cleanly.
pub fn selftest(args: SelftestArgs) -> Result<()> {
    let mut vm = args.vm;
    let mut no_init = vm.clone();
    vm.inject_failure = true;
    // Two real tests: with more than one VM they land on different VMs, so the run shows that
    // a failure in one VM fails the whole run while the other VM passes.
    let rows = run_rows(&vm, vm.filters.is_empty().then_some(2))?;
    for row in &rows {
        let failed = row.failed();
        if !failed.iter().any(|f| f.contains(INJECTED)) {
            bail!(
                "self-test failed: on {} the injected test {INJECTED} was not reported as failed",
                row.kernel
            );
        }
        if failed.len() != 1 || !row.problems.is_empty() {
            bail!(
                "self-test failed: on {} more than the injected test failed: {:?} {:?}",
                row.kernel,
                failed,
                row.problems
            );
        }
    }
    println!("xtask: self-test: test-vm reports the injected failure ({INJECTED}) and exits non-zero");

    // A guest that never runs a test: the kernel finds no init and panics, and with `panic=-1`
    // and `-no-reboot` QEMU then exits with status 0, which must not pass.
    println!("xtask: self-test: a guest whose kernel panics (no /init)");
    no_init.append = Some(format!("{} rdinit=/vethlab-no-such-init", no_init.append.unwrap_or_default()));
    no_init.inject_failure = false;
    for row in run_rows(&no_init, Some(1))? {
        let panicked = row.problems.iter().any(|p| p.contains("Kernel panic"));
        if row.passed() != 0 || !panicked || !row.problems.iter().any(|p| p.contains("no done marker")) {
            bail!(
                "self-test failed: on {} a guest without /init was not reported as a kernel panic with \
                 no done marker: passed {}, problems {:?}",
                row.kernel,
                row.passed(),
                row.problems
            );
        }
    }
    println!("xtask: self-test passed: an injected failing test and a kernel panic both fail test-vm");
    Ok(())
}

/// Runs every kernel; `real_tests` keeps only the first runnable tests (for the self-test).
fn run_rows(args: &Args, real_tests: Option<usize>) -> Result<Vec<Row>> {
    let started = Instant::now();
    let target = target_dir()?;
    let work = target.join("vm");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    println!("xtask: building test binaries");
    let packages = if args.packages.is_empty() {
        vec!["vethlab-harness".into(), "vethlab-verify".into()]
    } else {
        args.packages.clone()
    };
    let binaries: Vec<TestBinary> = artifacts::build_tests(&packages, Profile::VmGuest)?
        .into_iter()
        .filter(|b| !args.packages.is_empty() || b.package == "vethlab-harness" || b.kind == "test")
        .filter(|b| args.conformance || !b.area.ends_with("tests/conformance"))
        .collect();
    let vethlab = artifacts::build_vethlab(&target, Profile::VmGuest)?;
    let init = artifacts::build_vm_init(&target)?;
    let bins = GuestBinaries { init: &init, vethlab: &vethlab };
    let mut tests = list_tests(&binaries)?;
    if !args.filters.is_empty() {
        tests.retain(|t| args.filters.iter().any(|f| t.name.contains(f.as_str())));
    }
    if let Some(n) = real_tests {
        tests.retain(|t| !t.ignored);
        tests.truncate(n);
    }
    let runnable = tests.iter().filter(|t| !t.ignored).count();
    println!("xtask: {runnable} test(s) from {} binaries", binaries.len());

    let kernels = kernels(args, &target)?;
    let images: Vec<PathBuf> = kernels.iter().map(|k| bootable_image(k, &work)).collect();
    let accel = choose_accel(args, &images[0], &work)?;
    let jobs = jobs(args, accel);

    let mut prepared = Vec::new();
    for (kernel, image) in kernels.into_iter().zip(images) {
        println!("xtask: kernel {}: building initramfs", kernel.label);
        let dir = work.join("runs").join(&kernel.label);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = pool::lock_run_dir(&dir)?;
        let history = shard::History::load(&dir);
        let shards = split(&tests, &history, jobs);
        let initrd = dir.join("initramfs.cpio");
        let loaded = build_initramfs(&kernel, &tests, &shards, bins, None, &initrd)?;
        println!("xtask:   modules: {loaded}");
        prepared.push(pool::Prepared { kernel, image, dir, initrd, shards, history, _lock: lock });
    }
    let rows = if args.boots > 0 {
        prepared.iter().map(|p| bench::boot_times(p, accel, args)).collect::<Result<Vec<_>>>()?
    } else {
        pool::run_all(&mut prepared, &tests, accel, jobs, args)?
    };
    print_table(&rows);
    println!("xtask: total wall time {:.1}s", started.elapsed().as_secs_f64());
    Ok(rows)
}

/// The kernels asked for: `--kernel`, else the `--kernel-version` and `--minimal-kernel` matrix,
/// else the default one.
fn kernels(args: &Args, target: &Path) -> Result<Vec<Kernel>> {
    if let Some(path) = &args.kernel {
        return Ok(vec![kernel::from_path(path, args.modules.as_deref())?]);
    }
    if args.kernel_version.is_empty() && args.minimal_kernel.is_empty() {
        return Ok(vec![kernel::default_kernel(target)?]);
    }
    let debian = args.kernel_version.iter().map(|v| kernel::debian(v, target));
    let minimal = args.minimal_kernel.iter().map(|s| minimal::kernel(s, target));
    debian.chain(minimal).collect()
}

/// The kernel's uncompressed `vmlinux` (cut out once and cached), else its image as given.
fn bootable_image(k: &Kernel, work: &Path) -> PathBuf {
    println!("xtask: kernel {} ({})", k.label, k.source);
    match kernel::vmlinux(k, &work.join("vmlinux")) {
        Ok(v) => v,
        Err(e) => {
            println!("xtask:   cannot extract vmlinux ({e:#}); booting the bzImage (slower)");
            k.image.clone()
        }
    }
}

/// `--accel`, or for `auto` KVM when a short probe boots under it, else TCG; says which.
fn choose_accel(args: &Args, image: &Path, work: &Path) -> Result<Accel> {
    match args.accel.as_str() {
        "kvm" => return Ok(Accel::Kvm),
        "tcg" => return Ok(Accel::Tcg),
        _ => {}
    }
    let a = if qemu::kvm_works(image, work)? { Accel::Kvm } else { Accel::Tcg };
    let why = match a {
        Accel::Tcg => " (the KVM probe failed or /dev/kvm is unusable)",
        Accel::Kvm => " (probe passed)",
    };
    println!("xtask: accelerator: {}{why}", a.name());
    Ok(a)
}

/// VMs at a time: `--jobs`, else as many as the host's cores hold guests of `vcpus` each. One
/// for `--boots` and `--verbose`: boot figures must not share the host, and consoles must not
/// interleave.
fn jobs(args: &Args, accel: Accel) -> usize {
    if args.boots > 0 || args.verbose {
        return 1;
    }
    if let Some(j) = args.jobs {
        return j as usize;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / vcpus(args, accel) as usize).max(1)
}

/// The runnable tests split into at most `vms` lists by the durations of the last run.
fn split(tests: &[GuestTest], history: &shard::History, vms: usize) -> Vec<Vec<usize>> {
    let runnable: Vec<usize> = (0..tests.len()).filter(|&i| !tests[i].ignored).collect();
    let weights =
        history.weights(runnable.iter().map(|&i| (tests[i].guest_bin.as_str(), tests[i].name.as_str())));
    shard::assign(&weights, vms).into_iter().map(|l| l.into_iter().map(|i| runnable[i]).collect()).collect()
}

/// The guest's vCPUs: `--smp`, else the accelerator's default.
fn vcpus(args: &Args, accel: Accel) -> u32 {
    args.smp.unwrap_or(accel.default_smp())
}

/// One VM to boot.
#[derive(Debug)]
struct Vm<'a> {
    image: &'a Path,
    initrd: &'a Path,
    /// Its own directory: console, results, QEMU's stderr.
    dir: &'a Path,
    /// Which test list of the initramfs it runs (`vethlab.shard=`).
    shard: usize,
    /// Prefix of its progress lines.
    tag: &'a str,
    progress: &'a qemu::Progress,
    /// Stop the guest after this many tests.
    max_tests: Option<usize>,
    /// `--run`: the guest runs the command instead of tests, on this terminal.
    run_command: bool,
}

/// The guest kernel's command line: console, our speed-ups, then what `/init` reads
/// (`vethlab.*`), then `--append`'s, last so that they win.
fn kernel_cmdline(args: &Args, smp: u32, nonce: &str, vm: &Vm) -> String {
    // `quiet` saves boot time under TCG (every console byte is emulated); --verbose wants it all.
    // The rest skips work a throwaway test VM does not need; see BOOT_SPEEDUPS.
    let mut cmdline = format!(
        "console=ttyS0 panic=-1 {}{BOOT_SPEEDUPS} rdinit=/init vethlab.nonce={nonce} vethlab.test_timeout={} \
         vethlab.shard={}",
        if args.verbose { "" } else { "quiet " },
        args.test_timeout,
        vm.shard
    );
    if smp == 1 {
        cmdline += &format!(" {UNIPROCESSOR_SPEEDUPS}");
    }
    if args.inject_failure {
        cmdline += " vethlab.inject_failure=1";
    }
    if let Some(n) = vm.max_tests {
        cmdline += &format!(" vethlab.max_tests={n}");
    }
    if vm.run_command {
        cmdline += " vethlab.run=1";
    }
    if let Some(extra) = &args.append {
        cmdline += &format!(" {extra}");
    }
    cmdline
}

/// One boot of a VM, watched until it ends (see `qemu::run`).
fn boot(vm: &Vm, accel: Accel, args: &Args) -> Result<qemu::Outcome> {
    let nonce = nonce()?;
    let smp = vcpus(args, accel);
    let cmdline = kernel_cmdline(args, smp, &nonce, vm);
    let timeout = Duration::from_secs(args.timeout.unwrap_or(2 * 3600));
    let boot = qemu::Boot {
        accel,
        kernel: vm.image,
        initramfs: vm.initrd,
        cmdline,
        memory_mib: args.memory,
        smp,
        dir: vm.dir,
        timeout,
        // A command or a shell may be quiet for as long as it likes; only the overall timeout holds.
        silence: if vm.run_command { timeout } else { Duration::from_secs(args.test_timeout + 60) },
        // With --run the console already is the terminal.
        verbose: args.verbose && !vm.run_command,
        nonce: &nonce,
        tag: vm.tag,
        progress: vm.progress,
        interactive: vm.run_command,
    };
    qemu::run(&boot)
}

fn nonce() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        vm: Args,
    }

    fn args(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("test-vm").chain(argv.iter().copied()))
            .map(|c| c.vm)
            .unwrap_or_else(|e| panic!("{argv:?} should parse: {e}"))
    }

    #[test]
    fn one_vcpu_under_tcg_two_under_kvm_unless_asked() {
        assert_eq!(vcpus(&args(&[]), Accel::Tcg), 1);
        assert_eq!(vcpus(&args(&[]), Accel::Kvm), 2);
        assert_eq!(vcpus(&args(&["--smp", "4"]), Accel::Tcg), 4);
        assert!(Cli::try_parse_from(["test-vm", "--smp", "0"]).is_err(), "--smp 0 must be refused");
    }

    #[test]
    fn filters_before_the_double_dash_a_command_after_it() {
        let a = args(&["--run", "--", "vethlab", "network", "ls", "--format", "json"]);
        assert!(a.run && a.filters.is_empty());
        assert_eq!(a.command, ["vethlab", "network", "ls", "--format", "json"]);
        assert!(args(&["--run"]).command.is_empty(), "no command: a shell");
        assert_eq!(args(&["seed", "two_networks"]).filters, ["seed", "two_networks"]);
        // What --run would silently ignore is refused instead, and a command needs --run.
        for argv in [
            &["--run", "seed", "--", "vethlab"][..],
            &["--run", "--junit", "j.xml"],
            &["--run", "--boots", "3"],
            &["--run", "--jobs", "2"],
            &["--run", "--inject-failure"],
            &["--", "vethlab", "demo"],
        ] {
            let argv: Vec<&str> = std::iter::once("test-vm").chain(argv.iter().copied()).collect();
            assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?} must be refused");
        }
    }

    #[test]
    fn one_vm_at_a_time_for_boot_figures_and_streamed_consoles() {
        assert_eq!(jobs(&args(&["--jobs", "3"]), Accel::Tcg), 3);
        assert_eq!(jobs(&args(&["--jobs", "3", "--verbose"]), Accel::Tcg), 1);
        assert_eq!(jobs(&args(&["--jobs", "3", "--boots", "5"]), Accel::Tcg), 1);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(jobs(&args(&[]), Accel::Tcg), cores);
        assert_eq!(jobs(&args(&["--smp", "64"]), Accel::Tcg), 1, "never zero");
        assert!(Cli::try_parse_from(["test-vm", "--jobs", "0"]).is_err(), "--jobs 0 must be refused");
    }

    #[test]
    fn acpi_is_off_only_on_one_vcpu_and_append_comes_last() {
        let a = args(&["--append", "acpi=on initcall_debug", "--inject-failure"]);
        let progress = qemu::Progress::new(1);
        let vm = |shard, max_tests| Vm {
            image: Path::new("vmlinux"),
            initrd: Path::new("initramfs.cpio"),
            dir: Path::new("."),
            shard,
            tag: "",
            progress: &progress,
            max_tests,
            run_command: shard == 1,
        };
        let one = kernel_cmdline(&a, 1, "n0nce", &vm(2, Some(1)));
        let words: Vec<&str> = one.split_whitespace().collect();
        let pos = |w: &str| words.iter().position(|x| *x == w).unwrap_or_else(|| panic!("{w} not in {one}"));
        assert!(pos("acpi=off") < pos("acpi=on"), "--append must override: {one}");
        for w in [
            "quiet",
            "rcupdate.rcu_expedited=1",
            "vethlab.nonce=n0nce",
            "vethlab.max_tests=1",
            "vethlab.shard=2",
        ] {
            pos(w);
        }
        assert_eq!(words.last(), Some(&"initcall_debug"));
        let two = kernel_cmdline(&args(&["--verbose"]), 2, "n", &vm(0, None));
        assert!(!two.contains("acpi=off") && !two.contains("quiet") && !two.contains("max_tests"), "{two}");
        assert!(
            !one.contains("vethlab.run=1")
                && kernel_cmdline(&a, 1, "n", &vm(1, None)).contains("vethlab.run=1")
        );
    }
}
