//! The scenario catalogue, as data: networks, containers, steps and expected reachability.
//!
//! A scenario says *what* should be true; `check` knows *how* to set it up and verify it. Adding
//! a scenario is adding a function here and a line in `tests/scenarios.rs`.

use vethlab_core::Proto;

use crate::lab::ContainerKind::{self, Named, Process};
use crate::runtimes::Flavour;

/// A network created at set-up.
#[derive(Debug, Clone)]
pub struct NetDef {
    pub name: &'static str,
    pub subnet: &'static str,
    pub gateway: Option<&'static str>,
    pub mtu: Option<u32>,
    /// `--internal`: no way out.
    pub internal: bool,
}

/// A container namespace created at set-up.
#[derive(Debug, Clone)]
pub struct CtrDef {
    pub label: String,
    pub id: String,
    pub kind: ContainerKind,
}

/// One step after set-up, in order.
#[derive(Debug, Clone)]
pub enum Step {
    Connect {
        container: String,
        network: &'static str,
        ip: Option<&'static str>,
        ifname: Option<&'static str>,
        /// `-p` mappings.
        ports: Vec<&'static str>,
    },
    /// A connect that must be refused with an error containing `error`, changing nothing.
    ConnectFails {
        container: String,
        network: &'static str,
        error: &'static str,
    },
    Disconnect {
        container: String,
        network: &'static str,
    },
    RemoveNetwork {
        network: &'static str,
        force: bool,
    },
    /// Continue with a new runtime on the same state, as a new `vethlab` process would.
    Reload,
}

/// Something a container should (or should not) reach.
#[derive(Debug, Clone)]
pub enum Target {
    Gateway(&'static str),
    Container(String),
}

/// An echo server a scenario starts in a container (by label) or in `upstream`.
#[derive(Debug, Clone)]
pub struct Service {
    pub at: String,
    pub proto: Proto,
    pub port: u16,
}

/// Where a published port is reached on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAddr {
    /// The host's uplink address, as another machine would use it.
    Uplink,
    /// `127.0.0.1`, from the host itself.
    Loopback,
}

/// A check that involves the outside world (the lab's `upstream` namespace) or published ports.
#[derive(Debug, Clone)]
pub enum Probe {
    /// `from` echoes through the upstream server on `port`, and upstream must see the host's
    /// uplink address as the source: masquerade proven, not assumed.
    Masquerade { from: String, proto: Proto, port: u16 },
    /// `from` (`upstream` or `host`) echoes through `to:port`, served by a container's service.
    Published { from: &'static str, to: HostAddr, port: u16, proto: Proto },
    /// `from` cannot reach upstream at all.
    NoWayOut { from: String },
}

/// What the snapshot covers: everything, or only the host (for scenarios with many containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotScope {
    All,
    HostOnly,
}

/// A documented way in which a peer runtime differs from vethlab; the conformance runner accepts
/// it (and shows it in the report) instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The bridge stays after its last container is detached.
    BridgeKept,
    /// The host end of the veth has the runtime's own (random) name, not vethlab's `ID[:5]`.
    HostVethNamed,
    /// An attach that must fail fails with the runtime's own message.
    ErrorText,
    /// `net.ipv4.ip_forward` is switched on in the host namespace and left on.
    ForwardingEnabled,
    /// Firewall tables or chains stay in the host namespace after the last detach.
    FirewallKept,
    /// A container on an internal network gets no default route (vethlab keeps it: the gateway
    /// is still reachable, only nothing beyond it).
    NoRouteWhenInternal,
}

/// One known behaviour of one flavour of runtime, with a note for the report.
#[derive(Debug, Clone)]
pub struct Known {
    pub flavour: Flavour,
    pub behaviour: Behaviour,
    pub note: &'static str,
}

