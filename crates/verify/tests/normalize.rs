//! Unprivileged: normalisation of a recorded capture (`fixtures/bridged.json`, made by the
//! privileged capture test with `VETHLAB_RECORD_FIXTURE=1`) and of hand-built worlds.

use std::net::{IpAddr, Ipv6Addr};

use vethlab_verify::{Address, Link, NormalizeOptions, NsState, Peer, Route, World, normalize, to_yaml};

fn recorded() -> World {
    serde_json::from_str(include_str!("fixtures/bridged.json")).expect("fixture parses")
}

#[test]
fn recorded_capture_renders_the_recorded_snapshot() {
    let yaml = to_yaml(&normalize(&recorded(), &NormalizeOptions::vethlab()));
    assert_eq!(yaml, include_str!("fixtures/bridged.yaml"));
}

/// The same topology as the kernel might number and address it on another run.
fn renumbered(mut world: World) -> World {
    for (n, ns) in world.namespaces.iter_mut().enumerate() {
        let shift = 40 + 7 * n as u32;
        for link in &mut ns.links {
            link.index += shift;
            if let Some(mac) = &mut link.mac
                && !mac.starts_with("02:42:")
                && mac != "00:00:00:00:00:00"
            {
                *mac = format!("aa:bb:cc:00:{:02x}:{:02x}", n, link.index);
            }
            // Peer indexes and nsids differ too; names and labels are what matter.
            if let Some(peer) = &mut link.peer {
                peer.index += 100;
                peer.nsid = peer.nsid.map(|id| id + 3);
            }
            ns.addresses.push(Address {
                link: link.name.clone(),
                index: link.index,
                address: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1234, n as u16, 0, link.index as u16)),
                prefix: 64,
                scope: "link".to_owned(),
            });
        }
        for addr in &mut ns.addresses {
            addr.index = ns.links.iter().find(|l| l.name == addr.link).map_or(0, |l| l.index);
        }
        for route in &mut ns.routes {
            route.oif = route.oif.map(|i| i + shift);
        }
        // Different dump order, too.
        ns.links.reverse();
        ns.addresses.reverse();
        ns.routes.reverse();
    }
    world
}

#[test]
fn ifindexes_macs_link_local_and_dump_order_do_not_change_the_snapshot() {
    let opts = NormalizeOptions::vethlab();
    let a = to_yaml(&normalize(&recorded(), &opts));
    let b = to_yaml(&normalize(&renumbered(recorded()), &opts));
    assert_eq!(a, b);
    assert!(!a.contains("fe80"), "{a}");
}

#[test]
fn keep_mac_prefixes_and_carrier_are_options() {
    let yaml = to_yaml(&normalize(&recorded(), &NormalizeOptions::default()));
    assert!(!yaml.contains("02:42:"), "container MACs should be tokens without the option:\n{yaml}");
    assert!(!yaml.contains("carrier"), "{yaml}");
    let opts = NormalizeOptions { carrier: true, ..NormalizeOptions::vethlab() };
    let yaml = to_yaml(&normalize(&recorded(), &opts));
    assert!(yaml.contains("mac: 02:42:0a:58:00:02"), "{yaml}");
    assert!(yaml.contains("carrier: true"), "{yaml}");
}

fn link(name: &str, index: u32, kind: Option<&str>) -> Link {
    Link {
        name: name.to_owned(),
        index,
        kind: kind.map(str::to_owned),
        admin_up: true,
        lower_up: true,
        oper_state: "up".to_owned(),
        mtu: Some(1500),
        mac: Some(format!("12:34:56:78:9a:{index:02x}")),
        master: None,
        peer: None,
    }
}

fn route(dest: Option<&str>, prefix: u8, gw: Option<&str>, dev: &str, proto: &str, scope: &str) -> Route {
    let dest: Option<IpAddr> = dest.map(|d| d.parse().expect("ip"));
    let gw: Option<IpAddr> = gw.map(|g| g.parse().expect("ip"));
    let v6 = dest.or(gw).is_some_and(|ip| ip.is_ipv6());
    Route {
        family: if v6 { "inet6" } else { "inet" }.to_owned(),
        destination: dest,
        prefix,
        gateway: gw,
        dev: Some(dev.to_owned()),
        oif: Some(2),
        scope: scope.to_owned(),
        protocol: proto.to_owned(),
        kind: "unicast".to_owned(),
        pref_src: None,
        metric: None,
        table: 254,
    }
}

