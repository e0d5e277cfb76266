//! The `cni:PATH` adapter: any CNI plugin binary driven by the CNI protocol (spec 1.0.0 unless
//! told otherwise): environment variables, the network configuration on stdin, the result or an
//! error JSON on stdout. The plugin runs inside the lab's host namespace, with `CNI_PATH` covering
//! `/usr/lib/cni` (for `host-local`) and the plugin's own directory.
//!
//! The configuration depends on the plugin: vethlab's own (`{"type":"vethlab","bridge":…,
//! "subnet":…}`) or the reference bridge plugin's (`isGateway` and `host-local` IPAM with its data
//! directory in the adapter's temporary directory); a test may patch it to break a peer on purpose.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    AttachRequest, Attachment, BoxFuture, Capability, Flavour, NetSpec, NetworkRuntime, command_in,
    parse_cidr,
};
use crate::lab::{Container, Lab};

/// Where the reference plugins live on Debian.
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

#[derive(Debug)]
pub struct Cni {
    name: String,
    plugin: PathBuf,
    flavour: Flavour,
    version: String,
    /// Merged over the generated configuration (to break a peer on purpose in tests).
    patch: Option<Value>,
    /// host-local's data directory, vethlab's state directory: private to this adapter.
    scratch: tempfile::TempDir,
    /// ADD results by (network, container), passed back as `prevResult` on DEL.
    results: BTreeMap<(String, String), Value>,
}

impl Cni {
    pub fn new(plugin: PathBuf) -> Result<Self> {
        let base = plugin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let flavour = match base.as_str() {
            "bridge" => Flavour::CniBridge,
            b if b.starts_with("vethlab") => Flavour::Vethlab,
            _ => Flavour::OtherCni,
        };
        Ok(Self {
            name: format!("cni:{}", plugin.display()),
            plugin,
            flavour,
            version: "1.0.0".to_owned(),
            patch: None,
            scratch: tempfile::Builder::new().prefix("vethlab-cni-").tempdir()?,
            results: BTreeMap::new(),
        })
    }

    /// Speaks another spec version (0.4.0, 1.0.0, 1.1.0).
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Merges `patch` over every generated configuration (top-level keys replaced).
    pub fn with_patch(mut self, patch: Value) -> Self {
        self.patch = Some(patch);
        self
    }

    /// The configuration for `net`, as the plugin expects it.
    pub fn config(&self, net: &NetSpec, ip: Option<std::net::Ipv4Addr>, ports: &[&str]) -> Result<Value> {
        let mut conf = match self.flavour {
            Flavour::Vethlab => {
                let mut c = json!({
                    "cniVersion": self.version, "name": net.name, "type": "vethlab",
                    "bridge": net.name, "subnet": net.subnet.to_string(),
                    "stateDir": self.scratch.path().join("vethlab-state"),
                });
                if let Some(g) = net.gateway {
                    c["gateway"] = json!(g.to_string());
                }
                if net.internal {
                    c["internal"] = json!(true);
                }
                c
            }
            _ => {
                let mut range = json!({"subnet": net.subnet.to_string()});
                if let Some(g) = net.gateway {
                    range["gateway"] = json!(g.to_string());
                }
                json!({
                    "cniVersion": self.version, "name": net.name, "type": "bridge",
                    "bridge": net.name, "isGateway": true, "ipMasq": true,
                    "ipam": {"type": "host-local", "ranges": [[range]],
                             "routes": [{"dst": "0.0.0.0/0"}],
                             "dataDir": self.scratch.path().join("host-local")},
                })
            }
        };
        if let Some(m) = net.mtu {
            conf["mtu"] = json!(m);
        }
        if let Some(ip) = ip {
            conf["runtimeConfig"]["ips"] = json!([format!("{ip}/{}", net.subnet.prefix())]);
            conf["capabilities"]["ips"] = json!(true);
        }
        if !ports.is_empty() {
            let entries = ports.iter().map(|p| port_mapping(p)).collect::<Result<Vec<_>>>()?;
            conf["runtimeConfig"]["portMappings"] = Value::Array(entries);
            conf["capabilities"]["portMappings"] = json!(true);
        }
        if let Some(Value::Object(patch)) = &self.patch {
            for (k, v) in patch {
                conf[k] = v.clone();
            }
        }
        Ok(conf)
    }

