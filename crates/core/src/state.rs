//! The persisted model: networks and their endpoints, and the checks that keep it consistent.
//!
//! The runtime stores one [`NetworkRecord`] per file; this module only defines the records and
//! validates a set of them as a whole, so a state directory that was edited by hand or damaged is
//! reported instead of silently trusted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ipam::{IpamError, Pool};
use crate::mac::MacAddr;
use crate::name::{ContainerId, IfName, NetworkName};
use crate::port::PortMapping;
use crate::spec::NetworkSpec;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    #[error("network {network}: gateway {gateway} is not a host address of {subnet}")]
    Gateway { network: NetworkName, gateway: Ipv4Addr, subnet: crate::Subnet },
    #[error("network {network}: endpoint stored under {key} belongs to container {container}")]
    KeyMismatch { network: NetworkName, key: ContainerId, container: ContainerId },
    #[error("network {network}: endpoint {container}: {source}")]
    Address { network: NetworkName, container: ContainerId, source: IpamError },
    #[error("host interface {ifname} is recorded for both {first} and {second}")]
    DuplicateHostIfname { ifname: IfName, first: String, second: String },
    #[error("networks {first} and {second} have overlapping subnets")]
    Overlap { first: NetworkName, second: NetworkName },
}

/// One container attached to one network: the allocation record (address and owner) and what
/// was created for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub network: NetworkName,
    pub container: ContainerId,
    pub host_ifname: IfName,
    pub peer_ifname: IfName,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mac: MacAddr,
    /// Where the container's namespace was when it was connected (a path or `pid:N`), for people;
    /// disconnecting never needs it, because deleting the host end removes the pair.
    pub netns: String,
    /// Published ports (`-p`), whose rules live in vethlab's nftables table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
}

/// A network and its endpoints, as stored in `networks/NAME.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    #[serde(flatten)]
    pub spec: NetworkSpec,
    #[serde(default)]
    pub endpoints: BTreeMap<ContainerId, EndpointRecord>,
}

impl NetworkRecord {
    pub fn new(spec: NetworkSpec) -> Self {
        Self { spec, endpoints: BTreeMap::new() }
    }

    /// The address pool as the endpoints leave it.
    pub fn pool(&self) -> Result<Pool, StateError> {
        let spec = &self.spec;
        if spec.subnet.host_index(spec.gateway).is_none() {
            return Err(StateError::Gateway {
                network: spec.name.clone(),
                gateway: spec.gateway,
                subnet: spec.subnet,
            });
        }
        let mut pool = Pool::new(spec.name.clone(), spec.subnet, spec.gateway);
        for (key, ep) in &self.endpoints {
            if *key != ep.container || ep.network != spec.name {
                return Err(StateError::KeyMismatch {
                    network: spec.name.clone(),
                    key: key.clone(),
                    container: ep.container.clone(),
                });
            }
            pool.allocate_specific(ep.address, &ep.container).map_err(|source| StateError::Address {
                network: spec.name.clone(),
                container: ep.container.clone(),
                source,
            })?;
        }
        Ok(pool)
    }
}

/// Every network vethlab manages, validated as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    networks: BTreeMap<NetworkName, NetworkRecord>,
}

impl State {
    /// Checks the records against each other: addresses, unique host interface names, subnets.
    pub fn new(records: impl IntoIterator<Item = NetworkRecord>) -> Result<Self, StateError> {
        let networks: BTreeMap<_, _> = records.into_iter().map(|r| (r.spec.name.clone(), r)).collect();
        let mut host_names: BTreeMap<&IfName, String> = BTreeMap::new();
        for record in networks.values() {
            record.pool()?;
            for ep in record.endpoints.values() {
                let who = format!("endpoint {} on network {}", ep.container, ep.network);
                if let Some(first) = host_names.insert(&ep.host_ifname, who.clone()) {
                    return Err(StateError::DuplicateHostIfname {
                        ifname: ep.host_ifname.clone(),
                        first,
                        second: who,
                    });
                }
            }
        }
        let list: Vec<_> = networks.values().collect();
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if a.spec.subnet.overlaps(&b.spec.subnet) {
                    return Err(StateError::Overlap {
                        first: a.spec.name.clone(),
                        second: b.spec.name.clone(),
                    });
                }
            }
        }
        Ok(Self { networks })
    }

    pub fn network(&self, name: &NetworkName) -> Option<&NetworkRecord> {
        self.networks.get(name)
    }

    pub fn networks(&self) -> impl Iterator<Item = &NetworkRecord> {
        self.networks.values()
    }

    /// The endpoint whose host interface is `ifname`, on any network.
    pub fn endpoint_by_host_ifname(&self, ifname: &IfName) -> Option<&EndpointRecord> {
        self.networks.values().flat_map(|n| n.endpoints.values()).find(|ep| &ep.host_ifname == ifname)
    }
}