#[test]
fn hand_built_world_renders_as_documented() {
    let mut veth = link("veth0", 3, Some("veth"));
    veth.admin_up = false;
    veth.peer = Some(Peer { index: 9, nsid: Some(4), netns: None, name: None });
    let mut local = link("x1", 4, Some("veth"));
    local.peer =
        Some(Peer { index: 5, nsid: None, netns: Some("solo".to_owned()), name: Some("x2".to_owned()) });
    let mut src = route(Some("192.168.7.0"), 24, None, "veth0", "kernel", "link");
    src.pref_src = Some("192.168.7.2".parse().expect("ip"));
    let mut v6 = route(Some("fd00:1::"), 64, None, "veth0", "kernel", "global");
    v6.metric = Some(256);
    let mut blackhole = route(Some("10.9.0.0"), 16, None, "lo", "static", "global");
    blackhole.kind = "blackhole".to_owned();
    blackhole.dev = None;
    let world = World {
        namespaces: vec![NsState {
            label: "solo".to_owned(),
            netns: "/run/netns/whatever".to_owned(),
            links: vec![veth, link("lo", 1, None), local],
            addresses: vec![
                Address {
                    link: "veth0".to_owned(),
                    index: 3,
                    address: "fd00:1::2".parse().expect("ip"),
                    prefix: 64,
                    scope: "global".to_owned(),
                },
                Address {
                    link: "veth0".to_owned(),
                    index: 3,
                    address: "192.168.7.2".parse().expect("ip"),
                    prefix: 24,
                    scope: "global".to_owned(),
                },
            ],
            routes: vec![
                v6,
                route(Some("fe80::"), 64, None, "veth0", "kernel", "global"),
                src,
                route(None, 0, Some("fe80::1"), "veth0", "ra", "global"),
                blackhole,
                route(None, 0, Some("192.168.7.1"), "veth0", "static", "global"),
                route(Some("10.1.2.3"), 32, None, "veth0", "boot", "link"),
            ],
            sysctls: [("net.ipv4.ip_forward".to_owned(), "0".to_owned())].into(),
            nftables: vec![],
        }],
    };
    let expected = "\
namespaces:
- netns: solo
  sysctls:
    net.ipv4.ip_forward: '0'
  links:
  - name: lo
    state: up
    mtu: 1500
    mac: xx:xx:xx:xx:xx:xx
  - name: veth0
    kind: veth
    state: down
    mtu: 1500
    mac: xx:xx:xx:xx:xx:xx
    peer: ?@uncaptured
    addresses:
    - 192.168.7.2/24
    - fd00:1::2/64
  - name: x1
    kind: veth
    state: up
    mtu: 1500
    mac: xx:xx:xx:xx:xx:xx
    peer: x2@solo
  routes:
  - default via 192.168.7.1 dev veth0 proto static
  - 10.1.2.3 dev veth0 scope link
  - blackhole 10.9.0.0/16 proto static
  - 192.168.7.0/24 dev veth0 proto kernel scope link src 192.168.7.2
  - default via link-local dev veth0 proto ra
  - fd00:1::/64 dev veth0 proto kernel metric 256
";
    assert_eq!(to_yaml(&normalize(&world, &NormalizeOptions::default())), expected);
}

#[tokio::test(flavor = "current_thread")]
async fn capture_refuses_a_label_given_twice() {
    // Fails before touching netlink, so it needs no privileges.
    let ns = vethlab_runtime::Netns::current().expect("current netns");
    let err = vethlab_verify::capture(&[("x", &ns), ("x", &ns)]).await.expect_err("duplicate label");
    assert_eq!(err.to_string(), "namespace label x is given twice");
}
