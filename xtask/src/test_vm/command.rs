//! `cargo xtask test-vm --run [-- CMD ARGS…]`: one command, or an interactive shell, in the guest
//! the tests get (the kernel and its modules, busybox, `vethlab`, `ip`, `nft`, iptables-nft, the
//! CNI plugins, netavark), to reproduce a failure by hand or try a runtime on another kernel. The
//! console is this terminal (and still logged, so a panic is still caught); the command's exit
//! status becomes ours.

use anyhow::{Context, Result, bail};

use super::guest::{GuestBinaries, build_initramfs};
use super::qemu::Progress;
use super::{Args, Vm, boot, bootable_image, choose_accel, kernels};
use crate::artifacts::{self, Profile};
use crate::project::target_dir;

/// Boots one kernel with the command; returns its exit status in the guest.
pub(super) fn run(args: &Args) -> Result<i32> {
    // Refused before any kernel is fetched or built.
    if args.kernel_version.len() + args.minimal_kernel.len() > 1 {
        bail!("--run boots one kernel: give at most one --kernel, --kernel-version or --minimal-kernel");
    }
    let target = target_dir()?;
    let work = target.join("vm");
    let kernels = kernels(args, &target)?;
    let [kernel] = kernels.as_slice() else { bail!("--run boots one kernel, not {}", kernels.len()) };
    let vethlab = artifacts::build_vethlab(&target, Profile::VmGuest)?;
    let init = artifacts::build_vm_init(&target)?;
    let image = bootable_image(kernel, &work);
    let accel = choose_accel(args, &image, &work)?;
    let dir = work.join("runs").join(&kernel.label).join("run");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = super::pool::lock_run_dir(&dir)?;
    let initrd = dir.join("initramfs.cpio");
    let bins = GuestBinaries { init: &init, vethlab: &vethlab };
    build_initramfs(kernel, &[], &[Vec::new()], bins, Some(&args.command), &initrd)?;
    if args.command.is_empty() {
        println!(
            "xtask: an interactive shell in the guest: `exit` ends it (and the VM); Ctrl-A X stops QEMU"
        );
    }
    let progress = Progress::new(0);
    let vm = Vm {
        image: &image,
        initrd: &initrd,
        dir: &dir,
        shard: 0,
        tag: "",
        progress: &progress,
        max_tests: None,
        run_command: true,
    };
    let out = boot(&vm, accel, args)?;
    if !out.problems.is_empty() {
        bail!("the VM failed: {} (console: {})", out.problems.join("; "), out.console.display());
    }
    out.command_status.with_context(|| {
        format!("the guest never reported the command's exit status (console: {})", out.console.display())
    })
}