/// What every scenario accepts from the peers.
fn common_known() -> Vec<Known> {
    vec![
        Known {
            flavour: Flavour::CniBridge,
            behaviour: Behaviour::BridgeKept,
            note: "the CNI bridge plugin never deletes the bridge (DEL leaves it for the next ADD)",
        },
        Known {
            flavour: Flavour::CniBridge,
            behaviour: Behaviour::HostVethNamed,
            note: "host veth named vethXXXXXXXX (random), normalised in snapshots",
        },
        Known {
            flavour: Flavour::CniBridge,
            behaviour: Behaviour::ForwardingEnabled,
            note: "isGateway switches net.ipv4.ip_forward on and leaves it on",
        },
        Known {
            flavour: Flavour::Netavark,
            behaviour: Behaviour::ForwardingEnabled,
            note: "switches net.ipv4.ip_forward on and leaves it on",
        },
        Known {
            flavour: Flavour::CniBridge,
            behaviour: Behaviour::FirewallKept,
            note: "ipMasq leaves table ip nat with an empty POSTROUTING chain (iptables-nft) after the last DEL",
        },
        Known {
            flavour: Flavour::Netavark,
            behaviour: Behaviour::FirewallKept,
            note: "leaves its NETAVARK chains and the jumps to them in tables ip nat and ip filter (iptables-nft)",
        },
        Known {
            flavour: Flavour::Netavark,
            behaviour: Behaviour::NoRouteWhenInternal,
            note: "an internal network gives its containers no default route",
        },
        Known {
            flavour: Flavour::Netavark,
            behaviour: Behaviour::HostVethNamed,
            note: "host veth named by the kernel (vethN), normalised in snapshots",
        },
    ]
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub networks: Vec<NetDef>,
    pub containers: Vec<CtrDef>,
    pub steps: Vec<Step>,
    pub reachable: Vec<(String, Target)>,
    pub unreachable: Vec<(String, Target)>,
    pub snapshot: SnapshotScope,
    /// Known differences of peer runtimes in this scenario (see `conformance`).
    pub known: Vec<Known>,
    /// Echo servers started before the probes.
    pub services: Vec<Service>,
    /// Checks against upstream and published ports; any of them gives the lab an upstream.
    pub probes: Vec<Probe>,
}

fn net(name: &'static str, subnet: &'static str) -> NetDef {
    NetDef { name, subnet, gateway: None, mtu: None, internal: false }
}

fn ctr(label: &str, id: &str, kind: ContainerKind) -> CtrDef {
    CtrDef { label: label.into(), id: id.into(), kind }
}

fn connect(container: &str, network: &'static str) -> Step {
    Step::Connect { container: container.into(), network, ip: None, ifname: None, ports: vec![] }
}

fn gw(from: &str, network: &'static str) -> (String, Target) {
    (from.into(), Target::Gateway(network))
}

fn to(from: &str, other: &str) -> (String, Target) {
    (from.into(), Target::Container(other.into()))
}

impl Scenario {
    /// Whether the lab needs its upstream namespace (probes or a service out there).
    pub fn needs_upstream(&self) -> bool {
        !self.probes.is_empty() || self.services.iter().any(|s| s.at == "upstream")
    }

    /// The gateway a `Target::Gateway` network has by definition (usable after it is removed).
    pub fn defined_gateway(&self, target: &Target) -> anyhow::Result<std::net::Ipv4Addr> {
        let Target::Gateway(name) = target else { anyhow::bail!("{target:?} is not a gateway") };
        let def = self
            .networks
            .iter()
            .find(|n| n.name == *name)
            .ok_or_else(|| anyhow::anyhow!("unknown network {name}"))?;
        Ok(crate::runtimes::NetSpec::from_def(def)?.effective_gateway())
    }

    fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            description,
            networks: vec![],
            containers: vec![],
            steps: vec![],
            reachable: vec![],
            unreachable: vec![],
            snapshot: SnapshotScope::All,
            known: common_known(),
            services: vec![],
            probes: vec![],
        }
    }
}

/// Every scenario, in catalogue order.
pub fn catalogue() -> Vec<Scenario> {
    vec![
        seed(),
        two_containers_one_bridge(),
        two_networks(),
        disconnect_one_of_two(),
        network_remove(),
        ipam_order_and_reuse(),
        exhaustion_of_a_29(),
        static_ip(),
        custom_mtu_and_ifname(),
        state_reload(),
        fifty_containers(),
        masquerade_to_upstream(),
        published_ports(),
        internal_network(),
        networks_isolated(),
    ]
}

/// Looks a scenario up by name.
pub fn by_name(name: &str) -> Scenario {
    catalogue().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no scenario named {name:?}"))
}

/// The seed's topology: zdocker0 at 192.168.1.1/24, container a1b2c3d4e5f6 as a1b2c/cif-a1b2c.
pub fn seed() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("c1", "a1b2c3d4e5f6", Process)],
        steps: vec![connect("c1", "zdocker0")],
        reachable: vec![gw("c1", "zdocker0"), gw("host", "zdocker0"), to("host", "c1")],
        ..Scenario::new(
            "seed",
            "zdocker's seed: bridge zdocker0 192.168.1.1/24, veth a1b2c <-> cif-a1b2c at .2",
        )
    }
}

pub fn two_containers_one_bridge() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("c1", "a1b2c3d4e5f6", Process), ctr("c2", "f6e5d4c3b2a1", Named)],
        steps: vec![connect("c1", "zdocker0"), connect("c2", "zdocker0")],
        reachable: vec![gw("c1", "zdocker0"), gw("c2", "zdocker0"), to("c1", "c2"), to("c2", "c1")],
        ..Scenario::new(
            "two_containers_one_bridge",
            "two containers on one bridge get .2 and .3 and reach each other",
        )
    }
}

