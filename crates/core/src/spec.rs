//! Requests as users write them, and the validated specs they become.
//!
//! Following netavark, the external shape (plain strings) and the internal model are separate
//! types: a [`NetworkSpec`] can only be built by validating every field of a [`NetworkRequest`],
//! so nothing downstream re-checks.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::name::{ContainerId, IfName, NameError, NetworkName};
use crate::port::{PortError, PortMapping};
use crate::subnet::{Subnet, SubnetError};

/// Smallest MTU IPv4 allows (RFC 791).
pub const MIN_MTU: u32 = 68;
/// Largest MTU a bridge or veth accepts.
pub const MAX_MTU: u32 = 65535;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("network {network}: {source}")]
    Subnet { network: String, source: SubnetError },
    #[error("network {network}: driver {driver:?} is not supported (supported: bridge)")]
    Driver { network: String, driver: String },
    #[error("network {network}: gateway {gateway:?} is not an IPv4 address")]
    GatewaySyntax { network: String, gateway: String },
    #[error("network {network}: gateway {gateway} is not a host address of subnet {subnet}")]
    GatewayOutside { network: String, gateway: Ipv4Addr, subnet: Subnet },
    #[error("network {network}: mtu {mtu} is outside {MIN_MTU}..={MAX_MTU}")]
    Mtu { network: String, mtu: u32 },
    #[error("network {network}: address {ip:?} is not an IPv4 address")]
    IpSyntax { network: String, ip: String },
    #[error("network {network}: {source}")]
    Port { network: String, source: PortError },
    #[error("network {network}: port mappings {first} and {second} claim the same host port")]
    PortTwice { network: String, first: PortMapping, second: PortMapping },
}

/// The only driver so far; kept as an enum so `--driver` is validated, not ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Bridge,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bridge")
    }
}

/// A validated MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Mtu(u32);

impl Mtu {
    pub fn new(mtu: u32) -> Option<Self> {
        (MIN_MTU..=MAX_MTU).contains(&mtu).then_some(Self(mtu))
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Mtu {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        Mtu::new(v).ok_or_else(|| format!("mtu {v} is outside {MIN_MTU}..={MAX_MTU}"))
    }
}

impl From<Mtu> for u32 {
    fn from(m: Mtu) -> u32 {
        m.0
    }
}

/// `vethlab network create` as the user typed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRequest {
    pub name: String,
    pub driver: Option<String>,
    pub subnet: String,
    pub gateway: Option<String>,
    pub mtu: Option<u32>,
    /// No way out: no masquerade, no forwarding to or from other interfaces.
    pub internal: bool,
}

/// A network that passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub name: NetworkName,
    pub driver: Driver,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Mtu>,
    #[serde(default)]
    pub internal: bool,
}

impl NetworkSpec {
    /// Validates every field; the first error names the network and the field.
    pub fn validate(req: &NetworkRequest) -> Result<Self, SpecError> {
        let name = NetworkName::new(req.name.clone())?;
        let network = || req.name.clone();
        let driver = match req.driver.as_deref() {
            None | Some("bridge") => Driver::Bridge,
            Some(other) => return Err(SpecError::Driver { network: network(), driver: other.to_owned() }),
        };
        let subnet = Subnet::from_str(&req.subnet)
            .map_err(|source| SpecError::Subnet { network: network(), source })?;
        let gateway = match &req.gateway {
            None => subnet.default_gateway(),
            Some(g) => {
                let gateway: Ipv4Addr = g
                    .parse()
                    .map_err(|_| SpecError::GatewaySyntax { network: network(), gateway: g.clone() })?;
                if subnet.host_index(gateway).is_none() {
                    return Err(SpecError::GatewayOutside { network: network(), gateway, subnet });
                }
                gateway
            }
        };
        let mtu = match req.mtu {
            None => None,
            Some(m) => Some(Mtu::new(m).ok_or(SpecError::Mtu { network: network(), mtu: m })?),
        };
        Ok(Self { name, driver, subnet, gateway, mtu, internal: req.internal })
    }
}

/// `vethlab connect` as the user typed it. `netns` is only a label for the records (a path or
/// `pid:N`); opening the namespace is the runtime's job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    pub network: String,
    pub container_id: String,
    pub ip: Option<String>,
    pub ifname: Option<String>,
    pub netns: String,
    /// `-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`, repeatable.
    pub ports: Vec<String>,
}

/// The validated fields of a [`ConnectRequest`] that do not depend on state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub network: NetworkName,
    pub container: ContainerId,
    pub ip: Option<Ipv4Addr>,
    pub peer_ifname: IfName,
    pub netns: String,
    pub ports: Vec<PortMapping>,
}

