//! IPv4 subnets with whole-number arithmetic.
//!
//! zdocker computed addresses byte by byte without carry, so a /16 wrapped after 255 hosts. Here an
//! address is a `u32` and a subnet is a base plus a prefix length; every host index maps to exactly
//! one address and back.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Shortest prefix accepted: a /8 already holds 16 million hosts.
pub const MIN_PREFIX: u8 = 8;
/// Longest prefix accepted: a /30 holds the gateway and one container.
pub const MAX_PREFIX: u8 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubnetError {
    #[error("subnet {0:?} is not an IPv4 CIDR such as 192.168.1.0/24")]
    Invalid(String),
    #[error(
        "subnet {input:?} has prefix /{prefix}; a bridge network needs a prefix from /{MIN_PREFIX} to /{MAX_PREFIX} (room for a gateway and at least one container)"
    )]
    PrefixOutOfRange { input: String, prefix: u8 },
    #[error("subnet {input:?} has host bits set; did you mean {suggestion}?")]
    HostBitsSet { input: String, suggestion: Subnet },
}

/// An IPv4 subnet with a prefix from /8 to /30 and no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

impl Subnet {
    /// Builds a subnet; `base` must have no host bits set.
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Self, SubnetError> {
        let input = format!("{base}/{prefix}");
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&prefix) {
            return Err(SubnetError::PrefixOutOfRange { input, prefix });
        }
        let base = u32::from(base);
        let mask = mask(prefix);
        if base & !mask != 0 {
            let suggestion = Subnet { base: base & mask, prefix };
            return Err(SubnetError::HostBitsSet { input, suggestion });
        }
        Ok(Self { base, prefix })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network address (all host bits zero); never handed out.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The broadcast address (all host bits one); never handed out.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base | !mask(self.prefix))
    }

    /// Number of usable host addresses (network and broadcast excluded).
    pub fn host_count(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The `index`-th host address, counting from 0 (`.1` in a /24), if the subnet has one.
    pub fn host(&self, index: u32) -> Option<Ipv4Addr> {
        (index < self.host_count()).then(|| Ipv4Addr::from(self.base + 1 + index))
    }

    /// Inverse of [`Subnet::host`]: the index of a host address, or `None` if `ip` is not a
    /// usable host of this subnet.
    pub fn host_index(&self, ip: Ipv4Addr) -> Option<u32> {
        let ip = u32::from(ip);
        let offset = ip.checked_sub(self.base)?;
        (offset >= 1 && offset <= self.host_count()).then(|| offset - 1)
    }

    /// Whether `ip` lies in the subnet at all (network and broadcast included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }

    /// Whether two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        (self.base ^ other.base) & mask(shorter) == 0
    }

    /// Default gateway: the first host address, as zdocker did.
    pub fn default_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }
}

fn mask(prefix: u8) -> u32 {
    // prefix is at least MIN_PREFIX, so the shift is always < 32.
    u32::MAX << (32 - u32::from(prefix))
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(input: &str) -> Result<Self, SubnetError> {
        let invalid = || SubnetError::Invalid(input.to_owned());
        let (addr, prefix) = input.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        // Only plain decimal prefixes: "+24" or "024" would be accepted by u8::from_str.
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > 32 {
            return Err(invalid());
        }
        Subnet::new(addr, prefix).map_err(|e| match e {
            SubnetError::PrefixOutOfRange { prefix, .. } => {
                SubnetError::PrefixOutOfRange { input: input.to_owned(), prefix }
            }
            SubnetError::HostBitsSet { suggestion, .. } => {
                SubnetError::HostBitsSet { input: input.to_owned(), suggestion }
            }
            other => other,
        })
    }
}

impl TryFrom<String> for Subnet {
    type Error = SubnetError;
    fn try_from(s: String) -> Result<Self, SubnetError> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn subnet(s: &str) -> Subnet {
        s.parse().expect(s)
    }

