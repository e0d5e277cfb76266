//! What goes into the guest: the tests to run (listed from each test binary) and the
//! initramfs that carries them, with busybox, `vethlab`, our `/init`, the host tools the
//! conformance tests drive, each package's data files and the kernel modules in load order.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::kernel::Kernel;
use super::{INJECTED_BIN, initramfs, modules};
use crate::artifacts::TestBinary;

/// Host programs copied into the guest (with their libraries) when present.
const HOST_TOOLS: &[&str] = &[
    "/usr/sbin/ip",
    "/usr/sbin/nft",
    "/usr/sbin/bridge",
    "/usr/lib/cni/bridge",
    "/usr/lib/cni/host-local",
    "/usr/lib/cni/loopback",
    "/usr/lib/cni/portmap",
    "/usr/lib/cni/firewall",
    "/usr/lib/podman/netavark",
];

/// A test to run in the guest.
#[derive(Debug, Clone)]
pub(super) struct GuestTest {
    /// `/tests/<name>` inside the guest.
    pub(super) guest_bin: String,
    pub(super) host_bin: PathBuf,
    /// The package directory: the test's cwd, as under `cargo test` (same path in the guest).
    pub(super) dir: PathBuf,
    pub(super) area: String,
    pub(super) name: String,
    pub(super) ignored: bool,
}

/// `<bin> --list --format terse` (and `--ignored`) for each binary.
pub(super) fn list_tests(binaries: &[TestBinary]) -> Result<Vec<GuestTest>> {
    let mut tests = Vec::new();
    for b in binaries {
        let list = |extra: &[&str]| -> Result<Vec<String>> {
            let out = Command::new(&b.path)
                .args(["--list", "--format", "terse"])
                .args(extra)
                .current_dir(&b.dir)
                .output()
                .with_context(|| format!("listing the tests of {}", b.path.display()))?;
            if !out.status.success() {
                bail!("{} --list failed: {}", b.path.display(), String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_suffix(": test"))
                .map(str::to_string)
                .collect())
        };
        let ignored = list(&["--ignored"])?;
        let guest_bin = format!("/tests/{}", b.area.replace(['/', ' ', '(', ')'], "_").trim_matches('_'));
        for name in list(&[])? {
            let ignored = ignored.contains(&name);
            tests.push(GuestTest {
                guest_bin: guest_bin.clone(),
                host_bin: b.path.clone(),
                dir: b.dir.clone(),
                area: b.area.clone(),
                name,
                ignored,
            });
        }
    }
    Ok(tests)
}

/// Our binaries that go into every guest.
#[derive(Debug, Clone, Copy)]
pub(super) struct GuestBinaries<'a> {
    pub(super) init: &'a Path,
    pub(super) vethlab: &'a Path,
}

/// Writes the guest's initramfs to `out`; returns a one-line summary (modules, size). `shards`
/// holds indices into `tests`: one list per VM (see `shard`). `command` is what `--run` runs.
pub(super) fn build_initramfs(
    k: &Kernel,
    tests: &[GuestTest],
    shards: &[Vec<usize>],
    bins: GuestBinaries,
    command: Option<&[String]>,
    out: &Path,
) -> Result<String> {
    let mut cpio = initramfs::Cpio::default();
    for d in
        ["/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/etc/vethlab", "/usr/bin", "/usr/sbin", "/sbin"]
    {
        cpio.dir(d);
    }
    pack_userland(&mut cpio)?;
    let scratch = out.with_extension("stripped");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    cpio.stripped_binary(bins.init, "/init", &scratch)?;
    cpio.stripped_binary(bins.vethlab, "/bin/vethlab", &scratch)?;
    pack_tests(&mut cpio, tests, shards, &scratch)?;
    if let Some(argv) = command {
        // NUL-separated: arguments keep their spaces and quotes, nothing is parsed by a shell.
        let words: Vec<u8> = argv.iter().flat_map(|w| w.bytes().chain([0])).collect();
        cpio.file("/etc/vethlab/command", 0o644, &words);
    }
    let summary = pack_modules(&mut cpio, k)?;
    let data = cpio.finish();
    std::fs::write(out, &data).with_context(|| format!("writing {}", out.display()))?;
    Ok(format!("{summary}; initramfs {} MiB", data.len() / (1 << 20)))
}

