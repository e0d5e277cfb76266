//! rtnetlink handles bound to a namespace, and the few link/address/route operations the runtime
//! needs, each named after the `ip` command it corresponds to.
//!
//! The netlink socket is created on a thread that entered the namespace ([`Netns::run`]); a
//! socket stays bound to the namespace it was created in, so the handle can then be used from any
//! thread and no thread ever stays switched.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use netlink_sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use thiserror::Error;

use crate::netns::{Netns, NetnsError};

#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netns {netns}: cannot open a netlink socket: {source}")]
    Socket { netns: String, source: std::io::Error },
    #[error("netns {netns}: {what}: {source}")]
    Request { netns: String, what: String, source: std::io::Error },
}

impl NetlinkError {
    /// The errno the kernel answered with, if this is a failed request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Converts rtnetlink's error into an `io::Error` carrying the kernel's errno.
fn to_io(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

/// A netlink route handle whose socket lives in one namespace.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
    netns: String,
}

impl Netlink {
    /// Opens a route socket inside `ns`. Must be called within a tokio runtime: the connection is
    /// spawned on it.
    pub fn open(ns: &Netns) -> Result<Self, NetlinkError> {
        let netns = ns.label().to_owned();
        let label = netns.clone();
        let fd: OwnedFd = ns.run(move || -> Result<OwnedFd, NetlinkError> {
            let socket = Socket::new(NETLINK_ROUTE)
                .map_err(|source| NetlinkError::Socket { netns: label.clone(), source })?;
            // SAFETY: into_raw_fd hands over sole ownership of a valid descriptor.
            Ok(unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) })
        })??;
        // SAFETY: `fd` is an open netlink socket we own; TokioSocket takes ownership of it.
        let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Ok(Self { handle, netns })
    }

    /// The raw rtnetlink handle, for read-only dumps in `vethlab-verify`.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError + '_ {
        let what = what.into();
        move |e| NetlinkError::Request { netns: self.netns.clone(), what, source: to_io(e) }
    }

    /// `ip link show NAME`: the link, or `None` if there is no such interface.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut links = self.handle.link().get().match_name(name.to_owned()).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) => {
                let io = to_io(e);
                if io.raw_os_error() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(NetlinkError::Request {
                        netns: self.netns.clone(),
                        what: format!("get link {name}"),
                        source: io,
                    })
                }
            }
        }
    }

    /// `ip link add NAME address MAC [mtu N] up type bridge` — one request.
    pub async fn add_bridge(&self, name: &str, mac: [u8; 6], mtu: Option<u32>) -> Result<u32, NetlinkError> {
        let mut builder = LinkBridge::new(name).address(mac.to_vec());
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        self.handle
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(self.err(format!("create bridge {name}")))?;
        self.index_of(name).await
    }

    /// `ip link add HOST [mtu N] master BRIDGE up type veth peer name PEER netns NS address MAC
    /// [mtu N]` — one request: the peer is created directly inside the container namespace, the
    /// host end is already a port of the bridge, and the peer's MAC is set before anyone sees it.
    /// The peer cannot be brought up in the same request: the kernel configures it before the
    /// pair is linked and `veth_open` answers `ENOTCONN`.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_veth(
        &self,
        host: &str,
        master: u32,
        peer: &str,
        peer_ns: &Netns,
        peer_mac: [u8; 6],
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_owned())
            .setns_by_fd(peer_ns.as_fd().as_raw_fd())
            .address(peer_mac.to_vec());
        let mut host_msg = LinkVeth::new(host, peer).controller(master).up();
        if let Some(mtu) = mtu {
            peer_msg = peer_msg.mtu(mtu);
            host_msg = host_msg.mtu(mtu);
        }
        let host_msg = host_msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())));
        self.handle.link().add(host_msg.build()).execute().await.map_err(
            self.err(format!("create veth {host} (peer {peer} in netns {peer_ns}) on bridge index {master}")),
        )
    }

    /// `ip link del dev NAME` by index.
    pub async fn del_link(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.handle.link().del(index).execute().await.map_err(self.err(format!("delete link {name}")))
    }

    /// `ip link del dev NAME`; `Ok(false)` if it was already gone.
    pub async fn del_link_by_name(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(link) = self.link_by_name(name).await? else { return Ok(false) };
        match self.del_link(link.header.index, name).await {
            Ok(()) => Ok(true),
            // Raced with someone else deleting it (e.g. its peer's namespace went away).
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `ip link set dev NAME up` by index.
    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle.link().set(msg).execute().await.map_err(self.err(format!("set {name} up")))
    }

    /// `ip addr add IP/PREFIX dev NAME`.
    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(self.err(format!("add address {ip}/{prefix} to {name}")))
    }

    /// `ip route add default via GW dev NAME`.
    pub async fn add_default_route(
        &self,
        index: u32,
        name: &str,
        gateway: Ipv4Addr,
    ) -> Result<(), NetlinkError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(index).build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(self.err(format!("add default route via {gateway} dev {name}")))
    }

    /// The index of interface `name`, which must exist.
    pub async fn index_of(&self, name: &str) -> Result<u32, NetlinkError> {
        match self.link_by_name(name).await? {
            Some(link) => Ok(link.header.index),
            None => Err(NetlinkError::Request {
                netns: self.netns.clone(),
                what: format!("find link {name}"),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            }),
        }
    }
}

/// The interface kind (`bridge`, `veth`, …) of a link message, if it has one.
pub fn link_kind(link: &LinkMessage) -> Option<String> {
    use netlink_packet_route::link::LinkInfo;
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind.to_string()),
            _ => None,
        }),
        _ => None,
    })
}
