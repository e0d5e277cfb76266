//! A throwaway namespace for one test process: new net + mount namespaces, private mount
//! propagation, a private tmpfs on `/run/netns` (so `ip netns` names cannot collide with the
//! machine's), sysfs remounted for the new namespace, and `lo` up.
//!
//! As root the namespaces are simply unshared. As a normal user a user namespace is unshared
//! first, mapping our uid/gid to root inside it. All of it happens in the child between fork and
//! exec, with raw syscalls on strings prepared before the fork (nothing allocates there).

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

/// How test processes get their namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// We are root: unshare net + mount directly.
    Root,
    /// A user namespace maps us to root first.
    UserNs,
    /// No namespaces available: run only what needs no privileges; the reason says what is missing.
    Unavailable(String),
}

/// Everything the child needs, prepared before `fork` so the child does not allocate.
#[derive(Debug, Clone)]
struct Plan {
    userns: bool,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// Where the private tmpfs goes: `/run/netns`, or `/run` if `/run/netns` does not exist and
    /// cannot be created by us (then `/run/netns` is created inside the new tmpfs).
    tmpfs_at: CString,
    mkdir_after: Option<CString>,
}

impl Plan {
    fn new(userns: bool) -> Plan {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let netns = Path::new("/run/netns");
        if !userns && !netns.is_dir() {
            // As root, create the mount point on the host like `ip netns add` would; it stays empty.
            let _ = std::fs::create_dir_all(netns);
        }
        let (tmpfs_at, mkdir_after) = if netns.is_dir() {
            (c"/run/netns".to_owned(), None)
        } else {
            (c"/run".to_owned(), Some(c"/run/netns".to_owned()))
        };
        Plan {
            userns,
            uid_map: format!("0 {uid} 1").into_bytes(),
            gid_map: format!("0 {gid} 1").into_bytes(),
            tmpfs_at,
            mkdir_after,
        }
    }

    /// Runs in the forked child. Only async-signal-safe calls on prepared data.
    fn enter(&self) -> io::Result<()> {
        if self.userns {
            cvt(unsafe { libc::unshare(libc::CLONE_NEWUSER) })?;
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/uid_map", &self.uid_map)?;
            write_file(c"/proc/self/gid_map", &self.gid_map)?;
        }
        cvt(unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) })?;
        // SAFETY: all pointers are to NUL-terminated strings that outlive the calls.
        unsafe {
            cvt(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            cvt(libc::mount(
                c"tmpfs".as_ptr(),
                self.tmpfs_at.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755".as_ptr().cast(),
            ))?;
            if let Some(dir) = &self.mkdir_after {
                cvt(libc::mkdir(dir.as_ptr(), 0o755))?;
            }
            // sysfs shows the namespace of whoever mounted it: remount it so /sys/class/net is
            // ours. Not fatal: some kernels refuse it in a user namespace.
            let _ = libc::mount(
                c"sysfs".as_ptr(),
                c"/sys".as_ptr(),
                c"sysfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            );
        }
        lo_up()
    }
}

fn cvt(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: path is NUL-terminated; data is a valid buffer; fd is closed on every path.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// `ip link set lo up`, with the two ioctls that need no netlink.
fn lo_up() -> io::Result<()> {
    // SAFETY: ifreq is plain data; the socket is closed on every path.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Makes `cmd` start inside a fresh sandbox (for `Mode::Root` / `Mode::UserNs`).
pub fn wrap(cmd: &mut Command, mode: &Mode) {
    let plan = match mode {
        Mode::Root => Plan::new(false),
        Mode::UserNs => Plan::new(true),
        Mode::Unavailable(_) => return,
    };
    // SAFETY: `enter` only makes async-signal-safe syscalls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || plan.enter());
    }
}

/// Finds out which mode works here by starting `true` in a sandbox.
pub fn detect() -> Result<Mode> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mode = if root { Mode::Root } else { Mode::UserNs };
    let mut probe = Command::new("true");
    wrap(&mut probe, &mode);
    match probe.status() {
        Ok(s) if s.success() => Ok(mode),
        Ok(s) => Ok(Mode::Unavailable(format!("a sandboxed `true` exited with {s}"))),
        Err(e) if root => {
            Ok(Mode::Unavailable(format!("unsharing net+mount namespaces as root failed: {e}")))
        }
        Err(e) => Ok(Mode::Unavailable(explain_userns(&e))),
    }
}

/// Says exactly which knob forbids unprivileged user namespaces.
fn explain_userns(err: &io::Error) -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let mut why = vec![format!("creating a user namespace failed: {err}")];
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        why.push(
            "kernel.unprivileged_userns_clone=0 (enable: sudo sysctl kernel.unprivileged_userns_clone=1)"
                .into(),
        );
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        why.push(
            "AppArmor's kernel.apparmor_restrict_unprivileged_userns=1 (allow: sudo sysctl \
             kernel.apparmor_restrict_unprivileged_userns=0)"
                .into(),
        );
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        why.push("user.max_user_namespaces=0 (raise it: sudo sysctl user.max_user_namespaces=15000)".into());
    }
    if why.len() == 1 {
        why.push("or run as root: sudo -E cargo xtask test".into());
    }
    why.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxed_process_has_its_own_network_namespace_with_lo_up() {
        let mode = detect().expect("probing namespaces");
        if let Mode::Unavailable(why) = mode {
            eprintln!("no namespaces here ({why}); nothing to check");
            return;
        }
        let ours = std::fs::read_link("/proc/self/ns/net").expect("our netns");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "readlink /proc/self/ns/net; cat /sys/class/net/lo/flags; ls /sys/class/net; ls -A /run/netns",
        ]);
        wrap(&mut cmd, &mode);
        let out = cmd.output().expect("running sh in a sandbox");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_ne!(Path::new(lines[0]), ours, "same network namespace: {text}");
        let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).expect("lo flags");
        assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32, "lo is down: {text}");
        assert_eq!(lines[2..], ["lo"], "only lo, and /run/netns empty: {text}");
    }
}
