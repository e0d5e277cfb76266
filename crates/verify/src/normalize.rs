//! Turning a captured [`World`] into a [`Snapshot`]: plain, sorted text that is byte-for-byte
//! identical for the same topology, whatever ifindexes, MACs and link-local addresses the kernel
//! picked this time.
//!
//! Choices, and why:
//! - Namespaces keep their labels and the order they were captured in (the caller's order).
//! - Links are sorted by name; ifindexes become names (master, peer, route devices).
//! - A MAC is kept verbatim if it starts with one of [`NormalizeOptions::keep_mac_prefixes`]
//!   (vethlab's container MACs are `02:42:` + the IPv4 address, so they are meaningful) or is all
//!   zeroes (`lo`); any other MAC becomes the placeholder [`MAC_PLACEHOLDER`]. Numbered tokens
//!   (`mac-1`, `mac-2`) were tried and rejected: equal MACs cannot share a token (a bridge adopts
//!   the lowest MAC among its ports, which is random, so "which port's MAC the bridge has" would
//!   be flaky), and per-link numbering shifts every later token when a link appears, which
//!   buries a residue diff in noise.
//! - Link state is the administrative state (`up`/`down`), which only changes when someone sets
//!   it. Operational state is left out: it follows carrier through the kernel's linkwatch
//!   work, which lags up to a second (a fresh veth reports `down` or `unknown` for a moment).
//!   Carrier (`IFF_LOWER_UP`) is shown only with [`NormalizeOptions::carrier`]: a veth's carrier
//!   is set synchronously when both ends are up, but a bridge's follows its ports through
//!   linkwatch, so whoever turns it on should wait for it first.
//! - IPv6 link-local addresses (`fe80::/10`) and their routes are dropped: they are derived from
//!   random MACs and appear asynchronously. A link-local gateway is shown as `link-local`.
//! - Routes are main-table only (see [`mod@crate::capture`]), rendered like `ip route` lines, sorted
//!   IPv4 first, default first, then by destination.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::capture::{Link, NsState, Route, World};

/// What a MAC that is not kept is rendered as.
pub const MAC_PLACEHOLDER: &str = "xx:xx:xx:xx:xx:xx";

/// How to normalise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// MACs starting with one of these (lower-case, e.g. `"02:42:"`) are kept verbatim.
    pub keep_mac_prefixes: Vec<String>,
    /// Also show each link's carrier (`IFF_LOWER_UP`); see the module documentation.
    pub carrier: bool,
}

impl NormalizeOptions {
    /// vethlab's defaults: keep container MACs (`02:42:…`), no carrier.
    pub fn vethlab() -> Self {
        Self { keep_mac_prefixes: vec!["02:42:".to_owned()], carrier: false }
    }
}

/// The normalised state of several namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub namespaces: Vec<NsSnapshot>,
}

/// One namespace, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsSnapshot {
    pub netns: String,
    pub sysctls: BTreeMap<String, String>,
    pub links: Vec<LinkSnapshot>,
    /// `ip route` style lines.
    pub routes: Vec<String>,
    /// The namespace's nftables ruleset as `nft -s list ruleset` prints it (a YAML block).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nftables: String,
}

/// One link, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSnapshot {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Administrative state: `up` or `down`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// A veth's other end as `name@netns-label`; `?@uncaptured` if its namespace was not captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// For a bridge: the links whose master it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `ip/prefix`, IPv4 first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

/// Normalises `world`; see the module documentation for what is kept and how.
pub fn normalize(world: &World, opts: &NormalizeOptions) -> Snapshot {
    let namespaces = world.namespaces.iter().map(|ns| normalize_ns(ns, opts)).collect();
    Snapshot { namespaces }
}

/// The snapshot as YAML.
pub fn to_yaml(snapshot: &Snapshot) -> String {
    // Serialising plain strings, numbers and lists cannot fail; should it ever, the error is
    // put in the text so that a snapshot comparison fails visibly instead of panicking.
    serde_yaml_ng::to_string(snapshot).unwrap_or_else(|e| format!("# cannot serialise snapshot: {e}\n"))
}

