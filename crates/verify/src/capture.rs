//! Reading a namespace's network state through rtnetlink dumps: links, addresses, main-table
//! routes and a few sysctls, for several labelled namespaces at once.
//!
//! The raw [`World`] keeps kernel identifiers (ifindex, MAC, nsid) so it can be recorded as a
//! fixture; [`normalize()`](crate::normalize()) turns it into stable snapshot text.
//!
//! # Veth peers across namespaces
//!
//! A veth reports its peer as `IFLA_LINK` (the peer's ifindex) plus, when the peer lives in
//! another namespace, `IFLA_LINK_NETNSID`: the id *this* namespace uses for the peer's
//! namespace. To turn that nsid into a label we ask each captured namespace, with
//! `RTM_GETNSID` and the other namespace's file descriptor, which id it uses for every other
//! captured namespace. We never assign an id ourselves (`RTM_NEWNSID`): the kernel already
//! allocates one while it fills `IFLA_LINK_NETNSID` into the link dump, so any nsid we see is
//! resolvable. As a fallback (e.g. the id lookup failed), the peer is searched by ifindex in
//! every other captured namespace, accepting it only if exactly one veth there has that index and
//! points back at ours with its own `IFLA_LINK`.
//!
//! # Interrupted dumps
//!
//! The kernel marks dump messages with `NLM_F_DUMP_INTR` when the table changed while it was
//! being dumped, meaning the view may be inconsistent. Such a dump is thrown away and repeated
//! (up to [`DUMP_ATTEMPTS`] times) rather than returning a partial view.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use futures::StreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_core::{NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use serde::{Deserialize, Serialize};
use vethlab_runtime::{Netlink, Netns};

use crate::error::VerifyError;

/// How many times a dump is attempted before giving up on `NLM_F_DUMP_INTR`.
pub const DUMP_ATTEMPTS: u32 = 5;

/// Sysctls captured in every namespace, as paths below `/proc/sys`.
pub const SYSCTLS: &[&str] = &["net/ipv4/ip_forward"];

/// The state of several namespaces, in the order they were given to [`capture`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub namespaces: Vec<NsState>,
}

/// What one namespace holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NsState {
    /// The caller's label ("host", "c1", …).
    pub label: String,
    /// The namespace handle's own label (its path or `pid:N`), for messages.
    pub netns: String,
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    /// Main-table routes only (IPv4 and IPv6).
    pub routes: Vec<Route>,
    /// Sysctl name in dotted form (`net.ipv4.ip_forward`) to its trimmed value.
    pub sysctls: BTreeMap<String, String>,
    /// `nft -s list ruleset` (no counters), one line each, tabs as two spaces: the firewall as
    /// nft itself renders it. Empty when the namespace has no tables.
    #[serde(default)]
    pub nftables: Vec<String>,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// `IFLA_INFO_KIND`: `bridge`, `veth`, …; `None` for `lo` and physical devices.
    pub kind: Option<String>,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the driver reports carrier.
    pub lower_up: bool,
    /// `IFLA_OPERSTATE` in lower case (`up`, `down`, `lowerlayerdown`, `unknown`, …).
    pub oper_state: String,
    pub mtu: Option<u32>,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// Name of the controller (bridge) this link is a port of.
    pub master: Option<String>,
    /// The other end of a veth.
    pub peer: Option<Peer>,
}

/// Where a veth's other end is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's ifindex in its own namespace.
    pub index: u32,
    /// `IFLA_LINK_NETNSID` as seen from the link's namespace; `None` if the peer is local.
    pub nsid: Option<i32>,
    /// Label of the captured namespace holding the peer; `None` if it is none of them.
    pub netns: Option<String>,
    /// The peer's name, if its namespace was captured.
    pub name: Option<String>,
}

/// An address assigned to a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub link: String,
    pub index: u32,
    /// `IFA_LOCAL` when present (it differs from `IFA_ADDRESS` only on point-to-point links).
    pub address: IpAddr,
    pub prefix: u8,
    /// `global`, `link`, `host`, …
    pub scope: String,
}

/// A route of the main table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// `inet` or `inet6`.
    pub family: String,
    /// `None` for a default route.
    pub destination: Option<IpAddr>,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    /// Output device name (`None` for e.g. blackhole routes).
    pub dev: Option<String>,
    pub oif: Option<u32>,
    /// `universe`, `link`, `host`, … (iproute2 names).
    pub scope: String,
    /// `kernel`, `static`, `boot`, … (iproute2 names).
    pub protocol: String,
    /// `unicast`, `blackhole`, `unreachable`, … (iproute2 names).
    pub kind: String,
    pub pref_src: Option<IpAddr>,
    pub metric: Option<u32>,
    pub table: u32,
}

