//! Runtime adapters: one `NetworkRuntime` trait that attaches a container namespace to a bridge
//! network and detaches it again, implemented for vethlab in-process (`native`), the `vethlab`
//! binary (`cli`), any CNI plugin binary (`cni:PATH`) and netavark (`netavark:PATH`), so the
//! scenario catalogue runs unchanged against each of them (see `conformance`).
//!
//! Each adapter declares its capabilities; a scenario that needs one it lacks is reported
//! `unsupported`, never passed. Processes are started inside the lab's host namespace (a
//! `pre_exec` `setns`), never in the machine's own.

pub mod cli;
pub mod cni;
pub mod native;
pub mod netavark;

use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;

use anyhow::{Result, bail};
use vethlab_runtime::Netns;

use crate::lab::{Container, Lab};
use crate::scenario::NetDef;

/// What a runtime can do; a scenario needing a missing one is `unsupported` on that runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// The caller can ask for a given container address.
    StaticAddress,
    /// The network's MTU can be set (bridge and both veth ends).
    Mtu,
    /// The gateway can be an address other than the subnet's first.
    CustomGateway,
    /// The container gets a default route via the gateway.
    DefaultRoute,
    /// The runtime allocates addresses itself and refuses an attach when the subnet is full.
    Ipam,
    /// A network can be removed with its endpoints (`network rm --force`).
    NetworkRemoval,
    /// Traffic from the subnet to the outside is masqueraded (upstream sees the host's address).
    Masquerade,
    /// `-p HOST:CONTAINER`: published ports, reachable from outside and from the host's loopback.
    PortMapping,
    /// `--internal` networks: no way out.
    Internal,
    /// Containers on different networks cannot reach each other.
    Isolation,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Self::StaticAddress => "static address",
            Self::Mtu => "mtu",
            Self::CustomGateway => "custom gateway",
            Self::DefaultRoute => "default route",
            Self::Ipam => "ipam",
            Self::NetworkRemoval => "network removal",
            Self::Masquerade => "masquerade",
            Self::PortMapping => "port mapping",
            Self::Internal => "internal network",
            Self::Isolation => "isolation between networks",
        }
    }
}

/// Whose behaviour an adapter drives: known differences are recorded per flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// vethlab itself, in-process, as a command or as a CNI plugin.
    Vethlab,
    /// The reference CNI `bridge` plugin with `host-local` IPAM.
    CniBridge,
    /// Podman's netavark.
    Netavark,
    /// Any other CNI plugin, given a bridge-plugin-like configuration.
    OtherCni,
}

/// A network as every runtime is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// Network name; also the bridge's name, for every runtime.
    pub name: String,
    pub subnet: vethlab_core::Subnet,
    /// Only when the scenario asks for a non-default gateway.
    pub gateway: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
    pub internal: bool,
}

impl NetSpec {
    pub fn from_def(def: &NetDef) -> Result<Self> {
        let subnet = def.subnet.parse().map_err(|e| anyhow::anyhow!("network {}: subnet: {e}", def.name))?;
        let gateway = def.gateway.map(str::parse).transpose()?;
        Ok(Self { name: def.name.to_owned(), subnet, gateway, mtu: def.mtu, internal: def.internal })
    }

    /// The gateway the containers should use.
    pub fn effective_gateway(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| self.subnet.default_gateway())
    }
}

/// One attach request.
#[derive(Debug, Clone, Copy)]
pub struct AttachRequest<'a> {
    pub network: &'a NetSpec,
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub container: &'a Container,
    pub ip: Option<Ipv4Addr>,
    /// `-p` mappings; only asked of runtimes with [`Capability::PortMapping`].
    pub ports: &'a [&'static str],
}

/// What an attach made, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub host_ifname: String,
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mac: Option<String>,
}