/// Busybox with its applets, and the host's real tools when present.
fn pack_userland(cpio: &mut initramfs::Cpio) -> Result<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(Path::new).find(|p| p.is_file());
    let busybox = busybox.context("busybox not found (ci/install.sh installs busybox-static)")?;
    cpio.binary(busybox, "/bin/busybox")?;
    let list = Command::new(busybox).arg("--list").output().context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        cpio.symlink(&format!("/bin/{applet}"), "busybox");
    }
    // The real tools too, when the host has them: closer to what runtimes meet than busybox's,
    // and what the conformance tests drive (Debian's CNI plugins, netavark, iptables-nft).
    for tool in HOST_TOOLS {
        if Path::new(tool).exists() {
            cpio.binary(&Path::new(tool).canonicalize()?, tool)?;
        }
    }
    let xtables = Path::new("/usr/sbin/xtables-nft-multi");
    if xtables.is_file() {
        cpio.binary(xtables, "/usr/sbin/xtables-nft-multi")?;
        for name in [
            "iptables",
            "ip6tables",
            "iptables-save",
            "ip6tables-save",
            "iptables-restore",
            "ip6tables-restore",
        ] {
            cpio.symlink(&format!("/usr/sbin/{name}"), "xtables-nft-multi");
        }
        // Its extensions (even `-j ACCEPT` is libxt_standard.so) are dlopen()ed: ldd cannot see them.
        for dir in ["/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib64/xtables", "/usr/lib/xtables"] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "so") {
                    cpio.binary(&path, &path.to_string_lossy())?;
                }
            }
        }
    }
    cpio.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    cpio.file("/etc/group", 0o644, b"root:x:0:\n");
    Ok(())
}

/// The test binaries (stripped), their packages' data files, each VM's list of tests to run
/// (`/etc/vethlab/tests.<shard>`), their env, and the always-failing test the self-test injects.
fn pack_tests(
    cpio: &mut initramfs::Cpio,
    tests: &[GuestTest],
    shards: &[Vec<usize>],
    scratch: &Path,
) -> Result<()> {
    cpio.file(
        INJECTED_BIN,
        0o755,
        b"#!/bin/sh\necho 'injected failure (VETHLAB_VM_INJECT_FAILURE / --inject-failure)'\nexit 1\n",
    );
    let mut packed = std::collections::BTreeSet::new();
    let mut dirs = std::collections::BTreeSet::new();
    for t in tests.iter().filter(|t| !t.ignored) {
        if packed.insert(t.guest_bin.clone()) {
            cpio.stripped_binary(&t.host_bin, &t.guest_bin, scratch)?;
        }
        if dirs.insert(t.dir.clone()) {
            package_data(cpio, &t.dir)?;
        }
    }
    for (shard, indices) in shards.iter().enumerate() {
        let list: String = indices
            .iter()
            .map(|&i| &tests[i])
            .map(|t| format!("{} {} {}\n", t.guest_bin, t.dir.display(), t.name))
            .collect();
        cpio.file(&format!("/etc/vethlab/tests.{shard}"), 0o644, list.as_bytes());
    }
    // insta would run `cargo metadata` to find the workspace; there is no cargo in the guest.
    let env = format!("INSTA_WORKSPACE_ROOT={}\n", crate::project::project_root().display());
    cpio.file("/etc/vethlab/env", 0o644, env.as_bytes());
    Ok(())
}

/// The kernel's modules the scenarios need, and their load order for `/init`; returns a summary.
fn pack_modules(cpio: &mut initramfs::Cpio, k: &Kernel) -> Result<String> {
    let Some(dir) = &k.modules else {
        cpio.file("/etc/vethlab/modules", 0o644, b"");
        return Ok("none (no module tree for this kernel: everything must be built in)".into());
    };
    let resolved = modules::resolve(dir)?;
    let mut order = String::new();
    for m in &resolved.modules {
        cpio.file(&format!("/lib/modules/{}.ko", m.name), 0o644, &m.data);
        order += &format!("{}\n", m.name);
    }
    cpio.file("/etc/vethlab/modules", 0o644, order.as_bytes());
    let names: Vec<&str> = resolved.modules.iter().map(|m| m.name.as_str()).collect();
    let mut s = format!("load order {}", names.join(" "));
    if !resolved.builtin.is_empty() {
        s += &format!("; built in: {}", resolved.builtin.join(" "));
    }
    if !resolved.missing.is_empty() {
        s += &format!("; NOT FOUND: {}", resolved.missing.join(" "));
    }
    Ok(s)
}

/// The files tests read at run time from their package directory (insta snapshots, fixtures),
/// at the same absolute paths: everything but Rust sources, build output and large files.
fn package_data(cpio: &mut initramfs::Cpio, dir: &Path) -> Result<()> {
    cpio.dir(&dir.to_string_lossy());
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if !["target", ".git", "src", "benches"].contains(&name.to_string_lossy().as_ref()) {
                package_data(cpio, &path)?;
            }
        } else if ty.is_file()
            && path.extension().is_none_or(|e| e != "rs")
            && entry.metadata()?.len() <= 1 << 20
        {
            let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            cpio.file(&path.to_string_lossy(), 0o644, &data);
        }
    }
    Ok(())
}