pub fn two_networks() -> Scenario {
    Scenario {
        networks: vec![net("blue", "10.10.0.0/24"), net("green", "10.20.0.0/16")],
        containers: vec![ctr("c1", "blue00001", Named), ctr("c2", "gr0000001", Process)],
        steps: vec![connect("c1", "blue"), connect("c2", "green")],
        reachable: vec![gw("c1", "blue"), gw("c2", "green")],
        ..Scenario::new("two_networks", "two bridges, one container each, each with its own gateway")
    }
}

pub fn disconnect_one_of_two() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("c1", "aaaaa11111", Process), ctr("c2", "bbbbb22222", Named)],
        steps: vec![
            connect("c1", "zdocker0"),
            connect("c2", "zdocker0"),
            Step::Disconnect { container: "c1".into(), network: "zdocker0" },
        ],
        reachable: vec![gw("c2", "zdocker0")],
        unreachable: vec![gw("c1", "zdocker0")],
        ..Scenario::new(
            "disconnect_one_of_two",
            "disconnecting c1 removes its veth pair and leaves c2 untouched",
        )
    }
}

pub fn network_remove() -> Scenario {
    Scenario {
        networks: vec![net("keep", "10.1.0.0/24"), net("gone", "10.2.0.0/24")],
        containers: vec![ctr("c1", "keep00001", Named), ctr("c2", "gone00001", Process)],
        steps: vec![
            connect("c1", "keep"),
            connect("c2", "gone"),
            Step::RemoveNetwork { network: "gone", force: true },
        ],
        reachable: vec![gw("c1", "keep")],
        unreachable: vec![gw("c2", "gone")],
        ..Scenario::new(
            "network_remove",
            "rm --force disconnects gone's endpoint and deletes its bridge; keep is untouched",
        )
    }
}

pub fn ipam_order_and_reuse() -> Scenario {
    Scenario {
        networks: vec![net("pool", "172.28.0.0/24")],
        containers: ["a", "b", "c", "d"]
            .iter()
            .map(|x| ctr(x, &format!("{x}{x}{x}{x}{x}1"), Named))
            .collect(),
        steps: vec![
            connect("a", "pool"),
            connect("b", "pool"),
            connect("c", "pool"),
            Step::Disconnect { container: "b".into(), network: "pool" },
            connect("d", "pool"),
        ],
        reachable: vec![to("a", "d"), to("d", "c"), gw("d", "pool")],
        ..Scenario::new(
            "ipam_order_and_reuse",
            "a=.2 b=.3 c=.4; b leaves; d gets the lowest free address, .3",
        )
    }
}

pub fn exhaustion_of_a_29() -> Scenario {
    let labels = ["c1", "c2", "c3", "c4", "c5"];
    let mut steps: Vec<Step> = labels.iter().map(|l| connect(l, "tiny")).collect();
    steps.push(Step::ConnectFails {
        container: "c6".into(),
        network: "tiny",
        error: "network tiny: subnet 10.99.0.0/29 is exhausted (5 container addresses, all in use)",
    });
    Scenario {
        networks: vec![net("tiny", "10.99.0.0/29")],
        containers: labels.iter().chain(&["c6"]).map(|l| ctr(l, &format!("{l}tiny"), Named)).collect(),
        steps,
        reachable: labels.iter().map(|l| gw(l, "tiny")).collect(),
        unreachable: vec![gw("c6", "tiny")],
        known: [
            common_known(),
            vec![Known {
                flavour: Flavour::CniBridge,
                behaviour: Behaviour::ErrorText,
                note: "host-local refuses the sixth with its own message (no IP addresses available)",
            }],
        ]
        .concat(),
        ..Scenario::new(
            "exhaustion_of_a_29",
            "a /29 holds the gateway and five containers; the sixth is refused",
        )
    }
}

pub fn static_ip() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("c1", "static0001", Named), ctr("c2", "dynamic001", Process)],
        steps: vec![
            Step::Connect {
                ports: vec![],
                container: "c1".into(),
                network: "zdocker0",
                ip: Some("192.168.1.200"),
                ifname: None,
            },
            connect("c2", "zdocker0"),
        ],
        reachable: vec![to("c2", "c1"), gw("c1", "zdocker0")],
        ..Scenario::new(
            "static_ip",
            "--ip 192.168.1.200 is honoured and does not disturb lowest-free order (c2 gets .2)",
        )
    }
}

pub fn custom_mtu_and_ifname() -> Scenario {
    Scenario {
        networks: vec![NetDef {
            mtu: Some(1400),
            gateway: Some("10.5.0.254"),
            ..net("mtu1400", "10.5.0.0/24")
        }],
        containers: vec![ctr("c1", "mtu000001", Named)],
        steps: vec![Step::Connect {
            ports: vec![],
            container: "c1".into(),
            network: "mtu1400",
            ip: None,
            ifname: Some("eth0"),
        }],
        reachable: vec![gw("c1", "mtu1400")],
        ..Scenario::new(
            "custom_mtu_and_ifname",
            "--mtu 1400 on bridge and both veth ends, --gateway .254, --ifname eth0 inside the container",
        )
    }
}

