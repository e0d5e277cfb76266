//! The `netavark:PATH` adapter: podman's network stack, driven as podman drives it — the network
//! options as JSON on stdin, `setup <netns path>` / `teardown <netns path>` — with a private
//! configuration directory. netavark does no IPAM (podman allocates), so this adapter hands out
//! the lowest free address itself and netavark lacks the `ipam` capability.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    AttachRequest, Attachment, BoxFuture, Capability, Flavour, NetSpec, NetworkRuntime, command_in,
    find_host_end, parse_cidr,
};
use crate::lab::{Container, Lab};

#[derive(Debug)]
pub struct Netavark {
    name: String,
    bin: PathBuf,
    scratch: tempfile::TempDir,
    /// Addresses handed out per network, by container id.
    leases: BTreeMap<String, BTreeMap<String, Ipv4Addr>>,
    /// Published ports per (network, container): teardown must be given them again.
    ports: BTreeMap<(String, String), Vec<&'static str>>,
}

impl Netavark {
    pub fn new(bin: PathBuf) -> Result<Self> {
        Ok(Self {
            name: format!("netavark:{}", bin.display()),
            bin,
            scratch: tempfile::Builder::new().prefix("vethlab-netavark-").tempdir()?,
            leases: BTreeMap::new(),
            ports: BTreeMap::new(),
        })
    }

    /// The lowest free host address that is not the gateway, as podman's IPAM would pick.
    fn allocate(&self, net: &NetSpec) -> Result<Ipv4Addr> {
        let used: BTreeSet<Ipv4Addr> =
            self.leases.get(&net.name).map(|l| l.values().copied().collect()).unwrap_or_default();
        let gateway = net.effective_gateway();
        (0..net.subnet.host_count())
            .filter_map(|i| net.subnet.host(i))
            .find(|ip| *ip != gateway && !used.contains(ip))
            .with_context(|| format!("network {}: subnet {} is exhausted", net.name, net.subnet))
    }

    /// podman's network options for one container on one network.
    fn options(
        net: &NetSpec,
        container_id: &str,
        label: &str,
        ifname: &str,
        ip: Ipv4Addr,
        ports: &[&str],
    ) -> Result<Value> {
        let port_mappings = ports.iter().map(|p| port_mapping(p)).collect::<Result<Vec<_>>>()?;
        let mut info = json!({
            "name": net.name, "id": format!("{:0>64}", net.name.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
            "driver": "bridge", "network_interface": net.name,
            "subnets": [{"subnet": net.subnet.to_string(), "gateway": net.effective_gateway().to_string()}],
            "ipv6_enabled": false, "internal": net.internal, "dns_enabled": false,
            "ipam_options": {"driver": "host-local"},
            // podman's `--opt isolate=true`: no traffic to or from other isolated networks.
            "options": {"isolate": "true"},
        });
        if let Some(m) = net.mtu {
            info["options"]["mtu"] = json!(m.to_string());
        }
        Ok(json!({
            "container_id": container_id,
            "container_name": label,
            "networks": {net.name.as_str(): {"interface_name": ifname, "static_ips": [ip.to_string()]}},
            "network_info": {net.name.as_str(): info},
            "port_mappings": port_mappings,
        }))
    }

    fn exec(&self, lab: &Lab, verb: &str, netns: &str, options: &Value) -> Result<String> {
        let mut cmd = command_in(lab.host(), &self.bin);
        cmd.arg("--config")
            .arg(self.scratch.path())
            .args([verb, netns])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("start netavark {}", self.bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(options.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let msg = serde_json::from_str::<Value>(&stdout)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| {
                    format!("{} {}", stdout.trim(), String::from_utf8_lossy(&out.stderr).trim())
                });
            bail!("netavark {verb} {netns}: {}: {msg}", out.status);
        }
        Ok(stdout)
    }
}

impl NetworkRuntime for Netavark {
    fn name(&self) -> &str {
        &self.name
    }

    fn slug(&self) -> String {
        "netavark".to_owned()
    }

    fn flavour(&self) -> Flavour {
        Flavour::Netavark
    }

    fn capabilities(&self) -> &[Capability] {
        &[
            Capability::StaticAddress,
            Capability::Mtu,
            Capability::CustomGateway,
            Capability::DefaultRoute,
            Capability::Masquerade,
            Capability::PortMapping,
            Capability::Internal,
            Capability::Isolation,
        ]
    }

    fn begin(&mut self, _lab: &Lab) -> Result<()> {
        self.scratch = tempfile::Builder::new().prefix("vethlab-netavark-").tempdir()?;
        self.leases.clear();
        self.ports.clear();
        Ok(())
    }

    fn attach<'a>(&'a mut self, lab: &'a Lab, req: AttachRequest<'a>) -> BoxFuture<'a, Result<Attachment>> {
        Box::pin(async move {
            let net = req.network;
            let ip = match req.ip {
                Some(ip) => ip,
                None => self.allocate(net)?,
            };
            let netns = req.container.path().display().to_string();
            let options =
                Self::options(net, req.container_id, &req.container.label, req.ifname, ip, req.ports)?;
            self.ports.insert((net.name.clone(), req.container_id.to_owned()), req.ports.to_vec());
            let out = self.exec(lab, "setup", &netns, &options)?;
            let status: Value =
                serde_json::from_str(&out).with_context(|| format!("netavark setup output {out:?}"))?;
            let iface = &status[net.name.as_str()]["interfaces"][req.ifname];
            let ipnet = iface["subnets"][0]["ipnet"]
                .as_str()
                .with_context(|| format!("netavark setup output has no address for {}: {out}", req.ifname))?;
            let (address, prefix) = parse_cidr(ipnet)?;
            self.leases.entry(net.name.clone()).or_default().insert(req.container_id.to_owned(), address);
            let host_ifname = find_host_end(lab, &net.name, req.container, req.ifname).await?;
            Ok(Attachment {
                host_ifname,
                ifname: req.ifname.to_owned(),
                address,
                prefix,
                mac: iface["mac_address"].as_str().map(str::to_owned),
            })
        })
    }

    fn detach<'a>(
        &'a mut self,
        lab: &'a Lab,
        network: &'a NetSpec,
        container_id: &'a str,
        ifname: &'a str,
        container: &'a Container,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(ip) = self.leases.get_mut(&network.name).and_then(|l| l.remove(container_id)) else {
                return Ok(());
            };
            let netns = container.path().display().to_string();
            let ports =
                self.ports.remove(&(network.name.clone(), container_id.to_owned())).unwrap_or_default();
            let options = Self::options(network, container_id, &container.label, ifname, ip, &ports)?;
            self.exec(lab, "teardown", &netns, &options)?;
            Ok(())
        })
    }

    fn remove_network<'a>(&'a mut self, _lab: &'a Lab, network: &'a NetSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            async move { bail!("network {}: netavark has no network removal (podman's job)", network.name) },
        )
    }
}

/// A `-p` mapping as netavark's `port_mappings` entry.
fn port_mapping(mapping: &str) -> Result<Value> {
    let m: vethlab_core::PortMapping = mapping.parse()?;
    Ok(json!({
        "host_ip": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "container_port": m.container_port, "host_port": m.host_port, "range": 1,
        "protocol": m.proto.to_string(),
    }))
}
