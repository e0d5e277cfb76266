//! IP address management for one network: lowest free address first, every allocation owned.
//!
//! A [`Pool`] is rebuilt from a network's endpoint records each time it is needed, so there is a
//! single source of truth (the records) and an address cannot stay allocated after its endpoint is
//! gone. The gateway, network and broadcast addresses are never handed out.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::name::{ContainerId, NetworkName};
use crate::subnet::Subnet;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub network: NetworkName,
    pub container: ContainerId,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpamError {
    #[error("network {network}: subnet {subnet} is exhausted ({capacity} container addresses, all in use)")]
    Exhausted { network: NetworkName, subnet: Subnet, capacity: u32 },
    #[error("network {network}: address {ip} is outside subnet {subnet}")]
    OutOfSubnet { network: NetworkName, ip: Ipv4Addr, subnet: Subnet },
    #[error(
        "network {network}: address {ip} is the {what} address of subnet {subnet} and cannot be assigned"
    )]
    Reserved { network: NetworkName, ip: Ipv4Addr, subnet: Subnet, what: &'static str },
    #[error("network {network}: address {ip} is already assigned to container {holder}")]
    Taken { network: NetworkName, ip: Ipv4Addr, holder: ContainerId },
}

/// The addresses of one network's subnet and who holds them.
#[derive(Debug, Clone)]
pub struct Pool {
    network: NetworkName,
    subnet: Subnet,
    gateway: Ipv4Addr,
    /// Keyed by host index, so the lowest free address is found by walking in order.
    allocated: BTreeMap<u32, Owner>,
}

impl Pool {
    /// An empty pool. `gateway` must be a host address of `subnet` (guaranteed by `NetworkSpec`).
    pub fn new(network: NetworkName, subnet: Subnet, gateway: Ipv4Addr) -> Self {
        Self { network, subnet, gateway, allocated: BTreeMap::new() }
    }

    /// Number of addresses containers can get: every host address but the gateway.
    pub fn capacity(&self) -> u32 {
        self.subnet.host_count() - 1
    }

    pub fn len(&self) -> usize {
        self.allocated.len()
    }

    pub fn is_empty(&self) -> bool {
        self.allocated.is_empty()
    }

    /// Hands out the lowest free address to `container`.
    pub fn allocate(&mut self, container: &ContainerId) -> Result<Ipv4Addr, IpamError> {
        let gateway_index = self.subnet.host_index(self.gateway);
        let mut candidate = 0u32;
        // Allocated indexes are visited in ascending order; the first gap (that is not the
        // gateway) is the answer. This is O(allocations), independent of the subnet size.
        for &taken in self.allocated.keys() {
            if Some(candidate) == gateway_index && candidate < taken {
                candidate += 1;
            }
            if candidate < taken {
                break;
            }
            candidate = taken + 1;
        }
        if Some(candidate) == gateway_index {
            candidate += 1;
        }
        let ip = self.subnet.host(candidate).ok_or_else(|| IpamError::Exhausted {
            network: self.network.clone(),
            subnet: self.subnet,
            capacity: self.capacity(),
        })?;
        self.insert(candidate, container);
        Ok(ip)
    }

    /// Reserves a specific address (`--ip`) for `container`.
    pub fn allocate_specific(&mut self, ip: Ipv4Addr, container: &ContainerId) -> Result<(), IpamError> {
        let index = self.check_assignable(ip)?;
        if let Some(holder) = self.allocated.get(&index) {
            return Err(IpamError::Taken {
                network: self.network.clone(),
                ip,
                holder: holder.container.clone(),
            });
        }
        self.insert(index, container);
        Ok(())
    }

    /// Frees `ip`; returns who held it.
    pub fn release(&mut self, ip: Ipv4Addr) -> Option<Owner> {
        self.subnet.host_index(ip).and_then(|i| self.allocated.remove(&i))
    }

    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<&Owner> {
        self.subnet.host_index(ip).and_then(|i| self.allocated.get(&i))
    }

    /// Checks that `ip` is a host address of the subnet other than the gateway.
    fn check_assignable(&self, ip: Ipv4Addr) -> Result<u32, IpamError> {
        let reserved =
            |what| IpamError::Reserved { network: self.network.clone(), ip, subnet: self.subnet, what };
        if !self.subnet.contains(ip) {
            return Err(IpamError::OutOfSubnet { network: self.network.clone(), ip, subnet: self.subnet });
        }
        if ip == self.subnet.network() {
            return Err(reserved("network"));
        }
        if ip == self.subnet.broadcast() {
            return Err(reserved("broadcast"));
        }
        if ip == self.gateway {
            return Err(reserved("gateway"));
        }
        // contains() and not network/broadcast imply a host index exists.
        self.subnet.host_index(ip).ok_or_else(|| reserved("network"))
    }

