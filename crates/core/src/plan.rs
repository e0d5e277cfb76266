//! Plans: the kernel state an operation must create, computed from a validated request and the
//! current state without touching the kernel.
//!
//! The runtime executes these plans and `vethlab-verify` compares the kernel with them, so
//! "what a network looks like" is written down once, here.

use std::net::Ipv4Addr;

use serde::Serialize;
use thiserror::Error;

use crate::ipam::IpamError;
use crate::mac::MacAddr;
use crate::name::{ContainerId, IfName, NetworkName};
use crate::port::PortMapping;
use crate::spec::{EndpointSpec, Mtu, NetworkSpec};
use crate::state::{EndpointRecord, NetworkRecord, State, StateError};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("network {0} already exists")]
    NetworkExists(NetworkName),
    #[error("network {0} does not exist")]
    NoSuchNetwork(NetworkName),
    #[error("network {network}: subnet {subnet} overlaps network {other} ({other_subnet})")]
    SubnetOverlap {
        network: NetworkName,
        subnet: crate::Subnet,
        other: NetworkName,
        other_subnet: crate::Subnet,
    },
    #[error("network {network}: container {container} is already connected")]
    AlreadyConnected { network: NetworkName, container: ContainerId },
    #[error(
        "network {network}: host interface {ifname} for container {container} is already used by endpoint {holder} on network {holder_network} (container ids share their first 5 characters)"
    )]
    HostIfnameInUse {
        network: NetworkName,
        container: ContainerId,
        ifname: IfName,
        holder: ContainerId,
        holder_network: NetworkName,
    },
    #[error("network {network}: {count} endpoint(s) still attached ({list}); disconnect them or use --force")]
    EndpointsAttached { network: NetworkName, count: usize, list: String },
    #[error(
        "network {network}: host interface {ifname} for container {container} would clash with the bridge of network {ifname}"
    )]
    HostIfnameIsBridge { network: NetworkName, container: ContainerId, ifname: IfName },
    #[error(
        "network {network}: its bridge name is already the host interface of endpoint {holder} on network {holder_network}"
    )]
    BridgeIsHostIfname { network: NetworkName, holder: ContainerId, holder_network: NetworkName },
    #[error(
        "network {network}: port mapping {mapping} clashes with {other} of container {holder} on network {holder_network}"
    )]
    PortConflict {
        network: NetworkName,
        mapping: PortMapping,
        other: PortMapping,
        holder: ContainerId,
        holder_network: NetworkName,
    },
    #[error("network {0} is internal (no way in or out): it cannot publish ports")]
    PortsOnInternal(NetworkName),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// An address with its prefix length, as `ip addr` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IfAddr {
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

/// The bridge of a network: `ip link add NAME address MAC [mtu N] up type bridge; ip addr add
/// GW/P dev NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPlan {
    pub bridge: IfName,
    /// Set explicitly so the bridge keeps it; otherwise it adopts its lowest port's MAC and
    /// changes whenever ports come and go.
    pub mac: MacAddr,
    pub mtu: Option<Mtu>,
    pub address: IfAddr,
    pub record: NetworkRecord,
}

/// The default route of a container: `ip route add default via GW dev IFNAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    pub gateway: Ipv4Addr,
    pub device: IfName,
}

/// One container's attachment: `ip link add HOST master BRIDGE up type veth peer name PEER netns
/// NS address MAC`, then inside NS: `ip addr add IP/P dev PEER; ip link set lo up; ip link set
/// PEER up; ip route add default via GW`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointPlan {
    pub bridge: IfName,
    pub host_ifname: IfName,
    pub peer_ifname: IfName,
    pub peer_mac: MacAddr,
    pub mtu: Option<Mtu>,
    pub address: IfAddr,
    pub default_route: RoutePlan,
    /// What is stored once the plan has been applied.
    pub record: EndpointRecord,
}

