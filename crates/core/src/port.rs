//! Port mappings (`-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`), validated.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    #[error("port mapping {0:?} is not [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]")]
    Syntax(String),
    #[error("port mapping {input:?}: {what} port {value:?} is not a number from 1 to 65535")]
    Port { input: String, what: &'static str, value: String },
    #[error("port mapping {input:?}: protocol {proto:?} is not tcp or udp")]
    Proto { input: String, proto: String },
    #[error("port mapping {input:?}: host address {addr:?} is not an IPv4 address")]
    HostIp { input: String, addr: String },
}

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port: traffic to `host_ip:host_port/proto` on the host goes to the container's
/// `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// `None` means every address of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// Whether both would claim the same host port: same protocol and port, and addresses that
    /// overlap (equal, or either one is "every address").
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}:{}/{}", self.host_port, self.container_port, self.proto)
    }
}

fn port(input: &str, what: &'static str, value: &str) -> Result<u16, PortError> {
    let bad = || PortError::Port { input: input.to_owned(), what, value: value.to_owned() };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(bad()),
    }
}

impl FromStr for PortMapping {
    type Err = PortError;

    fn from_str(input: &str) -> Result<Self, PortError> {
        let (ports, proto) = match input.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Proto::Tcp),
            Some((ports, "udp")) => (ports, Proto::Udp),
            Some((_, other)) => return Err(PortError::Proto { input: input.into(), proto: other.into() }),
            None => (input, Proto::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [host, container] => (None, *host, *container),
            [ip, host, container] => {
                let addr = ip
                    .parse()
                    .map_err(|_| PortError::HostIp { input: input.into(), addr: (*ip).to_owned() })?;
                (Some(addr), *host, *container)
            }
            _ => return Err(PortError::Syntax(input.into())),
        };
        Ok(Self {
            host_ip,
            host_port: port(input, "host", host)?,
            container_port: port(input, "container", container)?,
            proto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("8080:80", None, 8080, 80, Proto::Tcp)]
    #[case("8080:80/udp", None, 8080, 80, Proto::Udp)]
    #[case("127.0.0.1:8080:80/tcp", Some(Ipv4Addr::LOCALHOST), 8080, 80, Proto::Tcp)]
    #[case("1:65535", None, 1, 65535, Proto::Tcp)]
    fn valid(
        #[case] s: &str,
        #[case] ip: Option<Ipv4Addr>,
        #[case] hp: u16,
        #[case] cp: u16,
        #[case] proto: Proto,
    ) {
        let m: PortMapping = s.parse().expect(s);
        assert_eq!(m, PortMapping { host_ip: ip, host_port: hp, container_port: cp, proto });
        assert_eq!(m.to_string().parse::<PortMapping>(), Ok(m));
    }

    #[rstest]
    #[case("0:80", "host port \"0\" is not a number from 1 to 65535")]
    #[case("70000:80", "host port \"70000\"")]
    #[case("80", "is not [HOST_IP:]HOST_PORT:CONTAINER_PORT")]
    #[case("a:b", "host port \"a\"")]
    #[case("8080:b", "container port \"b\"")]
    #[case("8080:80/sctpx", "protocol \"sctpx\" is not tcp or udp")]
    #[case("8080:80/", "protocol \"\"")]
    #[case("1.2.3:8080:80", "host address \"1.2.3\"")]
    #[case("1:2:3:4", "is not [HOST_IP:]")]
    #[case("+80:80", "host port \"+80\"")]
    fn invalid(#[case] s: &str, #[case] why: &str) {
        let err = s.parse::<PortMapping>().expect_err(s).to_string();
        assert!(err.contains(why), "{err:?} should contain {why:?}");
    }

    #[test]
    fn conflicts() {
        let p = |s: &str| s.parse::<PortMapping>().expect(s);
        assert!(p("8080:80").conflicts_with(&p("8080:81")));
        assert!(p("8080:80").conflicts_with(&p("10.0.0.1:8080:80")));
        assert!(!p("8080:80").conflicts_with(&p("8080:80/udp")));
        assert!(!p("10.0.0.1:8080:80").conflicts_with(&p("10.0.0.2:8080:80")));
        assert!(!p("8080:80").conflicts_with(&p("8081:80")));
    }
}