/// One namespace's raw dumps, before cross-namespace resolution.
struct RawNs {
    label: String,
    netns: String,
    links: Vec<LinkMessage>,
    addresses: Vec<AddressMessage>,
    routes: Vec<RouteMessage>,
    sysctls: BTreeMap<String, String>,
    nftables: Vec<String>,
    /// nsid this namespace uses for the captured namespace at that position, if any.
    nsids: BTreeMap<i32, usize>,
}

/// Captures links, addresses, main-table routes and sysctls of every namespace, each under its
/// label. Must run inside a tokio runtime (a current-thread one is enough).
pub async fn capture(namespaces: &[(&str, &Netns)]) -> Result<World, VerifyError> {
    for (i, (label, _)) in namespaces.iter().enumerate() {
        if namespaces[..i].iter().any(|(l, _)| l == label) {
            return Err(VerifyError::DuplicateLabel { label: (*label).to_owned() });
        }
    }
    let mut raws = Vec::with_capacity(namespaces.len());
    for (i, (label, ns)) in namespaces.iter().enumerate() {
        let nl = Netlink::open(ns)?;
        let netns = ns.label().to_owned();
        let links = dump(&nl, RouteNetlinkMessage::GetLink(LinkMessage::default()), "dump links")
            .await?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect();
        let addresses =
            dump(&nl, RouteNetlinkMessage::GetAddress(AddressMessage::default()), "dump addresses")
                .await?
                .into_iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewAddress(a) => Some(a),
                    _ => None,
                })
                .collect();
        let routes = dump(&nl, RouteNetlinkMessage::GetRoute(RouteMessage::default()), "dump routes")
            .await?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect();
        let mut nsids = BTreeMap::new();
        for (j, (_, other)) in namespaces.iter().enumerate() {
            if j == i || other.same_as(ns) {
                continue;
            }
            if let Some(id) = nsid_of(&nl, other).await? {
                nsids.insert(id, j);
            }
        }
        let sysctls = read_sysctls(ns)?;
        let nftables = read_nftables(ns)?;
        raws.push(RawNs {
            label: (*label).to_owned(),
            netns,
            links,
            addresses,
            routes,
            sysctls,
            nftables,
            nsids,
        });
    }
    Ok(resolve(&raws))
}

/// Runs one dump request, repeating it while the kernel flags it as interrupted.
async fn dump(
    nl: &Netlink,
    request: RouteNetlinkMessage,
    what: &str,
) -> Result<Vec<RouteNetlinkMessage>, VerifyError> {
    let err = |source| VerifyError::Request { netns: nl.netns().to_owned(), what: what.to_owned(), source };
    for _ in 0..DUMP_ATTEMPTS {
        let mut req = NetlinkMessage::from(request.clone());
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut handle = nl.handle().clone();
        let mut responses = handle.request(req).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        while let Some(msg) = responses.next().await {
            // The flag is set on every message filled after the change, and on NLMSG_DONE
            // (which netlink-proto swallows), so seeing it on any data message is enough
            // except for a change racing the very end of the dump; that one we cannot see.
            if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                interrupted = true;
            }
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) if e.code.is_some() => return Err(err(e.to_io())),
                NetlinkPayload::Overrun(_) => interrupted = true,
                _ => {}
            }
        }
        if !interrupted {
            return Ok(out);
        }
    }
    Err(VerifyError::DumpInterrupted {
        netns: nl.netns().to_owned(),
        what: what.to_owned(),
        attempts: DUMP_ATTEMPTS,
    })
}

/// `ip netns` style lookup: the nsid `nl`'s namespace uses for `other`, if one is assigned.
async fn nsid_of(nl: &Netlink, other: &Netns) -> Result<Option<i32>, VerifyError> {
    let what = format!("get nsid of netns {}", other.label());
    let err = |source| VerifyError::Request { netns: nl.netns().to_owned(), what: what.clone(), source };
    let mut msg = NsidMessage::default();
    // The kernel resolves the descriptor in the sending process while handling sendmsg, which is
    // this process: the connection task sends from here.
    let fd = u32::try_from(other.as_fd().as_raw_fd()).map_err(|_| err(std::io::Error::other("bad fd")))?;
    msg.attributes.push(NsidAttribute::Fd(fd));
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = NLM_F_REQUEST;
    let mut handle = nl.handle().clone();
    let mut responses = handle.request(req).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    let mut id = None;
    while let Some(msg) = responses.next().await {
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                id = m.attributes.iter().find_map(|a| match a {
                    NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                    _ => None,
                });
            }
            NetlinkPayload::Error(e) if e.code.is_some() => return Err(err(e.to_io())),
            _ => {}
        }
    }
    Ok(id)
}

