//! What the CLI prints: the `network ls` table and the JSON views of networks and endpoints.

use serde::Serialize;
use vethlab_core::{EndpointRecord, NetworkRecord};

/// `network inspect` and `network ls --format json`.
#[derive(Debug, Serialize)]
pub struct NetworkView<'a> {
    pub name: &'a str,
    pub driver: String,
    pub bridge: &'a str,
    pub subnet: String,
    pub gateway: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub internal: bool,
    pub endpoints: Vec<EndpointView<'a>>,
}

/// One endpoint, as `connect` prints it and `network inspect` lists it.
#[derive(Debug, Serialize)]
pub struct EndpointView<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub host_ifname: &'a str,
    pub ifname: &'a str,
    pub address: String,
    pub gateway: Option<String>,
    pub mac: String,
    pub netns: &'a str,
    /// Published ports as `[HOST_IP:]HOST_PORT:CONTAINER_PORT/PROTO`.
    pub ports: Vec<String>,
}

impl<'a> EndpointView<'a> {
    pub fn new(ep: &'a EndpointRecord, gateway: Option<std::net::Ipv4Addr>) -> Self {
        Self {
            network: ep.network.as_str(),
            container_id: ep.container.as_str(),
            host_ifname: ep.host_ifname.as_str(),
            ifname: ep.peer_ifname.as_str(),
            address: format!("{}/{}", ep.address, ep.prefix),
            gateway: gateway.map(|g| g.to_string()),
            mac: ep.mac.to_string(),
            netns: &ep.netns,
            ports: ep.ports.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl<'a> NetworkView<'a> {
    pub fn new(n: &'a NetworkRecord) -> Self {
        Self {
            name: n.spec.name.as_str(),
            driver: n.spec.driver.to_string(),
            bridge: n.spec.name.bridge().as_str(),
            subnet: n.spec.subnet.to_string(),
            gateway: n.spec.gateway.to_string(),
            mtu: n.spec.mtu.map(|m| m.get()),
            internal: n.spec.internal,
            endpoints: n.endpoints.values().map(|e| EndpointView::new(e, None)).collect(),
        }
    }
}

/// The `network ls` table, columns padded to their widest cell.
pub fn network_table(networks: &[NetworkRecord]) -> String {
    let mut rows = vec![["NAME", "SUBNET", "GATEWAY", "DRIVER", "ENDPOINTS"].map(String::from)];
    for n in networks {
        rows.push([
            n.spec.name.to_string(),
            n.spec.subnet.to_string(),
            n.spec.gateway.to_string(),
            n.spec.driver.to_string(),
            n.endpoints.len().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}