pub fn state_reload() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("c1", "before001", Process), ctr("c2", "after0001", Named)],
        steps: vec![connect("c1", "zdocker0"), Step::Reload, connect("c2", "zdocker0")],
        reachable: vec![to("c1", "c2"), gw("c2", "zdocker0")],
        ..Scenario::new(
            "state_reload",
            "a new runtime reads the state: c2 gets .3 and the default route via .1",
        )
    }
}

pub fn fifty_containers() -> Scenario {
    let labels: Vec<String> = (1..=50).map(|i| format!("c{i:02}")).collect();
    Scenario {
        networks: vec![net("big", "10.50.0.0/24")],
        containers: labels
            .iter()
            .enumerate()
            .map(|(i, l)| ctr(l, &format!("big{i:02}xx"), if i % 2 == 0 { Process } else { Named }))
            .collect(),
        steps: labels.iter().map(|l| connect(l, "big")).collect(),
        reachable: labels.iter().map(|l| gw(l, "big")).chain([to("c01", "c50")]).collect(),
        snapshot: SnapshotScope::HostOnly,
        ..Scenario::new("fifty_containers", "50 containers on one bridge, all reaching the gateway")
    }
}

/// Upstream's echo server, standing for the internet.
const UPSTREAM_PORT: u16 = 7;

pub fn masquerade_to_upstream() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("c1", "a1b2c3d4e5f6", Process)],
        steps: vec![connect("c1", "zdocker0")],
        services: vec![
            Service { at: "upstream".into(), proto: Proto::Tcp, port: UPSTREAM_PORT },
            Service { at: "upstream".into(), proto: Proto::Udp, port: UPSTREAM_PORT },
        ],
        probes: vec![
            Probe::Masquerade { from: "c1".into(), proto: Proto::Tcp, port: UPSTREAM_PORT },
            Probe::Masquerade { from: "c1".into(), proto: Proto::Udp, port: UPSTREAM_PORT },
        ],
        ..Scenario::new(
            "masquerade_to_upstream",
            "c1 reaches upstream over TCP and UDP and upstream sees the host's uplink address: masquerade, ip_forward on",
        )
    }
}

pub fn published_ports() -> Scenario {
    Scenario {
        networks: vec![net("zdocker0", "192.168.1.0/24")],
        containers: vec![ctr("web", "web000001", Named)],
        steps: vec![Step::Connect {
            container: "web".into(),
            network: "zdocker0",
            ip: None,
            ifname: None,
            ports: vec!["8080:80/tcp", "8080:80/udp"],
        }],
        services: vec![
            Service { at: "web".into(), proto: Proto::Tcp, port: 80 },
            Service { at: "web".into(), proto: Proto::Udp, port: 80 },
        ],
        probes: vec![
            Probe::Published { from: "upstream", to: HostAddr::Uplink, port: 8080, proto: Proto::Tcp },
            Probe::Published { from: "upstream", to: HostAddr::Uplink, port: 8080, proto: Proto::Udp },
            Probe::Published { from: "host", to: HostAddr::Loopback, port: 8080, proto: Proto::Tcp },
        ],
        ..Scenario::new(
            "published_ports",
            "-p 8080:80/tcp and /udp: upstream reaches host:8080 -> web:80, the host reaches 127.0.0.1:8080",
        )
    }
}

pub fn internal_network() -> Scenario {
    Scenario {
        networks: vec![NetDef { internal: true, ..net("vault", "10.66.0.0/24") }],
        containers: vec![ctr("c1", "vlt000001", Named)],
        steps: vec![connect("c1", "vault")],
        reachable: vec![gw("c1", "vault")],
        probes: vec![Probe::NoWayOut { from: "c1".into() }],
        ..Scenario::new(
            "internal_network",
            "--internal: c1 reaches its gateway but nothing beyond; no masquerade",
        )
    }
}

pub fn networks_isolated() -> Scenario {
    Scenario {
        networks: vec![net("blue", "10.10.0.0/24"), net("green", "10.20.0.0/24")],
        containers: vec![
            ctr("b1", "blue00001", Named),
            ctr("b2", "bl2000002", Process),
            ctr("g1", "gr0000001", Named),
        ],
        steps: vec![connect("b1", "blue"), connect("b2", "blue"), connect("g1", "green")],
        reachable: vec![to("b1", "b2"), gw("g1", "green")],
        unreachable: vec![to("b1", "g1"), to("g1", "b2")],
        ..Scenario::new(
            "networks_isolated",
            "blue and green are isolated from each other; b1 and b2 share blue",
        )
    }
}
