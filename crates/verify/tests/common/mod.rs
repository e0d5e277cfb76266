//! Shared helpers for the privileged tests: the root check and a two-namespace veth fixture.
#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec, LinkVeth};
use vethlab_runtime::{Netlink, Netns};

/// Whether the test may run. Without root it prints `SKIPPED (needs root): <test>` and returns
/// false, appends `<test>\t<reason>` to `$VETHLAB_SKIP_LOG` if set, and panics if `CI` is set:
/// CI must never silently skip.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let reason = "needs root";
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason}, and CI is set: refusing to skip");
    }
    eprintln!("SKIPPED ({reason}): {test}");
    if let Some(path) = std::env::var_os("VETHLAB_SKIP_LOG") {
        let line = format!("{test}\t{reason}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot append to VETHLAB_SKIP_LOG {}: {e}", path.to_string_lossy());
        }
    }
    false
}

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