/// Reads [`SYSCTLS`] on a thread inside `ns`: `/proc/sys/net` shows the reading thread's namespace.
fn read_sysctls(ns: &Netns) -> Result<BTreeMap<String, String>, VerifyError> {
    let results = ns.run(|| {
        SYSCTLS
            .iter()
            .map(|path| (*path, std::fs::read_to_string(format!("/proc/sys/{path}"))))
            .collect::<Vec<_>>()
    })?;
    let mut out = BTreeMap::new();
    for (path, result) in results {
        let name = path.replace('/', ".");
        match result {
            Ok(value) => {
                out.insert(name, value.trim().to_owned());
            }
            Err(source) => return Err(VerifyError::Sysctl { netns: ns.label().to_owned(), name, source }),
        }
    }
    Ok(out)
}

/// Lists the ruleset with `nft -s list ruleset` from a thread inside `ns` (the child inherits the
/// thread's namespace). nftables has no stable dump API in rtnetlink, and nft's own rendering is
/// what people read and compare.
fn read_nftables(ns: &Netns) -> Result<Vec<String>, VerifyError> {
    let netns = ns.label().to_owned();
    let out = ns.run(|| std::process::Command::new("nft").args(["-s", "list", "ruleset"]).output())?;
    let fail = |message: String| VerifyError::Nft { netns: netns.clone(), message };
    let out = out.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            fail("the nft command is not installed (install nftables, e.g. with ci/install.sh)".into())
        } else {
            fail(e.to_string())
        }
    })?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let depth = l.len() - l.trim_start_matches('\t').len();
            format!("{}{}", "  ".repeat(depth), l.trim())
        })
        .collect())
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_kind(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(InfoKind::Other(k)) => Some(k.clone()),
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

/// `IFLA_LINK` of a link, the index of its lower device or veth peer, when meaningful.
fn link_iflink(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

fn link_netnsid(link: &LinkMessage) -> Option<i32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkNetNsId(i) => Some(*i),
        _ => None,
    })
}

fn format_mac(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Turns raw dumps into the [`World`], resolving indexes to names across namespaces.
fn resolve(raws: &[RawNs]) -> World {
    let namespaces = raws
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let name_of = |index: u32| {
                raw.links.iter().find(|l| l.header.index == index).and_then(link_name).map(str::to_owned)
            };
            let links = raw
                .links
                .iter()
                .map(|l| {
                    let kind = link_kind(l);
                    let mut mtu = None;
                    let mut mac = None;
                    let mut master = None;
                    let mut oper_state = "unknown".to_owned();
                    for a in &l.attributes {
                        match a {
                            LinkAttribute::Mtu(m) => mtu = Some(*m),
                            LinkAttribute::Address(b) => mac = Some(format_mac(b)),
                            LinkAttribute::Controller(m) => {
                                master = Some(name_of(*m).unwrap_or_else(|| format!("if{m}")))
                            }
                            LinkAttribute::OperState(s) => oper_state = oper_name(*s),
                            _ => {}
                        }
                    }
                    let peer = if kind.as_deref() == Some("veth") {
                        link_iflink(l).map(|index| resolve_peer(raws, i, l, index))
                    } else {
                        None
                    };
                    Link {
                        name: link_name(l).map_or_else(|| format!("if{}", l.header.index), str::to_owned),
                        index: l.header.index,
                        kind,
                        admin_up: l.header.flags.contains(LinkFlags::Up),
                        lower_up: l.header.flags.contains(LinkFlags::LowerUp),
                        oper_state,
                        mtu,
                        mac,
                        master,
                        peer,
                    }
                })
                .collect();
            let addresses = raw
                .addresses
                .iter()
                .filter_map(|a| {
                    let mut address = None;
                    let mut local = None;
                    for attr in &a.attributes {
                        match attr {
                            AddressAttribute::Address(ip) => address = Some(*ip),
                            AddressAttribute::Local(ip) => local = Some(*ip),
                            _ => {}
                        }
                    }
                    Some(Address {
                        link: name_of(a.header.index).unwrap_or_else(|| format!("if{}", a.header.index)),
                        index: a.header.index,
                        address: local.or(address)?,
                        prefix: a.header.prefix_len,
                        scope: scope_name(u8::from(a.header.scope)),
                    })
                })
                .collect();
            let routes = raw.routes.iter().filter_map(|r| route(r, &name_of)).collect();
            NsState {
                label: raw.label.clone(),
                netns: raw.netns.clone(),
                links,
                addresses,
                routes,
                sysctls: raw.sysctls.clone(),
                nftables: raw.nftables.clone(),
            }
        })
        .collect();
    World { namespaces }
}

