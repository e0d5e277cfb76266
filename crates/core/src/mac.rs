//! MAC addresses, and the deterministic MAC of a container interface.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC of an interface holding `ip`: `02:42` followed by the address bytes (docker's
    /// scheme). Used for container interfaces and for the bridge (from its gateway address).
    ///
    /// Locally administered and unicast, stable across reconnects, and set at creation so nothing
    /// (udev's `MACAddressPolicy`, or a bridge adopting its lowest port's MAC) changes it later.
    pub fn from_ipv4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        Self([0x02, 0x42, a, b, c, d])
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part =
                parts.next().filter(|p| p.len() == 2).ok_or_else(|| format!("invalid mac address {s:?}"))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| format!("invalid mac address {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid mac address {s:?}"));
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_mac_is_local_unicast_and_round_trips() {
        let mac = MacAddr::from_ipv4(Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(mac.to_string(), "02:42:c0:a8:01:02");
        assert_eq!(mac.0[0] & 0x01, 0, "unicast");
        assert_eq!(mac.0[0] & 0x02, 0x02, "locally administered");
        assert_eq!("02:42:c0:a8:01:02".parse::<MacAddr>(), Ok(mac));
        assert!("02:42:c0:a8:01".parse::<MacAddr>().is_err());
        assert!("02:42:c0:a8:01:02:03".parse::<MacAddr>().is_err());
        assert!("zz:42:c0:a8:01:02".parse::<MacAddr>().is_err());
    }
}
