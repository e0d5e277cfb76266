//! The `Lab` fixture: a throwaway host namespace, container namespaces made the two ways
//! runtimes meet them, and a temporary state directory — all removed on drop, even on panic.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use netlink_packet_route::link::{InfoData, InfoVeth};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use vethlab_runtime::{Netlink, Netns, Runtime, StateDir};

/// Where named namespaces live (`ip netns` convention). `cargo xtask test` mounts a private tmpfs
/// here, so labs are invisible to the machine.
pub const NETNS_RUN_DIR: &str = "/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Gives this process a mount namespace of its own with an empty tmpfs on [`NETNS_RUN_DIR`], as
/// `cargo xtask test` does for test binaries: the named namespaces its labs create are then
/// invisible to the machine, and vanish with the process even when it is killed before the labs
/// drop. Child processes (CNI plugins, netavark) inherit the view. Host mounts still propagate
/// in; nothing propagates out.
///
/// Call it before the process starts any thread: the kernel refuses a new mount namespace to a
/// process whose threads share its filesystem context.
pub fn private_netns_dir() -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)
        .context("unshare a mount namespace (must happen before any thread is started)")?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .context("make the mounts of the new mount namespace slaves of the host's")?;
    std::fs::create_dir_all(NETNS_RUN_DIR).with_context(|| format!("create {NETNS_RUN_DIR}"))?;
    mount(
        Some("tmpfs"),
        NETNS_RUN_DIR,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .with_context(|| format!("mount a private tmpfs on {NETNS_RUN_DIR}"))
}