    /// Runs one CNI command inside the lab's host namespace; stdout on success, the plugin's error
    /// (code and message) otherwise.
    pub fn exec(&self, lab: &Lab, command: &str, env: &[(&str, &str)], conf: &Value) -> Result<String> {
        let mut path =
            std::env::split_paths(&std::env::var_os("CNI_PATH").unwrap_or_default()).collect::<Vec<_>>();
        path.insert(0, PathBuf::from(DEBIAN_CNI_DIR));
        if let Some(dir) = self.plugin.parent() {
            path.insert(0, dir.to_owned());
        }
        let mut cmd = command_in(lab.host(), &self.plugin);
        cmd.env("CNI_COMMAND", command)
            .env("CNI_PATH", std::env::join_paths(path)?)
            .env_remove("CNI_CONTAINERID")
            .env_remove("CNI_NETNS")
            .env_remove("CNI_IFNAME")
            .env_remove("CNI_ARGS")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("start cni plugin {}", self.plugin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(conf.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let plugin = self.plugin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match serde_json::from_str::<Value>(&stdout) {
            Ok(e) if e.get("code").is_some() => bail!(
                "cni plugin {plugin} {command}: code {}: {}{}",
                e["code"],
                e["msg"].as_str().unwrap_or(""),
                e["details"].as_str().map(|d| format!(" ({d})")).unwrap_or_default()
            ),
            _ => bail!(
                "cni plugin {plugin} {command}: {}; stdout {:?}; stderr {:?}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }
    }

    fn env<'a>(id: &'a str, netns: &'a str, ifname: &'a str) -> [(&'static str, &'a str); 3] {
        [("CNI_CONTAINERID", id), ("CNI_NETNS", netns), ("CNI_IFNAME", ifname)]
    }
}

/// Reads an ADD result: the interface with `sandbox` is the container's, the one that is neither
/// that nor the bridge is the host end, the first IPv4 address is the container's.
pub fn attachment_from_result(result: &Value, bridge: &str) -> Result<Attachment> {
    let interfaces = result["interfaces"].as_array().context("result has no interfaces")?;
    let inside = interfaces
        .iter()
        .find(|i| i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
        .context("result has no interface with a sandbox")?;
    let host = interfaces
        .iter()
        .find(|i| i.get("sandbox").is_none_or(|s| s.as_str() == Some("")) && i["name"] != bridge)
        .context("result names no host interface besides the bridge")?;
    let ip = result["ips"]
        .as_array()
        .and_then(|ips| ips.iter().find_map(|i| i["address"].as_str().filter(|a| !a.contains(':'))))
        .context("result has no IPv4 address")?;
    let (address, prefix) = parse_cidr(ip)?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Ok(Attachment {
        host_ifname: text(&host["name"]).context("host interface without a name")?,
        ifname: text(&inside["name"]).context("container interface without a name")?,
        address,
        prefix,
        mac: text(&inside["mac"]),
    })
}

impl NetworkRuntime for Cni {
    fn name(&self) -> &str {
        &self.name
    }

    fn slug(&self) -> String {
        match self.flavour {
            Flavour::CniBridge => "cni-bridge".to_owned(),
            Flavour::Vethlab => "cni-vethlab".to_owned(),
            _ => format!("cni-{}", self.plugin.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()),
        }
    }

    fn flavour(&self) -> Flavour {
        self.flavour
    }

    fn capabilities(&self) -> &[Capability] {
        // CNI has no "remove the network": a network is a configuration file, not an object.
        // vethlab's plugin brings its firewall along (masquerade, isolation, internal networks,
        // the portMappings capability); the bridge plugin alone has none of it.
        match self.flavour {
            Flavour::Vethlab => &[
                Capability::StaticAddress,
                Capability::Mtu,
                Capability::CustomGateway,
                Capability::DefaultRoute,
                Capability::Ipam,
                Capability::Masquerade,
                Capability::PortMapping,
                Capability::Internal,
                Capability::Isolation,
            ],
            Flavour::CniBridge => &[
                Capability::StaticAddress,
                Capability::Mtu,
                Capability::CustomGateway,
                Capability::DefaultRoute,
                Capability::Ipam,
                // `ipMasq: true` in the generated configuration.
                Capability::Masquerade,
            ],
            _ => &[
                Capability::StaticAddress,
                Capability::Mtu,
                Capability::CustomGateway,
                Capability::DefaultRoute,
                Capability::Ipam,
            ],
        }
    }

    fn begin(&mut self, _lab: &Lab) -> Result<()> {
        self.scratch = tempfile::Builder::new().prefix("vethlab-cni-").tempdir()?;
        self.results.clear();
        Ok(())
    }

    fn attach<'a>(&'a mut self, lab: &'a Lab, req: AttachRequest<'a>) -> BoxFuture<'a, Result<Attachment>> {
        Box::pin(async move {
            let conf = self.config(req.network, req.ip, req.ports)?;
            let netns = req.container.path().display().to_string();
            let env = Self::env(req.container_id, &netns, req.ifname);
            let out = match self.exec(lab, "ADD", &env, &conf) {
                Ok(out) => out,
                Err(e) => {
                    // The spec asks runtimes to call DEL after a failed ADD, so a plugin may leave
                    // half an attachment behind for DEL to clean (the bridge plugin does).
                    if let Err(del) = self.exec(lab, "DEL", &env, &self.config(req.network, None, &[])?) {
                        return Err(e.context(format!("and DEL after the failed ADD failed too: {del:#}")));
                    }
                    return Err(e);
                }
            };
            let result: Value = serde_json::from_str(&out).with_context(|| format!("ADD result {out:?}"))?;
            let attachment = attachment_from_result(&result, &req.network.name)?;
            self.results.insert((req.network.name.clone(), req.container_id.to_owned()), result);
            Ok(attachment)
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
            let mut conf = self.config(network, None, &[])?;
            if let Some(prev) = self.results.remove(&(network.name.clone(), container_id.to_owned())) {
                conf["prevResult"] = prev;
            }
            let netns = container.path().display().to_string();
            self.exec(lab, "DEL", &Self::env(container_id, &netns, ifname), &conf)?;
            Ok(())
        })
    }

    fn remove_network<'a>(&'a mut self, _lab: &'a Lab, network: &'a NetSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { bail!("network {}: a CNI plugin has no network removal", network.name) })
    }
}

/// The plugin path of a `cni:PATH` runtime name, if it is one.
pub fn plugin_path(name: &str) -> Option<&Path> {
    name.strip_prefix("cni:").map(Path::new)
}

/// A `-p` mapping as a CNI `portMappings` entry.
fn port_mapping(mapping: &str) -> Result<Value> {
    let m: vethlab_core::PortMapping = mapping.parse()?;
    let mut entry =
        json!({"hostPort": m.host_port, "containerPort": m.container_port, "protocol": m.proto.to_string()});
    if let Some(ip) = m.host_ip {
        entry["hostIP"] = json!(ip.to_string());
    }
    Ok(entry)
}
