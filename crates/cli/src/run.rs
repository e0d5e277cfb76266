//! `vethlab run`: a command in a fresh network namespace that is attached before it starts and
//! detached after it exits.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use anyhow::{Context, Result};
use nix::sched::{CloneFlags, setns};
use tokio::signal::unix::{SignalKind, signal};
use vethlab_core::ConnectRequest;
use vethlab_runtime::{Netns, Runtime};

use crate::args::RunArgs;

pub async fn run(rt: &Runtime, args: RunArgs) -> Result<ExitCode> {
    let id = match args.id {
        Some(id) => id,
        None => random_id().context("generate a container id")?,
    };
    let ns = Netns::new_anonymous(format!("vethlab-run:{id}"))?;
    let req = ConnectRequest {
        network: args.net.clone(),
        container_id: id.clone(),
        ip: args.endpoint.ip,
        ifname: args.endpoint.ifname,
        netns: format!("vethlab-run:{}", std::process::id()),
        ports: args.endpoint.publish,
    };
    rt.connect(&req, &ns).await?;
    let status = spawn_and_wait(&ns, &args.command).await;
    // Detach even when the command could not be started; report both failures if both happen.
    let detached = rt.disconnect(&args.net, &id).await;
    let status = status?;
    detached.with_context(|| {
        format!("command finished but disconnecting {id} from network {} failed", args.net)
    })?;
    Ok(exit_code(status))
}

/// Starts the command inside `ns` and waits, passing termination signals on to it so that
/// vethlab survives to disconnect.
async fn spawn_and_wait(ns: &Netns, command: &[String]) -> Result<std::process::ExitStatus> {
    let (program, rest) = command.split_first().context("no command given")?;
    let ns_fd = ns.as_fd().as_raw_fd();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest);
    // SAFETY: setns is async-signal-safe; the fd stays open in the parent until after spawn.
    unsafe {
        cmd.pre_exec(move || {
            let fd = std::os::fd::BorrowedFd::borrow_raw(ns_fd);
            setns(fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    // Handlers first, so a signal arriving right after the spawn cannot kill vethlab.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut child = cmd.spawn().with_context(|| format!("cannot run {program:?}"))?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).map(nix::unistd::Pid::from_raw);
    loop {
        let forward = tokio::select! {
            status = child.wait() => return status.with_context(|| format!("waiting for {program:?}")),
            _ = sigint.recv() => nix::sys::signal::Signal::SIGINT,
            _ = sigterm.recv() => nix::sys::signal::Signal::SIGTERM,
            _ = sighup.recv() => nix::sys::signal::Signal::SIGHUP,
        };
        if let Some(pid) = pid {
            // The child may have exited already; waiting will tell.
            let _ = nix::sys::signal::kill(pid, forward);
        }
    }
}

/// The shell's convention: the exit code, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Twelve random hex digits, like a short docker id.
fn random_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 6];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