/// A name no other lab in any process uses right now: `vl<pid>-<n>-<what>`, ≤ 15 bytes is not
/// needed (these are file names), but short names keep `ip netns` output readable.
fn unique(what: &str) -> String {
    format!("vl{}-{}-{what}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// How a container's namespace came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// A process that unshared its network namespace, reached as `/proc/PID/ns/net` (the seed).
    Process,
    /// A namespace bind-mounted at `/run/netns/NAME` (`ip netns add`, CNI, netavark).
    Named,
}

/// A namespace bind-mounted on a file; unmounted and removed on drop.
#[derive(Debug)]
pub struct NamedNetns {
    path: PathBuf,
    netns: Netns,
}

impl NamedNetns {
    /// `ip netns add`: a new namespace pinned by a bind mount at `/run/netns/NAME`.
    pub fn create(name: &str) -> Result<Self> {
        let dir = Path::new(NETNS_RUN_DIR);
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(name);
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let target = path.clone();
        let mounted = std::thread::spawn(move || -> nix::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netns {}: creating thread panicked", path.display()))?;
        if let Err(e) = mounted {
            let _ = std::fs::remove_file(&path);
            return Err(e).with_context(|| format!("netns {}: bind mount", path.display()));
        }
        let netns = Netns::open(&path)?;
        Ok(Self { path, netns })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
            eprintln!("lab: unmount {}: {e}", self.path.display());
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("lab: remove {}: {e}", self.path.display());
        }
    }
}

/// A container: its namespace and whatever keeps it alive.
#[derive(Debug)]
pub struct Container {
    pub label: String,
    pub kind: ContainerKind,
    netns: Netns,
    path: PathBuf,
    keeper: Keeper,
}

#[derive(Debug)]
enum Keeper {
    Process(Child),
    // Held for its Drop, which unmounts the namespace.
    Named(#[allow(dead_code)] NamedNetns),
}

impl Container {
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The path a runtime is given: `/proc/PID/ns/net` or `/run/netns/NAME`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid of the process holding the namespace, for `Process` containers.
    pub fn pid(&self) -> Option<i32> {
        match &self.keeper {
            Keeper::Process(child) => i32::try_from(child.id()).ok(),
            Keeper::Named(_) => None,
        }
    }

    /// Ends the container: kills its process or unmounts its namespace, as a crashed container
    /// would vanish.
    pub fn destroy(self) {
        drop(self);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Keeper::Process(child) = &mut self.keeper {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A throwaway world for one test.
#[derive(Debug)]
pub struct Lab {
    host: NamedNetns,
    state: tempfile::TempDir,
    runtime: Runtime,
}

impl Lab {
    /// A host namespace with `lo` up and an empty state directory.
    pub async fn new() -> Result<Self> {
        let host = NamedNetns::create(&unique("host"))?;
        let nl = Netlink::open(host.netns())?;
        nl.set_up(1, "lo").await?;
        let state = tempfile::Builder::new().prefix("vethlab-lab-").tempdir()?;
        let runtime = Runtime::new(host.netns().try_clone()?.with_label("host"), StateDir::new(state.path()));
        Ok(Self { host, state, runtime })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// A second runtime on the same host and state, as a new `vethlab` process would be.
    pub fn reopen_runtime(&self) -> Result<Runtime> {
        let host = self.host.netns().try_clone()?.with_label("host");
        Ok(Runtime::new(host, StateDir::new(self.state.path())))
    }

    pub fn host(&self) -> &Netns {
        self.host.netns()
    }

    pub fn host_path(&self) -> &Path {
        self.host.path()
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// A container namespace of the given kind. A `Process` container dies with the thread that
    /// made it (`PR_SET_PDEATHSIG`), so make it on a thread that outlives it: the test's or the
    /// command's own, not a pool thread.
    pub fn container(&self, label: &str, kind: ContainerKind) -> Result<Container> {
        match kind {
            ContainerKind::Named => {
                let named = NamedNetns::create(&unique(label))?;
                let netns = named.netns().try_clone()?.with_label(label);
                let path = named.path().to_owned();
                Ok(Container { label: label.to_owned(), kind, netns, path, keeper: Keeper::Named(named) })
            }
            ContainerKind::Process => {
                let mut cmd = Command::new("sleep");
                cmd.arg("100000").stdin(Stdio::null()).stdout(Stdio::null());
                // SAFETY: unshare and prctl are async-signal-safe.
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                        // Dies with the thread that made it, so a lab killed before its drop
                        // leaves no container process (and no namespace it holds) behind.
                        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                        unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
                    });
                }
                let child = cmd.spawn().context("start a container process (sleep)")?;
                let pid = i32::try_from(child.id()).context("pid")?;
                let netns = Netns::from_pid(pid)?.with_label(label);
                let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
                Ok(Container { label: label.to_owned(), kind, netns, path, keeper: Keeper::Process(child) })
            }
        }
    }
}

/// The outside world of a lab: a namespace joined to the host by a veth pair, standing for the
/// internet (`uplink0` in the host at 10.255.0.1/24, `eth0` upstream at 10.255.0.2/24).
#[derive(Debug)]
pub struct Upstream {
    ns: NamedNetns,
}

impl Upstream {
    pub const HOST_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 255, 0, 1);
    pub const IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 255, 0, 2);

    pub fn netns(&self) -> &Netns {
        self.ns.netns()
    }
}

impl Lab {
    /// Creates the lab's upstream namespace and the host's uplink to it.
    pub async fn upstream(&self) -> Result<Upstream> {
        let ns = NamedNetns::create(&unique("up"))?;
        let host = Netlink::open(self.host())?;
        // The peer is created directly upstream, like a container's.
        let peer = rtnetlink::LinkMessageBuilder::<rtnetlink::LinkUnspec>::new()
            .name("eth0".to_owned())
            .setns_by_fd(ns.netns().as_fd().as_raw_fd())
            .build();
        let veth = rtnetlink::LinkVeth::new("uplink0", "eth0")
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        host.handle().link().add(veth).execute().await.context("create veth uplink0")?;
        let uplink = host.index_of("uplink0").await?;
        host.add_address(uplink, "uplink0", Upstream::HOST_IP, 24).await?;
        let up = Netlink::open(ns.netns())?;
        let eth0 = up.index_of("eth0").await?;
        up.set_up(1, "lo").await?;
        up.set_up(eth0, "eth0").await?;
        up.add_address(eth0, "eth0", Upstream::IP, 24).await?;
        Ok(Upstream { ns })
    }
}