fn resolve_peer(raws: &[RawNs], here: usize, link: &LinkMessage, index: u32) -> Peer {
    let find = |ns: usize| raws[ns].links.iter().find(|l| l.header.index == index);
    let Some(nsid) = link_netnsid(link) else {
        // No IFLA_LINK_NETNSID: the peer is in this same namespace.
        let name = find(here).and_then(link_name).map(str::to_owned);
        return Peer { index, nsid: None, netns: Some(raws[here].label.clone()), name };
    };
    let by_nsid = raws[here].nsids.get(&nsid).copied();
    let target = by_nsid.or_else(|| {
        // Fallback: exactly one veth with that index pointing back at us.
        let mut candidates = (0..raws.len()).filter(|&j| {
            j != here
                && find(j).is_some_and(|p| {
                    link_kind(p).as_deref() == Some("veth") && link_iflink(p) == Some(link.header.index)
                })
        });
        match (candidates.next(), candidates.next()) {
            (Some(j), None) => Some(j),
            _ => None,
        }
    });
    match target {
        Some(j) => Peer {
            index,
            nsid: Some(nsid),
            netns: Some(raws[j].label.clone()),
            name: find(j).and_then(link_name).map(str::to_owned),
        },
        None => Peer { index, nsid: Some(nsid), netns: None, name: None },
    }
}

fn route(r: &RouteMessage, name_of: &dyn Fn(u32) -> Option<String>) -> Option<Route> {
    let mut table = u32::from(r.header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut oif = None;
    let mut pref_src = None;
    let mut metric = None;
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => destination = ip(d),
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::PrefSource(s) => pref_src = ip(s),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let family = match u8::from(r.header.address_family) {
        f if f == libc::AF_INET as u8 => "inet",
        f if f == libc::AF_INET6 as u8 => "inet6",
        _ => return None,
    };
    Some(Route {
        family: family.to_owned(),
        destination,
        prefix: r.header.destination_prefix_length,
        gateway,
        dev: oif.map(|o| name_of(o).unwrap_or_else(|| format!("if{o}"))),
        oif,
        scope: scope_name(u8::from(r.header.scope)),
        protocol: protocol_name(r.header.protocol),
        kind: type_name(r.header.kind),
        pref_src,
        metric,
        table,
    })
}

fn oper_name(s: State) -> String {
    s.to_string().to_ascii_lowercase()
}

/// iproute2's names for `rt_scope` values (`/etc/iproute2/rt_scopes`).
fn scope_name(scope: u8) -> String {
    match RouteScope::from(scope) {
        RouteScope::Universe => "global".to_owned(),
        RouteScope::Site => "site".to_owned(),
        RouteScope::Link => "link".to_owned(),
        RouteScope::Host => "host".to_owned(),
        RouteScope::NoWhere => "nowhere".to_owned(),
        _ => scope.to_string(),
    }
}

/// iproute2's names for `rt_protos` values.
fn protocol_name(p: RouteProtocol) -> String {
    match p {
        RouteProtocol::Unspec => "unspec".to_owned(),
        RouteProtocol::IcmpRedirect => "redirect".to_owned(),
        RouteProtocol::Kernel => "kernel".to_owned(),
        RouteProtocol::Boot => "boot".to_owned(),
        RouteProtocol::Static => "static".to_owned(),
        RouteProtocol::Ra => "ra".to_owned(),
        RouteProtocol::Dhcp => "dhcp".to_owned(),
        other => u8::from(other).to_string(),
    }
}

/// iproute2's names for route types.
fn type_name(t: RouteType) -> String {
    match t {
        RouteType::Unicast => "unicast",
        RouteType::Local => "local",
        RouteType::Broadcast => "broadcast",
        RouteType::Anycast => "anycast",
        RouteType::Multicast => "multicast",
        RouteType::BlackHole => "blackhole",
        RouteType::Unreachable => "unreachable",
        RouteType::Prohibit => "prohibit",
        RouteType::Throw => "throw",
        RouteType::Nat => "nat",
        RouteType::ExternalResolve => "xresolve",
        RouteType::Unspec => "none",
        RouteType::Other(_) => return u8::from(t).to_string(),
        _ => return u8::from(t).to_string(),
    }
    .to_owned()
}
