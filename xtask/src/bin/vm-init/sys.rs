//! The system calls PID 1 needs: the basic mounts, `finit_module(2)`, bringing `lo` up, the
//! boot clock, and leaving QEMU through isa-debug-exit.

use std::ffi::CString;
use std::io::{Error, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

/// isa-debug-exit's I/O port (QEMU `-device isa-debug-exit,iobase=0xf4`); QEMU exits with
/// `(byte << 1) | 1`.
const DEBUG_EXIT_PORT: u64 = 0xf4;
const EXIT_PASS: u8 = 0x10;
const EXIT_FAIL: u8 = 0x11;

fn cstr(s: &str) -> CString {
    // Only called with our own constant paths and names, which hold no NUL.
    CString::new(s).unwrap_or_default()
}

fn mount(source: &str, target: &str, fstype: &str, data: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    let (src, tgt, fs, data) = (cstr(source), cstr(target), cstr(fstype), cstr(data));
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, data.as_ptr().cast()) };
    if rc != 0 {
        let e = Error::last_os_error();
        return Err(Error::new(e.kind(), format!("mounting {fstype} on {target}: {e}")));
    }
    Ok(())
}

/// proc, sysfs, devtmpfs and `/dev/shm`, plus what udev would have made. `/run` and `/tmp` stay on
/// the RAM-backed rootfs: a tmpfs over them would hide the packages' files when the checkout
/// lives under `/tmp` or `/run` (the guest holds them at the host's absolute paths).
pub fn basic_mounts() -> std::io::Result<()> {
    mount("proc", "/proc", "proc", "")?;
    mount("sysfs", "/sys", "sysfs", "")?;
    mount("devtmpfs", "/dev", "devtmpfs", "")?;
    mount("tmpfs", "/dev/shm", "tmpfs", "mode=1777")?;
    for dir in ["/run/netns", "/dev/pts", "/tmp", "/root"] {
        std::fs::create_dir_all(dir)?;
    }
    // `nft -f -` (vethlab's firewall) reads /dev/stdin.
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(target, link)?;
    }
    std::fs::set_permissions("/run", std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions("/tmp", std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// Milliseconds since boot (`CLOCK_BOOTTIME`), for the host's boot-time figures.
pub fn uptime_ms() -> u128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u128 * 1000 + ts.tv_nsec as u128 / 1_000_000
}

/// Loads one module; one already loaded (or built in under the same name) is not an error.
pub fn load_module(path: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    let params = cstr("");
    // SAFETY: a valid open fd and an empty NUL-terminated parameter string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc != 0 {
        let e = Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

/// `ip link set lo up`, with the SIOCSIFFLAGS ioctl.
pub fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own; OwnedFd closes it.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; we set the name and flags fields before use.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming `lo`; the kernel reads and writes only that struct.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(Error::last_os_error());
        }
    }
    Ok(())
}

/// Syncs, then writes the verdict to isa-debug-exit, which ends QEMU; powers off if it did not.
pub fn exit_qemu(passed: bool) -> ! {
    // SAFETY: sync(2) takes no arguments.
    unsafe { libc::sync() };
    let byte = if passed { EXIT_PASS } else { EXIT_FAIL };
    let written = std::fs::OpenOptions::new().write(true).open("/dev/port").and_then(|mut port| {
        port.seek(SeekFrom::Start(DEBUG_EXIT_PORT))?;
        port.write_all(&[byte])
    });
    eprintln!("vethlab-init: isa-debug-exit did not stop QEMU ({written:?}); powering off");
    // SAFETY: reboot(2) with a valid command; PID 1 may call it.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    // PID 1 must not return: the kernel would panic and the host would report that instead.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