    fn insert(&mut self, index: u32, container: &ContainerId) {
        let owner = Owner { network: self.network.clone(), container: container.clone() };
        self.allocated.insert(index, owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subnet::{MAX_PREFIX, MIN_PREFIX};

    fn id(n: u32) -> ContainerId {
        ContainerId::new(format!("c{n:08}")).expect("valid id")
    }

    fn pool(cidr: &str) -> Pool {
        let subnet: Subnet = cidr.parse().expect(cidr);
        Pool::new(NetworkName::new("net0").expect("name"), subnet, subnet.default_gateway())
    }

    #[test]
    fn seed_order_starts_at_two() {
        let mut p = pool("192.168.1.0/24");
        assert_eq!(p.allocate(&id(1)), Ok(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(p.allocate(&id(2)), Ok(Ipv4Addr::new(192, 168, 1, 3)));
        assert_eq!(p.owner_of(Ipv4Addr::new(192, 168, 1, 3)).map(|o| &o.container), Some(&id(2)));
    }

    #[test]
    fn release_then_lowest_is_reused() {
        let mut p = pool("192.168.1.0/24");
        for n in 0..5 {
            p.allocate(&id(n)).expect("free");
        }
        assert_eq!(p.release(Ipv4Addr::new(192, 168, 1, 3)).map(|o| o.container), Some(id(1)));
        assert_eq!(p.release(Ipv4Addr::new(192, 168, 1, 3)), None, "double release is a no-op");
        assert_eq!(p.allocate(&id(9)), Ok(Ipv4Addr::new(192, 168, 1, 3)));
        assert_eq!(p.allocate(&id(10)), Ok(Ipv4Addr::new(192, 168, 1, 7)));
    }

    #[test]
    fn gateway_in_the_middle_is_skipped() {
        let subnet: Subnet = "10.0.0.0/29".parse().expect("valid");
        let gw = Ipv4Addr::new(10, 0, 0, 3);
        let mut p = Pool::new(NetworkName::new("n").expect("name"), subnet, gw);
        let got: Vec<_> = (0..5).map(|n| p.allocate(&id(n)).expect("free")).collect();
        let want: Vec<_> = [1, 2, 4, 5, 6].map(|d| Ipv4Addr::new(10, 0, 0, d)).to_vec();
        assert_eq!(got, want);
        assert!(matches!(p.allocate(&id(6)), Err(IpamError::Exhausted { capacity: 5, .. })));
    }

    /// Exhaustion for every prefix small enough to fill: exactly `capacity` addresses, all
    /// distinct, none reserved, then a clear error (never a nil address).
    #[test]
    fn every_small_prefix_fills_exactly() {
        for prefix in 20..=MAX_PREFIX {
            let mut p = pool(&format!("10.0.0.0/{prefix}"));
            let subnet = p.subnet;
            let mut seen = std::collections::HashSet::new();
            for n in 0..p.capacity() {
                let ip = p.allocate(&id(n)).unwrap_or_else(|e| panic!("/{prefix}: {e}"));
                assert!(subnet.host_index(ip).is_some(), "/{prefix}: {ip} is not a host");
                assert_ne!(ip, subnet.default_gateway(), "/{prefix}");
                assert!(seen.insert(ip), "/{prefix}: {ip} handed out twice");
            }
            let err = p.allocate(&id(u32::MAX)).expect_err("full");
            assert!(err.to_string().contains("exhausted"), "/{prefix}: {err}");
        }
    }

    /// Large prefixes: the last address before the broadcast is reachable without walking.
    #[test]
    fn every_large_prefix_ends_before_broadcast() {
        for prefix in MIN_PREFIX..=MAX_PREFIX {
            let mut p = pool(&format!("10.0.0.0/{prefix}"));
            let last = p.subnet.host(p.subnet.host_count() - 1).expect("last host");
            p.allocate_specific(last, &id(1)).expect("last host is assignable");
            assert_eq!(
                p.allocate_specific(p.subnet.broadcast(), &id(2)).map_err(|e| e.to_string()),
                Err(format!(
                    "network net0: address {} is the broadcast address of subnet 10.0.0.0/{prefix} and cannot be assigned",
                    p.subnet.broadcast()
                ))
            );
            if p.capacity() > 1 {
                assert_eq!(p.allocate(&id(3)), Ok(p.subnet.host(1).expect("second host")));
            } else {
                // A /30 has one container address, and the last host is it.
                assert!(matches!(p.allocate(&id(3)), Err(IpamError::Exhausted { capacity: 1, .. })));
            }
        }
    }

    #[test]
    fn specific_address_errors() {
        let mut p = pool("192.168.1.0/24");
        p.allocate_specific(Ipv4Addr::new(192, 168, 1, 50), &id(1)).expect("free");
        let taken = p.allocate_specific(Ipv4Addr::new(192, 168, 1, 50), &id(2)).expect_err("taken");
        assert_eq!(
            taken.to_string(),
            "network net0: address 192.168.1.50 is already assigned to container c00000001"
        );
        let cases = [
            (Ipv4Addr::new(192, 168, 2, 5), "outside subnet"),
            (Ipv4Addr::new(192, 168, 1, 0), "network address"),
            (Ipv4Addr::new(192, 168, 1, 255), "broadcast address"),
            (Ipv4Addr::new(192, 168, 1, 1), "gateway address"),
        ];
        for (ip, why) in cases {
            let err = p.allocate_specific(ip, &id(3)).expect_err("refused").to_string();
            assert!(err.contains(why), "{err}");
        }
        // A static address does not disturb lowest-first order.
        assert_eq!(p.allocate(&id(4)), Ok(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(p.len(), 2);
    }
}
