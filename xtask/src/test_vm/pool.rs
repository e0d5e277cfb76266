//! Running the VMs: every kernel's shards (see [`super::shard`]) go into one queue, and `--jobs`
//! workers boot them, so a kernel's tests are spread over several VMs and the kernels of a
//! matrix run side by side. Each VM has its own directory (`vm<shard>/`: console, results,
//! QEMU's stderr) under its kernel's run directory.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result};

use super::guest::GuestTest;
use super::kernel::Kernel;
use super::qemu::{Accel, Progress};
use super::report::{Row, VmRun, evaluate};
use super::shard::History;
use super::{Args, boot, vcpus};
use crate::project::display_rel;

/// One kernel made ready to boot.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) kernel: Kernel,
    /// The `vmlinux` cut out of the kernel image, else the image itself.
    pub(super) image: PathBuf,
    /// `target/vm/runs/<label>`.
    pub(super) dir: PathBuf,
    pub(super) initrd: PathBuf,
    /// Indices into the tests, one list per VM.
    pub(super) shards: Vec<Vec<usize>>,
    /// Durations of the kernel's earlier runs: how `shards` were split, updated by this run.
    pub(super) history: History,
    /// Held for the whole run: see [`lock_run_dir`].
    pub(super) _lock: std::fs::File,
}

/// Locks a kernel's run directory for this process: a second `test-vm` on the same target
/// directory would overwrite its initramfs and consoles mid-run. The lock goes with the process.
pub(super) fn lock_run_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(".lock");
    let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use by another `cargo xtask test-vm` (it holds {}): wait for it, or give this \
             one another CARGO_TARGET_DIR",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// One VM to boot: which kernel, which of its shards.
#[derive(Debug, Clone, Copy)]
struct Job {
    kernel: usize,
    shard: usize,
}

/// Boots every shard of every kernel, `jobs` VMs at a time; one row per kernel, in order.
pub(super) fn run_all(
    prepared: &mut [Prepared],
    tests: &[GuestTest],
    accel: Accel,
    jobs: usize,
    args: &Args,
) -> Result<Vec<Row>> {
    let queue: VecDeque<Job> = prepared
        .iter()
        .enumerate()
        .flat_map(|(kernel, p)| (0..p.shards.len()).map(move |shard| Job { kernel, shard }))
        .collect();
    let alone = queue.len() == 1;
    let workers = jobs.clamp(1, queue.len().max(1));
    let injected = usize::from(args.inject_failure);
    let progress: Vec<Progress> = prepared
        .iter()
        .map(|p| Progress::new(p.shards.iter().map(Vec::len).sum::<usize>() + injected))
        .collect();
    for p in prepared.iter() {
        let n = p.shards.len();
        let tests_count: usize = p.shards.iter().map(Vec::len).sum();
        println!(
            "xtask: booting {} under {} with {} vCPU(s): {tests_count} test(s) over {n} VM(s)",
            display_rel(&p.image),
            accel.name(),
            vcpus(args, accel),
        );
    }
    if workers > 1 {
        println!("xtask: {workers} VMs at a time (--jobs)");
    }

    let queue = Mutex::new(queue);
    let ready: &[Prepared] = prepared;
    let runs: Mutex<Vec<(Job, Result<VmRun>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let job = queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
                    let Some(job) = job else { break };
                    let p = &ready[job.kernel];
                    let tag = if alone {
                        String::new()
                    } else if ready.len() == 1 {
                        format!("[vm {}/{}] ", job.shard + 1, p.shards.len())
                    } else {
                        format!("[{} vm {}/{}] ", p.kernel.label, job.shard + 1, p.shards.len())
                    };
                    let run = run_one(p, job.shard, &tag, &progress[job.kernel], accel, args);
                    runs.lock().unwrap_or_else(PoisonError::into_inner).push((job, run));
                }
            });
        }
    });

    let mut runs = runs.into_inner().unwrap_or_else(PoisonError::into_inner);
    runs.sort_by_key(|(job, _)| (job.kernel, job.shard));
    let mut rows = Vec::new();
    let mut runs = runs.into_iter().peekable();
    for (i, p) in prepared.iter_mut().enumerate() {
        let mut vms = Vec::new();
        while let Some((_, run)) = runs.next_if(|(job, _)| job.kernel == i) {
            vms.push(run?);
        }
        let row = evaluate(&p.kernel, accel, tests, &p.shards, &vms, args);
        save_history(p, tests, &vms);
        rows.push(row);
    }
    Ok(rows)
}

/// Boots one shard of one kernel.
fn run_one(
    p: &Prepared,
    shard: usize,
    tag: &str,
    progress: &Progress,
    accel: Accel,
    args: &Args,
) -> Result<VmRun> {
    let dir = p.dir.join(format!("vm{shard}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    let vm = super::Vm {
        image: &p.image,
        initrd: &p.initrd,
        dir: &dir,
        shard,
        tag,
        progress,
        max_tests: None,
        run_command: false,
    };
    let outcome = boot(&vm, accel, args)?;
    Ok(VmRun { shard, outcome, started, ended: Instant::now() })
}

/// Keeps this run's durations for the next run's split; a failure to write only costs balance.
fn save_history(p: &mut Prepared, tests: &[GuestTest], vms: &[VmRun]) {
    let history = &mut p.history;
    let known = |bin: &str, name: &str| tests.iter().any(|t| t.guest_bin == bin && t.name == name);
    history.record(
        vms.iter()
            .flat_map(|vm| &vm.outcome.results)
            .filter(|r| known(&r.bin, &r.name))
            .map(|r| (r.bin.as_str(), r.name.as_str(), r.ms)),
    );
    if let Err(e) = history.save() {
        println!("xtask:   cannot save test durations to {}: {e}", history.path().display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_serves_one_run_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock_run_dir(dir.path()).expect("first lock");
        let err = lock_run_dir(dir.path()).expect_err("a second lock must be refused");
        assert!(format!("{err:#}").contains("in use by another `cargo xtask test-vm`"), "{err:#}");
        drop(held);
        lock_run_dir(dir.path()).expect("free again once released");
    }
}
