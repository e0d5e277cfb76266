//! Shared helpers for the privileged tests: the root check and a two-namespace veth fixture.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};
use vethlab_runtime::{Netlink, Netns};

/// The harness's privilege gate (skip loudly without root, fail under `CI`), shared so every
/// privileged test in the workspace behaves the same.
pub use vethlab_harness::privileges::require_root;

/// Two fresh namespaces `a` and `b` joined by a veth pair `va` (in a) / `vb` (in b), both up,
/// with `lo` up, `A_IP/24` on va and `B_IP/24` on vb. Dropping it drops the namespaces, which
/// destroys the veth with them: nothing outlives the test.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
}

pub const A_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 2);

impl Pair {
    pub async fn new() -> Pair {
        let a = Netns::new_anonymous("test-a").expect("create netns a");
        let b = Netns::new_anonymous("test-b").expect("create netns b");
        let na = Netlink::open(&a).expect("netlink in a");
        let nb = Netlink::open(&b).expect("netlink in b");
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name("vb".to_owned())
            .setns_by_fd(b.as_fd().as_raw_fd())
            .build();
        let veth = LinkVeth::new("va", "vb").up().set_info_data(InfoData::Veth(InfoVeth::Peer(peer))).build();
        na.handle().link().add(veth).execute().await.expect("create veth va/vb");
        for (nl, name, ip) in [(&na, "va", A_IP), (&nb, "vb", B_IP)] {
            let index = nl.index_of(name).await.expect("veth index");
            nl.set_up(index, name).await.expect("veth up");
            nl.add_address(index, name, ip, 24).await.expect("add address");
            let lo = nl.index_of("lo").await.expect("lo index");
            nl.set_up(lo, "lo").await.expect("lo up");
        }
        Pair { a, b }
    }
}

/// A small vethlab-like topology in fresh namespaces: "host" holds bridge `br0`
/// (10.88.0.1/24, IPv4 forwarding on) with ports `vh1`/`vh2`, whose peers are `eth0` in `c1`
/// (10.88.0.2, MAC 02:42:0a:58:00:02) and `c2` (10.88.0.3), each with a default route via the
/// bridge. Dropping it drops every namespace and so every link.
pub struct Bridged {
    pub host: Netns,
    pub c1: Netns,
    pub c2: Netns,
}

pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
pub const C1_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
pub const C2_IP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 3);

impl Bridged {
    pub async fn new() -> Bridged {
        let host = Netns::new_anonymous("test-host").expect("create netns host");
        let c1 = Netns::new_anonymous("test-c1").expect("create netns c1");
        let c2 = Netns::new_anonymous("test-c2").expect("create netns c2");
        let nh = Netlink::open(&host).expect("netlink in host");
        let br = nh.add_bridge("br0", [0x02, 0, 0, 0, 0, 0x01], None).await.expect("create br0");
        nh.set_up(br, "br0").await.expect("br0 up");
        nh.add_address(br, "br0", BRIDGE_IP, 24).await.expect("br0 address");
        host.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
            .expect("enter host")
            .expect("enable ip_forward");
        for (ns, veth, ip) in [(&c1, "vh1", C1_IP), (&c2, "vh2", C2_IP)] {
            let o = ip.octets();
            let mac = [0x02, 0x42, o[0], o[1], o[2], o[3]];
            nh.add_veth(veth, br, "eth0", ns, mac, None).await.expect("create veth");
            let nc = Netlink::open(ns).expect("netlink in container");
            let eth0 = nc.index_of("eth0").await.expect("eth0 index");
            nc.set_up(eth0, "eth0").await.expect("eth0 up");
            nc.add_address(eth0, "eth0", ip, 24).await.expect("eth0 address");
            nc.add_default_route(eth0, "eth0", BRIDGE_IP).await.expect("default route");
            let lo = nc.index_of("lo").await.expect("lo index");
            nc.set_up(lo, "lo").await.expect("lo up");
        }
        Bridged { host, c1, c2 }
    }
}