fn normalize_ns(ns: &NsState, opts: &NormalizeOptions) -> NsSnapshot {
    let mut links: Vec<&Link> = ns.links.iter().collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    let links = links
        .into_iter()
        .map(|l| {
            let mac = l.mac.as_deref().map(|mac| {
                let mac = mac.to_ascii_lowercase();
                if mac.bytes().all(|b| b == b'0' || b == b':')
                    || opts.keep_mac_prefixes.iter().any(|p| mac.starts_with(&p.to_ascii_lowercase()))
                {
                    mac
                } else {
                    MAC_PLACEHOLDER.to_owned()
                }
            });
            let mut ports: Vec<String> = ns
                .links
                .iter()
                .filter(|p| p.master.as_deref() == Some(&l.name))
                .map(|p| p.name.clone())
                .collect();
            ports.sort();
            let mut addrs: Vec<(IpAddr, u8)> = ns
                .addresses
                .iter()
                .filter(|a| a.index == l.index && !is_link_local(a.address))
                .map(|a| (a.address, a.prefix))
                .collect();
            addrs.sort_by_key(|(ip, prefix)| (ip.is_ipv6(), *ip, *prefix));
            addrs.dedup();
            LinkSnapshot {
                name: l.name.clone(),
                kind: l.kind.clone(),
                state: if l.admin_up { "up" } else { "down" }.to_owned(),
                carrier: opts.carrier.then_some(l.lower_up),
                mtu: l.mtu,
                mac,
                master: l.master.clone(),
                peer: l.peer.as_ref().map(|p| match (&p.name, &p.netns) {
                    (Some(name), Some(netns)) => format!("{name}@{netns}"),
                    (None, Some(netns)) => format!("?@{netns}"),
                    _ => "?@uncaptured".to_owned(),
                }),
                ports,
                addresses: addrs.into_iter().map(|(ip, prefix)| format!("{ip}/{prefix}")).collect(),
            }
        })
        .collect();
    let mut routes: Vec<&Route> = ns.routes.iter().filter(|r| keep_route(r)).collect();
    routes.sort_by_cached_key(|r| {
        (r.family != "inet", r.destination.is_some(), r.destination, r.prefix, route_line(r))
    });
    let mut routes: Vec<String> = routes.into_iter().map(route_line).collect();
    routes.dedup();
    NsSnapshot {
        netns: ns.label.clone(),
        sysctls: ns.sysctls.clone(),
        links,
        routes,
        nftables: ns.nftables.iter().map(|l| format!("{l}\n")).collect(),
    }
}

/// `fe80::/10`.
fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

/// Drops the kernel's IPv6 link-local and multicast routes, which exist on every IPv6 link.
fn keep_route(r: &Route) -> bool {
    match r.destination {
        Some(IpAddr::V6(v6)) => !is_link_local(IpAddr::V6(v6)) && !v6.is_multicast(),
        _ => true,
    }
}

/// Renders a route the way `ip route` prints it (without `pref`, flags and cache info).
pub fn route_line(r: &Route) -> String {
    let mut out = Vec::new();
    if r.kind != "unicast" {
        out.push(r.kind.clone());
    }
    let host_len = if r.family == "inet" { 32 } else { 128 };
    out.push(match r.destination {
        None if r.prefix == 0 => "default".to_owned(),
        None => format!("unspecified/{}", r.prefix),
        Some(ip) if r.prefix == host_len => ip.to_string(),
        Some(ip) => format!("{ip}/{}", r.prefix),
    });
    if let Some(gw) = r.gateway {
        out.push("via".to_owned());
        out.push(if is_link_local(gw) { "link-local".to_owned() } else { gw.to_string() });
    }
    if let Some(dev) = &r.dev {
        out.push(format!("dev {dev}"));
    }
    if r.protocol != "boot" {
        out.push(format!("proto {}", r.protocol));
    }
    if r.scope != "global" {
        out.push(format!("scope {}", r.scope));
    }
    if let Some(src) = r.pref_src {
        out.push(format!("src {src}"));
    }
    if let Some(metric) = r.metric.filter(|m| *m != 0) {
        out.push(format!("metric {metric}"));
    }
    out.join(" ")
}