/// Plans `network create`.
pub fn plan_network(state: &State, spec: NetworkSpec) -> Result<NetworkPlan, PlanError> {
    if state.network(&spec.name).is_some() {
        return Err(PlanError::NetworkExists(spec.name));
    }
    // Bridges and host veth ends share the host's interface namespace.
    if let Some(holder) = state.endpoint_by_host_ifname(spec.name.bridge()) {
        return Err(PlanError::BridgeIsHostIfname {
            network: spec.name,
            holder: holder.container.clone(),
            holder_network: holder.network.clone(),
        });
    }
    if let Some(other) = state.networks().find(|n| n.spec.subnet.overlaps(&spec.subnet)) {
        return Err(PlanError::SubnetOverlap {
            network: spec.name,
            subnet: spec.subnet,
            other: other.spec.name.clone(),
            other_subnet: other.spec.subnet,
        });
    }
    Ok(NetworkPlan {
        bridge: spec.name.bridge().clone(),
        mac: MacAddr::from_ipv4(spec.gateway),
        mtu: spec.mtu,
        address: IfAddr { ip: spec.gateway, prefix: spec.subnet.prefix() },
        record: NetworkRecord::new(spec),
    })
}

/// Plans `connect`: allocates the address (lowest free or the requested one) and names.
pub fn plan_connect(state: &State, spec: EndpointSpec) -> Result<EndpointPlan, PlanError> {
    let network =
        state.network(&spec.network).ok_or_else(|| PlanError::NoSuchNetwork(spec.network.clone()))?;
    if network.endpoints.contains_key(&spec.container) {
        return Err(PlanError::AlreadyConnected { network: spec.network, container: spec.container });
    }
    let host_ifname = spec.container.host_ifname();
    if let Some(holder) = state.endpoint_by_host_ifname(&host_ifname) {
        return Err(PlanError::HostIfnameInUse {
            network: spec.network,
            container: spec.container,
            ifname: host_ifname,
            holder: holder.container.clone(),
            holder_network: holder.network.clone(),
        });
    }
    if state.networks().any(|n| n.spec.name.bridge() == &host_ifname) {
        return Err(PlanError::HostIfnameIsBridge {
            network: spec.network,
            container: spec.container,
            ifname: host_ifname,
        });
    }
    if !spec.ports.is_empty() && network.spec.internal {
        return Err(PlanError::PortsOnInternal(spec.network));
    }
    for mapping in &spec.ports {
        let holder = state
            .networks()
            .flat_map(|n| n.endpoints.values())
            .find_map(|ep| ep.ports.iter().find(|p| p.conflicts_with(mapping)).map(|p| (ep, *p)));
        if let Some((ep, other)) = holder {
            return Err(PlanError::PortConflict {
                network: spec.network,
                mapping: *mapping,
                other,
                holder: ep.container.clone(),
                holder_network: ep.network.clone(),
            });
        }
    }
    let mut pool = network.pool()?;
    let ip = match spec.ip {
        Some(ip) => {
            pool.allocate_specific(ip, &spec.container)?;
            ip
        }
        None => pool.allocate(&spec.container)?,
    };
    let net = &network.spec;
    let address = IfAddr { ip, prefix: net.subnet.prefix() };
    let peer_mac = MacAddr::from_ipv4(ip);
    let record = EndpointRecord {
        network: net.name.clone(),
        container: spec.container,
        host_ifname: host_ifname.clone(),
        peer_ifname: spec.peer_ifname.clone(),
        address: ip,
        prefix: address.prefix,
        mac: peer_mac,
        netns: spec.netns,
        ports: spec.ports,
    };
    Ok(EndpointPlan {
        bridge: net.name.bridge().clone(),
        host_ifname,
        peer_ifname: spec.peer_ifname.clone(),
        peer_mac,
        mtu: net.mtu,
        address,
        default_route: RoutePlan { gateway: net.gateway, device: spec.peer_ifname },
        record,
    })
}