/// A future borrowed from the adapter, so the trait stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bridge-network runtime seen from the outside. Named so as not to clash with
/// `vethlab_runtime::Runtime`.
pub trait NetworkRuntime: std::fmt::Debug + Send + Sync {
    /// As given on the command line: `native`, `cli`, `cni:/usr/lib/cni/bridge`, …
    fn name(&self) -> &str;
    /// A short name fit for a directory: `native`, `cli`, `cni-bridge`, `netavark`, …
    fn slug(&self) -> String;
    fn flavour(&self) -> Flavour;
    fn capabilities(&self) -> &[Capability];
    /// Attaches `req.container` to `req.network`, creating the network on first use.
    fn attach<'a>(&'a mut self, lab: &'a Lab, req: AttachRequest<'a>) -> BoxFuture<'a, Result<Attachment>>;
    /// Detaches a container; idempotent.
    fn detach<'a>(
        &'a mut self,
        lab: &'a Lab,
        network: &'a NetSpec,
        container_id: &'a str,
        ifname: &'a str,
        container: &'a Container,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes a network with its endpoints (only with `Capability::NetworkRemoval`).
    fn remove_network<'a>(&'a mut self, lab: &'a Lab, network: &'a NetSpec) -> BoxFuture<'a, Result<()>>;
    /// Starts a case on a new lab: forget everything about the previous one (state directories,
    /// leases, results).
    fn begin(&mut self, lab: &Lab) -> Result<()>;
    /// Continues as a fresh process would, from the persisted state (default: nothing to do,
    /// every call is a fresh process already).
    fn reload(&mut self, _lab: &Lab) -> Result<()> {
        Ok(())
    }
}

/// Parses `native`, `cli`, `cni:PATH`, `netavark:PATH`. `vethlab` is the binary the `cli`
/// adapter runs.
pub fn parse(spec: &str, vethlab: &Path) -> Result<Box<dyn NetworkRuntime>> {
    match spec.split_once(':') {
        None if spec == "native" => Ok(Box::new(native::Native::new())),
        None if spec == "cli" => Ok(Box::new(cli::Cli::new(vethlab.to_owned()))),
        Some(("cni", path)) => Ok(Box::new(cni::Cni::new(existing(path)?)?)),
        Some(("netavark", path)) => Ok(Box::new(netavark::Netavark::new(existing(path)?)?)),
        _ => bail!("runtime {spec:?}: expected native, cli, cni:PATH or netavark:PATH"),
    }
}

fn existing(path: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    if !p.is_file() {
        bail!("runtime binary {path} does not exist");
    }
    Ok(p)
}

/// A command that will run inside `host` (the lab's host namespace): the child enters it between
/// fork and exec, so nothing it does can reach the machine's own namespace.
pub fn command_in(host: &Netns, program: &Path) -> Command {
    let fd = host.as_fd().as_raw_fd();
    let mut cmd = Command::new(program);
    // SAFETY: setns is async-signal-safe; the fd stays open in the parent (the lab owns it) until
    // after spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Splits `10.0.0.2/24` into address and prefix.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8)> {
    let (ip, prefix) =
        text.split_once('/').ok_or_else(|| anyhow::anyhow!("address {text:?} has no prefix"))?;
    Ok((ip.parse()?, prefix.parse()?))
}

/// The host end of `container`'s veth on `bridge`, found in the kernel: a port of the bridge whose
/// peer lives in the container's namespace (for runtimes that do not report it).
pub async fn find_host_end(lab: &Lab, bridge: &str, container: &Container, ifname: &str) -> Result<String> {
    let world = vethlab_verify::capture(&[("host", lab.host()), ("ctr", container.netns())]).await?;
    let host = &world.namespaces[0];
    host.links
        .iter()
        .find(|l| {
            l.master.as_deref() == Some(bridge)
                && l.peer
                    .as_ref()
                    .is_some_and(|p| p.netns.as_deref() == Some("ctr") && p.name.as_deref() == Some(ifname))
        })
        .map(|l| l.name.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("bridge {bridge}: no port whose peer is {ifname} in {}", container.label)
        })
}
