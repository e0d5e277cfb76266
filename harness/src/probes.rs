//! Probes that involve the outside world: echo servers in containers or upstream, masquerade
//! proven by the source address upstream sees, published ports reached from upstream and from the
//! host's loopback, and internal networks with no way out. Shared by `check` and `conformance`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vethlab_runtime::Netns;

use crate::check::lookup;
use crate::lab::{Container, Lab, Upstream};
use crate::scenario::{HostAddr, Probe, Scenario};

/// How long a probe waits for an answer that should come.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe waits before concluding that something is unreachable.
pub const UNREACH_TIMEOUT: Duration = Duration::from_millis(300);

/// Starts the scenario's echo servers, runs its probes, and stops the servers.
pub fn run_all(
    scenario: &Scenario,
    lab: &Lab,
    containers: &BTreeMap<&str, Container>,
    upstream: Option<&Upstream>,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> Result<()> {
    let services = start_services(scenario, containers, upstream)?;
    for probe in &scenario.probes {
        run_probe(probe, lab, containers, upstream, &services, addresses)
            .with_context(|| format!("{probe:?}"))?;
    }
    Ok(())
}

/// An echo server, by where it runs and what it speaks.
type Services = Vec<(String, vethlab_core::Proto, vethlab_verify::EchoServer)>;

fn verify_proto(p: vethlab_core::Proto) -> vethlab_verify::Proto {
    match p {
        vethlab_core::Proto::Tcp => vethlab_verify::Proto::Tcp,
        vethlab_core::Proto::Udp => vethlab_verify::Proto::Udp,
    }
}

pub fn start_services(
    scenario: &Scenario,
    containers: &BTreeMap<&str, Container>,
    upstream: Option<&Upstream>,
) -> Result<Services> {
    let mut services = Vec::new();
    for svc in &scenario.services {
        let ns = match (svc.at.as_str(), upstream) {
            ("upstream", Some(up)) => up.netns(),
            ("upstream", None) => bail!("service upstream needs the lab's upstream"),
            (label, _) => lookup(containers, label)?.netns(),
        };
        let bind = std::net::SocketAddr::from((Ipv4Addr::UNSPECIFIED, svc.port));
        let server = vethlab_verify::EchoServer::start(ns, verify_proto(svc.proto), bind)
            .with_context(|| format!("start {} echo server on {}:{}", svc.proto, svc.at, svc.port))?;
        services.push((svc.at.clone(), svc.proto, server));
    }
    Ok(services)
}

/// One echo round trip over `proto`.
fn echo(ns: &Netns, proto: vethlab_core::Proto, addr: std::net::SocketAddr) -> Result<Duration> {
    let payload = b"vethlab probe";
    Ok(match proto {
        vethlab_core::Proto::Tcp => vethlab_verify::tcp_echo(ns, addr, payload, REACH_TIMEOUT)?,
        vethlab_core::Proto::Udp => vethlab_verify::udp_echo(ns, addr, payload, REACH_TIMEOUT)?,
    })
}

pub fn run_probe(
    probe: &Probe,
    lab: &Lab,
    containers: &BTreeMap<&str, Container>,
    upstream: Option<&Upstream>,
    services: &Services,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> Result<()> {
    let up = upstream.context("probes need the lab's upstream")?;
    match probe {
        Probe::Masquerade { from, proto, port } => {
            let c = lookup(containers, from)?;
            let addr = std::net::SocketAddr::from((Upstream::IP, *port));
            echo(c.netns(), *proto, addr)
                .with_context(|| format!("{from} could not reach upstream {addr}/{proto}"))?;
            let (_, _, server) = services
                .iter()
                .find(|(at, p, _)| at == "upstream" && p == proto)
                .context("no upstream server for the masquerade probe")?;
            let seen: Vec<Ipv4Addr> = server
                .peers()
                .iter()
                .filter_map(|p| match p.ip() {
                    std::net::IpAddr::V4(ip) => Some(ip),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect();
            let own = addresses.get(from).copied();
            if seen.is_empty() || seen.iter().any(|ip| *ip != Upstream::HOST_IP) {
                bail!(
                    "upstream saw {from}'s {proto} traffic from {seen:?}, expected only the host's uplink address {} (container address {own:?}): not masqueraded",
                    Upstream::HOST_IP
                );
            }
        }
        Probe::Published { from, to, port, proto } => {
            let ns = match *from {
                "upstream" => up.netns(),
                "host" => lab.host(),
                other => bail!("published-port probes start from upstream or host, not {other}"),
            };
            let ip = match to {
                HostAddr::Uplink => Upstream::HOST_IP,
                HostAddr::Loopback => Ipv4Addr::LOCALHOST,
            };
            let addr = std::net::SocketAddr::from((ip, *port));
            echo(ns, *proto, addr)
                .with_context(|| format!("{from} could not reach the published port {addr}/{proto}"))?;
        }
        Probe::NoWayOut { from } => {
            let c = lookup(containers, from)?;
            vethlab_verify::assert_unreachable((from, c.netns()), Upstream::IP, UNREACH_TIMEOUT)?;
        }
    }
    Ok(())
}