    #[test]
    fn seed_subnet() {
        let s = subnet("192.168.1.0/24");
        assert_eq!(s.default_gateway(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(192, 168, 1, 255));
        assert_eq!(s.host_count(), 254);
        assert_eq!(s.host(1), Some(Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(s.host(253), Some(Ipv4Addr::new(192, 168, 1, 254)));
        assert_eq!(s.host(254), None);
    }

    #[test]
    fn sixteen_carries_past_255() {
        // zdocker's byte-wise arithmetic wrapped here.
        let s = subnet("10.1.0.0/16");
        assert_eq!(s.host(255), Some(Ipv4Addr::new(10, 1, 1, 0)));
        assert_eq!(s.host(256), Some(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(s.host(65533), Some(Ipv4Addr::new(10, 1, 255, 254)));
        assert_eq!(s.host(65534), None);
    }

    /// Every accepted prefix: host indexes map to addresses strictly inside the subnet and back.
    #[test]
    fn every_prefix_round_trips() {
        for prefix in MIN_PREFIX..=MAX_PREFIX {
            let s = Subnet::new(Ipv4Addr::new(10, 0, 0, 0), prefix).expect("valid");
            let n = s.host_count();
            assert_eq!(u64::from(n), (1u64 << (32 - prefix)) - 2, "/{prefix}");
            for index in [0, 1, n / 2, n - 2, n - 1] {
                let ip = s.host(index).expect("in range");
                assert!(s.contains(ip), "/{prefix}: {ip}");
                assert_ne!(ip, s.network(), "/{prefix}");
                assert_ne!(ip, s.broadcast(), "/{prefix}");
                assert_eq!(s.host_index(ip), Some(index), "/{prefix}: {ip}");
            }
            assert_eq!(s.host(n), None, "/{prefix}");
            assert_eq!(s.host(u32::MAX), None, "/{prefix}");
            assert_eq!(s.host_index(s.network()), None);
            assert_eq!(s.host_index(s.broadcast()), None);
        }
    }

    #[test]
    fn host_index_outside() {
        let s = subnet("192.168.1.0/24");
        assert_eq!(s.host_index(Ipv4Addr::new(192, 168, 2, 1)), None);
        assert_eq!(s.host_index(Ipv4Addr::new(0, 0, 0, 0)), None);
        assert_eq!(s.host_index(Ipv4Addr::new(255, 255, 255, 255)), None);
    }

    #[rstest]
    #[case("192.168.1.0/31", "from /8 to /30")]
    #[case("192.168.1.1/32", "from /8 to /30")]
    #[case("10.0.0.0/7", "from /8 to /30")]
    #[case("192.168.1.0", "not an IPv4 CIDR")]
    #[case("192.168.1.0/", "not an IPv4 CIDR")]
    #[case("192.168.1.0/33", "not an IPv4 CIDR")]
    #[case("192.168.1.0/+24", "not an IPv4 CIDR")]
    #[case("192.168.1/24", "not an IPv4 CIDR")]
    #[case("fd00::/64", "not an IPv4 CIDR")]
    #[case("banana", "not an IPv4 CIDR")]
    #[case("192.168.1.5/24", "did you mean 192.168.1.0/24")]
    fn invalid_subnets(#[case] input: &str, #[case] why: &str) {
        let err = input.parse::<Subnet>().expect_err(input).to_string();
        assert!(err.contains(why), "{err:?} should mention {why:?}");
        assert!(err.contains(input), "{err:?} should name {input:?}");
    }

    #[test]
    fn overlaps() {
        assert!(subnet("10.0.0.0/8").overlaps(&subnet("10.1.0.0/16")));
        assert!(subnet("10.1.0.0/16").overlaps(&subnet("10.0.0.0/8")));
        assert!(!subnet("10.1.0.0/16").overlaps(&subnet("10.2.0.0/16")));
        assert!(!subnet("192.168.1.0/25").overlaps(&subnet("192.168.1.128/25")));
    }
}
