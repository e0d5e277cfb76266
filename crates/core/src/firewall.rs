//! The firewall a set of networks needs, in vethlab's own vocabulary.
//!
//! The whole of vethlab's nftables table is a function of the state: the runtime recomputes this
//! plan after every change and replaces the table in one transaction. So removing a network or an
//! endpoint removes exactly its rules, re-running an operation never duplicates a rule, and
//! nothing outside vethlab's table is ever touched.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::name::IfName;
use crate::port::{PortMapping, Proto};
use crate::state::State;
use crate::subnet::Subnet;

/// Traffic from `subnet` leaving through any interface but `bridge` gets the outgoing
/// interface's address: `ip saddr SUBNET oifname != BRIDGE masquerade`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Masquerade {
    pub subnet: Subnet,
    pub bridge: IfName,
}

/// A published port: `fib daddr type local [ip daddr HOST_IP] PROTO dport HOST_PORT dnat to
/// CONTAINER_IP:CONTAINER_PORT`, in prerouting (from elsewhere) and output (from the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortForward {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub proto: Proto,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
    pub bridge: IfName,
}

/// Everything vethlab's table must hold, plus the host sysctls it relies on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FirewallPlan {
    pub masquerade: Vec<Masquerade>,
    pub forwards: Vec<PortForward>,
    /// Each bridge with the bridges it must not forward to (other networks are isolated).
    pub isolation: Vec<(IfName, Vec<IfName>)>,
    /// Bridges of `--internal` networks: nothing is forwarded to or from them.
    pub internal: Vec<IfName>,
    /// Bridges that need `route_localnet`, so `127.0.0.1:HOST_PORT` can be DNATed to them.
    pub localnet: Vec<IfName>,
    /// Whether `net.ipv4.ip_forward` must be on (some network has a way out).
    pub ip_forward: bool,
}

impl FirewallPlan {
    /// The rules for every network and endpoint in `state`, in a stable order.
    pub fn for_state(state: &State) -> Self {
        let mut plan = FirewallPlan::default();
        let bridges: Vec<&IfName> = state.networks().map(|n| n.spec.name.bridge()).collect();
        for net in state.networks() {
            let bridge = net.spec.name.bridge();
            if net.spec.internal {
                plan.internal.push(bridge.clone());
            } else {
                plan.ip_forward = true;
                plan.masquerade.push(Masquerade { subnet: net.spec.subnet, bridge: bridge.clone() });
            }
            let others: Vec<IfName> =
                bridges.iter().filter(|b| **b != bridge).map(|b| (*b).clone()).collect();
            if !others.is_empty() {
                plan.isolation.push((bridge.clone(), others));
            }
            let mut published = false;
            for ep in net.endpoints.values() {
                for PortMapping { host_ip, host_port, container_port, proto } in &ep.ports {
                    published = true;
                    plan.forwards.push(PortForward {
                        host_ip: *host_ip,
                        host_port: *host_port,
                        proto: *proto,
                        container_ip: ep.address,
                        container_port: *container_port,
                        bridge: bridge.clone(),
                    });
                }
            }
            if published {
                plan.localnet.push(bridge.clone());
            }
        }
        plan
    }

    /// No network at all: vethlab's table should not exist.
    pub fn is_empty(&self) -> bool {
        self.masquerade.is_empty() && self.internal.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan_connect, plan_network};
    use crate::spec::{ConnectRequest, EndpointSpec, NetworkRequest, NetworkSpec};

    fn state_with(nets: &[(&str, &str, bool)], eps: &[(&str, &str, &[&str])]) -> State {
        let mut state = State::default();
        for (name, subnet, internal) in nets {
            let req = NetworkRequest {
                name: (*name).into(),
                subnet: (*subnet).into(),
                internal: *internal,
                ..Default::default()
            };
            let plan = plan_network(&state, NetworkSpec::validate(&req).expect("valid")).expect("plan");
            state = State::new(state.networks().cloned().chain([plan.record])).expect("state");
        }
        for (net, id, ports) in eps {
            let req = ConnectRequest {
                network: (*net).into(),
                container_id: (*id).into(),
                ports: ports.iter().map(|p| (*p).to_owned()).collect(),
                ..Default::default()
            };
            let plan = plan_connect(&state, EndpointSpec::validate(&req).expect("valid")).expect("plan");
            let mut records: Vec<_> = state.networks().cloned().collect();
            let rec = records.iter_mut().find(|r| r.spec.name == plan.record.network).expect("net");
            rec.endpoints.insert(plan.record.container.clone(), plan.record);
            state = State::new(records).expect("state");
        }
        state
    }

    #[test]
    fn empty_state_needs_no_table() {
        let plan = FirewallPlan::for_state(&State::default());
        assert!(plan.is_empty());
        assert!(!plan.ip_forward);
    }

    #[test]
    fn masquerade_isolation_and_forwards() {
        let state = state_with(
            &[
                ("blue", "10.10.0.0/24", false),
                ("green", "10.20.0.0/24", false),
                ("vault", "10.30.0.0/24", true),
            ],
            &[("blue", "web00001", &["8080:80", "127.0.0.1:5353:53/udp"])],
        );
        let plan = FirewallPlan::for_state(&state);
        assert!(plan.ip_forward);
        let masq: Vec<String> =
            plan.masquerade.iter().map(|m| format!("{} !{}", m.subnet, m.bridge)).collect();
        assert_eq!(masq, ["10.10.0.0/24 !blue", "10.20.0.0/24 !green"], "internal networks have no way out");
        assert_eq!(plan.internal.iter().map(|b| b.as_str()).collect::<Vec<_>>(), ["vault"]);
        let iso: Vec<String> = plan
            .isolation
            .iter()
            .map(|(b, o)| format!("{b}->{}", o.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(",")))
            .collect();
        assert_eq!(iso, ["blue->green,vault", "green->blue,vault", "vault->blue,green"]);
        assert_eq!(plan.forwards.len(), 2);
        assert_eq!(plan.forwards[0].container_ip, Ipv4Addr::new(10, 10, 0, 2));
        assert_eq!(plan.localnet.iter().map(|b| b.as_str()).collect::<Vec<_>>(), ["blue"]);
    }

    #[test]
    fn only_internal_networks_need_no_forwarding() {
        let plan = FirewallPlan::for_state(&state_with(&[("vault", "10.30.0.0/24", true)], &[]));
        assert!(!plan.ip_forward);
        assert!(!plan.is_empty(), "the internal network still needs its drop rules");
    }

    #[test]
    fn published_port_conflicts_are_refused() {
        let state = state_with(&[("blue", "10.10.0.0/24", false)], &[("blue", "web00001", &["8080:80"])]);
        let req = ConnectRequest {
            network: "blue".into(),
            container_id: "app00002".into(),
            ports: vec!["10.0.0.1:8080:81".into()],
            ..Default::default()
        };
        let err = plan_connect(&state, EndpointSpec::validate(&req).expect("valid")).expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "network blue: port mapping 10.0.0.1:8080:81/tcp clashes with 8080:80/tcp of container web00001 on network blue"
        );
        let internal = state_with(&[("vault", "10.30.0.0/24", true)], &[]);
        let req = ConnectRequest { network: "vault".into(), ports: vec!["80:80".into()], ..req };
        let err =
            plan_connect(&internal, EndpointSpec::validate(&req).expect("valid")).expect_err("internal");
        assert!(err.to_string().contains("is internal"), "{err}");
    }
}