/// Plans `network rm`: the endpoints to disconnect first (only allowed with `force`).
pub fn plan_remove_network<'a>(
    state: &'a State,
    name: &NetworkName,
    force: bool,
) -> Result<Vec<&'a EndpointRecord>, PlanError> {
    let network = state.network(name).ok_or_else(|| PlanError::NoSuchNetwork(name.clone()))?;
    let endpoints: Vec<_> = network.endpoints.values().collect();
    if !endpoints.is_empty() && !force {
        let list = endpoints.iter().map(|e| e.container.as_str()).collect::<Vec<_>>().join(", ");
        return Err(PlanError::EndpointsAttached { network: name.clone(), count: endpoints.len(), list });
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ConnectRequest, NetworkRequest};

    fn network(name: &str, subnet: &str) -> NetworkSpec {
        NetworkSpec::validate(&NetworkRequest {
            name: name.into(),
            subnet: subnet.into(),
            ..Default::default()
        })
        .expect("valid network")
    }

    fn endpoint(net: &str, id: &str, ip: Option<&str>) -> EndpointSpec {
        EndpointSpec::validate(&ConnectRequest {
            network: net.into(),
            container_id: id.into(),
            ip: ip.map(Into::into),
            ifname: None,
            netns: "/proc/1/ns/net".into(),
            ports: vec![],
        })
        .expect("valid endpoint")
    }

    /// Applies plans to a state the way the runtime does after a successful apply.
    fn with_endpoint(state: &State, plan: &EndpointPlan) -> State {
        let mut records: Vec<_> = state.networks().cloned().collect();
        let net = records.iter_mut().find(|r| r.spec.name == plan.record.network).expect("network");
        net.endpoints.insert(plan.record.container.clone(), plan.record.clone());
        State::new(records).expect("consistent")
    }

    fn seed_state() -> State {
        let plan = plan_network(&State::default(), network("zdocker0", "192.168.1.0/24")).expect("plan");
        State::new([plan.record]).expect("state")
    }

    #[test]
    fn seed_network_plan() {
        let plan = plan_network(&State::default(), network("zdocker0", "192.168.1.0/24")).expect("plan");
        assert_eq!(plan.bridge.as_str(), "zdocker0");
        assert_eq!(plan.address, IfAddr { ip: Ipv4Addr::new(192, 168, 1, 1), prefix: 24 });
        assert_eq!(plan.mac.to_string(), "02:42:c0:a8:01:01");
    }

    #[test]
    fn seed_endpoint_plan() {
        let state = seed_state();
        let plan = plan_connect(&state, endpoint("zdocker0", "a1b2c3d4e5f6", None)).expect("plan");
        assert_eq!(plan.host_ifname.as_str(), "a1b2c");
        assert_eq!(plan.peer_ifname.as_str(), "cif-a1b2c");
        assert_eq!(plan.bridge.as_str(), "zdocker0");
        assert_eq!(plan.address, IfAddr { ip: Ipv4Addr::new(192, 168, 1, 2), prefix: 24 });
        assert_eq!(plan.default_route.gateway, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(plan.default_route.device.as_str(), "cif-a1b2c");
        assert_eq!(plan.peer_mac.to_string(), "02:42:c0:a8:01:02");

        let state = with_endpoint(&state, &plan);
        let second = plan_connect(&state, endpoint("zdocker0", "ffff00001111", None)).expect("plan");
        assert_eq!(second.address.ip, Ipv4Addr::new(192, 168, 1, 3));
    }

    #[test]
    fn refusals_before_side_effects() {
        let state = seed_state();
        let plan = plan_connect(&state, endpoint("zdocker0", "a1b2c3d4e5f6", None)).expect("plan");
        let state = with_endpoint(&state, &plan);

        let again = plan_connect(&state, endpoint("zdocker0", "a1b2c3d4e5f6", None)).expect_err("dup");
        assert_eq!(again.to_string(), "network zdocker0: container a1b2c3d4e5f6 is already connected");

        let clash = plan_connect(&state, endpoint("zdocker0", "a1b2c999", None)).expect_err("clash");
        assert_eq!(
            clash.to_string(),
            "network zdocker0: host interface a1b2c for container a1b2c999 is already used by endpoint a1b2c3d4e5f6 on network zdocker0 (container ids share their first 5 characters)"
        );

        let taken =
            plan_connect(&state, endpoint("zdocker0", "bbbbb", Some("192.168.1.2"))).expect_err("taken");
        assert!(taken.to_string().contains("already assigned to container a1b2c3d4e5f6"), "{taken}");

        let missing = plan_connect(&state, endpoint("nope", "bbbbb", None)).expect_err("missing");
        assert_eq!(missing.to_string(), "network nope does not exist");

        let dup = plan_network(&state, network("zdocker0", "10.0.0.0/24")).expect_err("dup");
        assert_eq!(dup.to_string(), "network zdocker0 already exists");

        let green = plan_network(&state, network("green", "10.20.0.0/16")).expect("green").record;
        let with_green = State::new(state.networks().cloned().chain([green])).expect("state");
        let clash = plan_connect(&with_green, endpoint("green", "green0001", None)).expect_err("bridge name");
        assert_eq!(
            clash.to_string(),
            "network green: host interface green for container green0001 would clash with the bridge of network green"
        );
        let bridge_clash = plan_network(&state, network("a1b2c", "10.0.0.0/24")).expect_err("host ifname");
        assert_eq!(
            bridge_clash.to_string(),
            "network a1b2c: its bridge name is already the host interface of endpoint a1b2c3d4e5f6 on network zdocker0"
        );

        let overlap = plan_network(&state, network("other", "192.168.0.0/16")).expect_err("overlap");
        assert!(overlap.to_string().contains("overlaps network zdocker0"), "{overlap}");

        let busy =
            plan_remove_network(&state, &NetworkName::new("zdocker0").expect("n"), false).expect_err("busy");
        assert!(busy.to_string().contains("a1b2c3d4e5f6"), "{busy}");
        let forced =
            plan_remove_network(&state, &NetworkName::new("zdocker0").expect("n"), true).expect("force");
        assert_eq!(forced.len(), 1);
    }

    #[test]
    fn static_ip_and_exhaustion_of_a_29() {
        let plan = plan_network(&State::default(), network("small", "10.9.0.0/29")).expect("plan");
        let mut state = State::new([plan.record]).expect("state");
        let ep = plan_connect(&state, endpoint("small", "static1", Some("10.9.0.6"))).expect("static");
        state = with_endpoint(&state, &ep);
        let mut got = vec![];
        for n in 0..4 {
            let ep = plan_connect(&state, endpoint("small", &format!("c{n}xxxx"), None)).expect("free");
            got.push(ep.address.ip.to_string());
            state = with_endpoint(&state, &ep);
        }
        assert_eq!(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5"]);
        let full = plan_connect(&state, endpoint("small", "last1", None)).expect_err("full");
        assert_eq!(
            full.to_string(),
            "network small: subnet 10.9.0.0/29 is exhausted (5 container addresses, all in use)"
        );
    }

    #[test]
    fn corrupt_state_is_detected() {
        let state = seed_state();
        let plan = plan_connect(&state, endpoint("zdocker0", "a1b2c3d4e5f6", None)).expect("plan");
        let mut record = state.network(&NetworkName::new("zdocker0").expect("n")).expect("net").clone();
        let mut twin = plan.record.clone();
        twin.container = ContainerId::new("twin000").expect("id");
        twin.host_ifname = IfName::new("twin0").expect("n");
        record.endpoints.insert(plan.record.container.clone(), plan.record.clone());
        record.endpoints.insert(twin.container.clone(), twin);
        let err = State::new([record]).expect_err("same address twice");
        assert!(err.to_string().contains("already assigned"), "{err}");
    }
}