impl EndpointSpec {
    pub fn validate(req: &ConnectRequest) -> Result<Self, SpecError> {
        let network = NetworkName::new(req.network.clone())?;
        let container = ContainerId::new(req.container_id.clone())?;
        let ip = match &req.ip {
            None => None,
            Some(ip) => Some(
                ip.parse()
                    .map_err(|_| SpecError::IpSyntax { network: req.network.clone(), ip: ip.clone() })?,
            ),
        };
        let peer_ifname = match &req.ifname {
            None => container.default_peer_ifname(),
            Some(n) => IfName::new(n.clone())?,
        };
        let mut ports: Vec<PortMapping> = Vec::new();
        for p in &req.ports {
            let mapping: PortMapping =
                p.parse().map_err(|source| SpecError::Port { network: req.network.clone(), source })?;
            // Two mappings of one request that claim the same host port are as wrong as a clash
            // with another container.
            if let Some(first) = ports.iter().find(|m| m.conflicts_with(&mapping)) {
                return Err(SpecError::PortTwice {
                    network: req.network.clone(),
                    first: *first,
                    second: mapping,
                });
            }
            ports.push(mapping);
        }
        Ok(Self { network, container, ip, peer_ifname, netns: req.netns.clone(), ports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, subnet: &str) -> NetworkRequest {
        NetworkRequest { name: name.into(), subnet: subnet.into(), ..Default::default() }
    }

    #[test]
    fn seed_network() {
        let spec = NetworkSpec::validate(&req("zdocker0", "192.168.1.0/24")).expect("valid");
        assert_eq!(spec.gateway, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(spec.driver, Driver::Bridge);
        assert_eq!(spec.mtu, None);
    }

    #[test]
    fn errors_name_network_and_field() {
        let cases: Vec<(NetworkRequest, &str)> = vec![
            (req("zdocker0", "192.168.1.0/31"), "network zdocker0: subnet \"192.168.1.0/31\" has prefix /31"),
            (req("sixteen-bytes-xx", "10.0.0.0/24"), "at most 15"),
            (req("a/b", "10.0.0.0/24"), "'/'"),
            (
                NetworkRequest { driver: Some("macvlan".into()), ..req("n", "10.0.0.0/24") },
                "driver \"macvlan\"",
            ),
            (
                NetworkRequest { gateway: Some("10.0.1.1".into()), ..req("n", "10.0.0.0/24") },
                "gateway 10.0.1.1 is not a host address",
            ),
            (
                NetworkRequest { gateway: Some("10.0.0.255".into()), ..req("n", "10.0.0.0/24") },
                "not a host address",
            ),
            (NetworkRequest { gateway: Some("x".into()), ..req("n", "10.0.0.0/24") }, "gateway \"x\""),
            (NetworkRequest { mtu: Some(67), ..req("n", "10.0.0.0/24") }, "mtu 67"),
            (NetworkRequest { mtu: Some(65536), ..req("n", "10.0.0.0/24") }, "mtu 65536"),
        ];
        for (r, want) in cases {
            let err = NetworkSpec::validate(&r).expect_err(want).to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn custom_gateway_and_mtu() {
        let r =
            NetworkRequest { gateway: Some("10.0.0.254".into()), mtu: Some(1400), ..req("n", "10.0.0.0/24") };
        let spec = NetworkSpec::validate(&r).expect("valid");
        assert_eq!(spec.gateway, Ipv4Addr::new(10, 0, 0, 254));
        assert_eq!(spec.mtu.map(Mtu::get), Some(1400));
    }

    #[test]
    fn endpoint_defaults_to_cif_name() {
        let r = ConnectRequest {
            network: "zdocker0".into(),
            container_id: "a1b2c3d4e5f6".into(),
            ..Default::default()
        };
        let ep = EndpointSpec::validate(&r).expect("valid");
        assert_eq!(ep.peer_ifname.as_str(), "cif-a1b2c");
        let r = ConnectRequest { ifname: Some("eth0".into()), ..r };
        assert_eq!(EndpointSpec::validate(&r).expect("valid").peer_ifname.as_str(), "eth0");
        let r2 = ConnectRequest { ports: vec!["8080:80".into(), "8080:81".into()], ..r.clone() };
        let err = EndpointSpec::validate(&r2).expect_err("same host port twice").to_string();
        assert!(err.contains("8080:80/tcp and 8080:81/tcp claim the same host port"), "{err}");
        let r3 = ConnectRequest { ports: vec!["8080:80/sctpx".into()], ..r.clone() };
        assert!(
            EndpointSpec::validate(&r3)
                .expect_err("bad proto")
                .to_string()
                .contains("network zdocker0: port mapping")
        );
        let r = ConnectRequest { ip: Some("192.168.1.300".into()), ..r };
        assert!(EndpointSpec::validate(&r).expect_err("bad ip").to_string().contains("\"192.168.1.300\""));
    }
}
