//! The CNI commands over vethlab's runtime: ADD creates the network on first use and connects,
//! DEL disconnects (idempotent, fine when the namespace is gone) and removes the network when its
//! last endpoint leaves, CHECK compares the kernel with the record and pings the gateway, GC drops
//! endpoints the runtime no longer knows, STATUS says whether ADD can work.

use std::net::Ipv4Addr;
use std::time::Duration;

use vethlab_core::{ConnectRequest, NetworkRequest, PlanError, Subnet};
use vethlab_runtime::{Netns, Runtime, RuntimeError, StateDir};

use super::Env;
use super::types::{
    CniError, CniResult, Code, Interface, IpConfig, NetConf, Route, SUPPORTED_VERSIONS, VersionResult,
    at_least_1_1, supported,
};

/// How long CHECK waits for the gateway to answer.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(1);

/// VERSION: the versions we speak, answered in the caller's version when we speak it.
pub fn version(stdin: &str) -> String {
    let asked = serde_json::from_str::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(str::to_owned))
        .filter(|v| supported(v));
    let answer = VersionResult {
        cni_version: asked.unwrap_or_else(|| "1.1.0".to_owned()),
        supported_versions: SUPPORTED_VERSIONS.iter().map(|s| (*s).to_owned()).collect(),
    };
    serde_json::to_string(&answer).unwrap_or_default()
}

/// The configuration, validated before any side effect.
#[derive(Debug)]
struct Conf {
    version: String,
    bridge: String,
    request: NetworkRequest,
    subnet: Subnet,
    gateway: Option<Ipv4Addr>,
    static_ip: Option<String>,
    /// `runtimeConfig.portMappings`, as vethlab's `-p` mappings.
    ports: Vec<String>,
}

fn validate(conf: &NetConf, raw: &str) -> Result<Conf, CniError> {
    if !supported(&conf.cni_version) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "cniVersion {} is not supported (supported: {})",
                conf.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    let invalid = |msg: String| CniError::new(Code::InvalidConfig, msg);
    if conf.ipam.is_some() {
        return Err(CniError::new(
            Code::UnsupportedField,
            format!("network {}: \"ipam\" is not supported: vethlab allocates addresses itself", conf.name),
        ));
    }
    let bridge = conf
        .bridge
        .clone()
        .ok_or_else(|| invalid(format!("network {}: \"bridge\" is required", conf.name)))?;
    let subnet_text = conf
        .subnet
        .clone()
        .ok_or_else(|| invalid(format!("network {}: \"subnet\" is required", conf.name)))?;
    let subnet: Subnet = subnet_text
        .parse()
        .map_err(|e| invalid(format!("network {}: subnet {subnet_text}: {e}", conf.name)))?;
    let gateway = match &conf.gateway {
        Some(g) => Some(g.parse().map_err(|e| invalid(format!("network {}: gateway {g}: {e}", conf.name)))?),
        None => None,
    };
    // `..Default::default()`: fields added to the request later keep their defaults here.
    let request = NetworkRequest {
        name: bridge.clone(),
        subnet: subnet_text,
        gateway: conf.gateway.clone(),
        mtu: conf.mtu,
        internal: conf.internal.unwrap_or(false),
        ..Default::default()
    };
    // The whole request is validated now, so a bad name or MTU fails before anything changes.
    vethlab_core::NetworkSpec::validate(&request)
        .map_err(|e| invalid(format!("network {}: {e}", conf.name)))?;
    Ok(Conf {
        version: conf.cni_version.clone(),
        bridge,
        request,
        subnet,
        gateway,
        static_ip: static_ip(raw)?,
        ports: port_mappings(raw)?,
    })
}

/// `runtimeConfig.portMappings` (the `portMappings` capability): `{hostPort, containerPort,
/// protocol, hostIP}` entries, turned into `[HOST_IP:]HOST_PORT:CONTAINER_PORT/PROTO` mappings that
/// the runtime validates like `-p`.
fn port_mappings(raw: &str) -> Result<Vec<String>, CniError> {
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| CniError::new(Code::Decode, format!("network configuration: {e}")))?;
    let Some(list) = v.pointer("/runtimeConfig/portMappings").and_then(|a| a.as_array()) else {
        return Ok(Vec::new());
    };
    let invalid = |m: &serde_json::Value, what: &str| {
        CniError::new(Code::InvalidConfig, format!("portMappings entry {m}: {what}"))
    };
    list.iter()
        .map(|m| {
            let host = m
                .get("hostPort")
                .and_then(|p| p.as_u64())
                .ok_or_else(|| invalid(m, "hostPort is required"))?;
            let ctr = m
                .get("containerPort")
                .and_then(|p| p.as_u64())
                .ok_or_else(|| invalid(m, "containerPort is required"))?;
            let proto = m.get("protocol").and_then(|p| p.as_str()).unwrap_or("tcp").to_ascii_lowercase();
            let ip = m.get("hostIP").and_then(|p| p.as_str()).filter(|ip| !ip.is_empty() && *ip != "0.0.0.0");
            Ok(match ip {
                Some(ip) => format!("{ip}:{host}:{ctr}/{proto}"),
                None => format!("{host}:{ctr}/{proto}"),
            })
        })
        .collect()
}

/// A static address from `runtimeConfig.ips` or `args.cni.ips` (the `ips` capability).
fn static_ip(raw: &str) -> Result<Option<String>, CniError> {
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| CniError::new(Code::Decode, format!("network configuration: {e}")))?;
    let ips = v.pointer("/runtimeConfig/ips").or_else(|| v.pointer("/args/cni/ips"));
    let Some(first) = ips.and_then(|a| a.as_array()).and_then(|a| a.first()) else { return Ok(None) };
    let text = first
        .as_str()
        .ok_or_else(|| CniError::new(Code::InvalidConfig, format!("ips entry {first} is not a string")))?;
    // Accept "10.0.0.5" and "10.0.0.5/24"; the prefix is the network's.
    Ok(Some(text.split('/').next().unwrap_or(text).to_owned()))
}

fn runtime(conf: &NetConf) -> Result<Runtime, CniError> {
    let host = Netns::current().map_err(|e| CniError::new(Code::Io, e.to_string()))?.with_label("host");
    let dir = conf.state_dir.clone().unwrap_or_else(|| vethlab_runtime::DEFAULT_STATE_DIR.to_owned());
    Ok(Runtime::new(host, StateDir::new(dir)))
}

fn runtime_error(e: RuntimeError) -> CniError {
    let code = match &e {
        RuntimeError::Spec(_) | RuntimeError::Plan(_) => Code::InvalidConfig,
        RuntimeError::Store(_) => Code::Io,
        _ => Code::Runtime,
    };
    CniError::new(code, e.to_string())
}

fn no_such_network(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::Plan(PlanError::NoSuchNetwork(_)))
}

fn container_id(env: &Env) -> Result<&str, CniError> {
    let id = env.require(&env.container_id, "CNI_CONTAINERID")?;
    vethlab_core::ContainerId::new(id)
        .map_err(|e| CniError::new(Code::InvalidEnvironment, format!("CNI_CONTAINERID: {e}")))?;
    Ok(id)
}

pub async fn dispatch(env: &Env, conf: &NetConf, raw: &str) -> Result<Option<String>, CniError> {
    let checked = validate(conf, raw)?;
    let rt = runtime(conf)?;
    match env.command.as_str() {
        "ADD" => {
            let result = add(env, &checked, &rt).await?;
            let text = serde_json::to_string(&result)
                .map_err(|e| CniError::new(Code::Io, format!("encode the result: {e}")))?;
            Ok(Some(text))
        }
        "DEL" => del(env, &checked, &rt).await.map(|()| None),
        "CHECK" => check(env, &checked, &rt).await.map(|()| None),
        "GC" | "STATUS" if !at_least_1_1(&checked.version) => Err(CniError::new(
            Code::IncompatibleVersion,
            format!("{} needs cniVersion 1.1.0, the configuration says {}", env.command, checked.version),
        )),
        "GC" => gc(conf, &checked, &rt).await.map(|()| None),
        "STATUS" => status(&rt).map(|()| None),
        other => Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_COMMAND {other:?} is not a CNI command"),
        )),
    }
}

/// The network named after the bridge, created on first use; one with another subnet, gateway or
/// MTU is an error rather than a silent reuse.
async fn ensure_network(conf: &Conf, rt: &Runtime) -> Result<vethlab_core::NetworkRecord, CniError> {
    for _ in 0..3 {
        match rt.inspect(&conf.bridge) {
            Ok(record) => {
                let spec = &record.spec;
                let differs = spec.subnet != conf.subnet
                    || conf.gateway.is_some_and(|g| g != spec.gateway)
                    || conf.request.mtu.is_some_and(|m| spec.mtu.map(|x| x.get()) != Some(m));
                if differs {
                    return Err(CniError::new(
                        Code::InvalidConfig,
                        format!(
                            "network {}: exists with subnet {} gateway {}, the configuration asks for subnet {}{}",
                            conf.bridge,
                            spec.subnet,
                            spec.gateway,
                            conf.subnet,
                            conf.gateway.map(|g| format!(" gateway {g}")).unwrap_or_default()
                        ),
                    ));
                }
                return Ok(record);
            }
            Err(e) if no_such_network(&e) => match rt.create_network(&conf.request).await {
                Ok(record) => return Ok(record),
                // Another ADD created it between our look and our create: look again.
                Err(RuntimeError::Plan(PlanError::NetworkExists(_))) => continue,
                Err(e) => return Err(runtime_error(e)),
            },
            Err(e) => return Err(runtime_error(e)),
        }
    }
    Err(CniError::new(
        Code::TryAgainLater,
        format!("network {}: keeps changing under concurrent ADDs", conf.bridge),
    ))
}

async fn add(env: &Env, conf: &Conf, rt: &Runtime) -> Result<CniResult, CniError> {
    let id = container_id(env)?;
    let netns_path = env.require(&env.netns, "CNI_NETNS")?;
    let ifname = env.require(&env.ifname, "CNI_IFNAME")?;
    let netns = Netns::open(netns_path)
        .map_err(|e| CniError::new(Code::InvalidEnvironment, format!("CNI_NETNS: {e}")))?
        .with_label(netns_path);
    let record = ensure_network(conf, rt).await?;
    let mut req = ConnectRequest {
        network: conf.bridge.clone(),
        container_id: id.to_owned(),
        ifname: Some(ifname.to_owned()),
        netns: netns_path.to_owned(),
        ..Default::default()
    };
    req.ip.clone_from(&conf.static_ip);
    req.ports.clone_from(&conf.ports);
    let ep = match rt.connect(&req, &netns).await {
        Ok(ep) => ep,
        Err(e) => {
            // Do not leave a network we created for nobody.
            if record.endpoints.is_empty() {
                let _ = rt.remove_network(&conf.bridge, false).await;
            }
            return Err(runtime_error(e));
        }
    };
    let world = vethlab_verify::capture(&[("host", rt.host())])
        .await
        .map_err(|e| CniError::new(Code::Io, format!("read back host interfaces: {e}")))?;
    let mac_of = |name: &str| {
        world
            .namespaces
            .first()
            .and_then(|ns| ns.links.iter().find(|l| l.name == name))
            .and_then(|l| l.mac.clone())
    };
    let mtu = record.spec.mtu.map(|m| m.get());
    let interfaces = vec![
        Interface { name: conf.bridge.clone(), mac: mac_of(&conf.bridge), mtu, sandbox: None },
        Interface {
            name: ep.host_ifname.to_string(),
            mac: mac_of(ep.host_ifname.as_str()),
            mtu,
            sandbox: None,
        },
        Interface {
            name: ep.peer_ifname.to_string(),
            mac: Some(ep.mac.to_string()),
            mtu,
            sandbox: Some(netns_path.to_owned()),
        },
    ];
    let gateway = record.spec.gateway;
    Ok(CniResult {
        cni_version: conf.version.clone(),
        interfaces,
        ips: vec![IpConfig {
            version: (conf.version == "0.4.0").then(|| "4".to_owned()),
            address: format!("{}/{}", ep.address, ep.prefix),
            gateway: Some(gateway),
            interface: Some(2),
        }],
        routes: vec![Route { dst: "0.0.0.0/0".to_owned(), gw: Some(gateway) }],
        dns: serde_json::json!({}),
    })
}

/// Disconnects, then removes the network if that was its last endpoint (so a DEL of everything
/// leaves the host as it was). Succeeds when there is nothing to delete.
async fn del(env: &Env, conf: &Conf, rt: &Runtime) -> Result<(), CniError> {
    let id = container_id(env)?;
    match rt.disconnect(&conf.bridge, id).await {
        Ok(_) => {}
        Err(e) if no_such_network(&e) => return Ok(()),
        Err(e) => return Err(runtime_error(e)),
    }
    remove_if_empty(conf, rt).await
}

async fn remove_if_empty(conf: &Conf, rt: &Runtime) -> Result<(), CniError> {
    match rt.inspect(&conf.bridge) {
        Ok(record) if record.endpoints.is_empty() => match rt.remove_network(&conf.bridge, false).await {
            // An ADD may have attached something meanwhile; then the network stays.
            Ok(()) | Err(RuntimeError::Plan(_)) => Ok(()),
            Err(e) => Err(runtime_error(e)),
        },
        Ok(_) => Ok(()),
        Err(e) if no_such_network(&e) => Ok(()),
        Err(e) => Err(runtime_error(e)),
    }
}

/// Compares the kernel with the record: the container interface is up with its address and a
/// default route via the gateway, the host end is up on the bridge, the bridge carries the
/// gateway; then pings the gateway from the container.
async fn check(env: &Env, conf: &Conf, rt: &Runtime) -> Result<(), CniError> {
    let id = container_id(env)?;
    let netns_path = env.require(&env.netns, "CNI_NETNS")?;
    let ifname = env.require(&env.ifname, "CNI_IFNAME")?;
    let mismatch = |msg: String| CniError::new(Code::StateMismatch, msg);
    let record = rt.inspect(&conf.bridge).map_err(|e| mismatch(e.to_string()))?;
    let ep = record.endpoints.values().find(|ep| ep.container.as_str() == id).ok_or_else(|| {
        CniError::new(
            Code::UnknownContainer,
            format!("network {}: no endpoint for container {id}", conf.bridge),
        )
    })?;
    if ep.peer_ifname.as_str() != ifname {
        return Err(mismatch(format!(
            "container {id}: attached as {}, CNI_IFNAME says {ifname}",
            ep.peer_ifname
        )));
    }
    let ctr = Netns::open(netns_path)
        .map_err(|e| CniError::new(Code::InvalidEnvironment, format!("CNI_NETNS: {e}")))?
        .with_label(netns_path);
    let world = vethlab_verify::capture(&[("host", rt.host()), ("container", &ctr)])
        .await
        .map_err(|e| CniError::new(Code::Io, format!("capture kernel state: {e}")))?;
    let (host, inside) = match world.namespaces.as_slice() {
        [h, c] => (h, c),
        _ => return Err(mismatch("capture returned the wrong number of namespaces".to_owned())),
    };
    let gateway = record.spec.gateway;
    let link = inside
        .links
        .iter()
        .find(|l| l.name == ifname)
        .ok_or_else(|| mismatch(format!("netns {netns_path}: interface {ifname} is missing")))?;
    if !link.admin_up {
        return Err(mismatch(format!("netns {netns_path}: interface {ifname} is down")));
    }
    let want = std::net::IpAddr::V4(ep.address);
    if !inside.addresses.iter().any(|a| a.link == ifname && a.address == want && a.prefix == ep.prefix) {
        return Err(mismatch(format!(
            "netns {netns_path}: interface {ifname} lacks address {}/{}",
            ep.address, ep.prefix
        )));
    }
    let default = inside.routes.iter().any(|r| {
        r.destination.is_none()
            && r.prefix == 0
            && r.gateway == Some(gateway.into())
            && r.dev.as_deref() == Some(ifname)
    });
    if !default {
        return Err(mismatch(format!("netns {netns_path}: no default route via {gateway} dev {ifname}")));
    }
    let host_end = host
        .links
        .iter()
        .find(|l| l.name == ep.host_ifname.as_str())
        .ok_or_else(|| mismatch(format!("host interface {} is missing", ep.host_ifname)))?;
    if host_end.master.as_deref() != Some(conf.bridge.as_str()) || !host_end.admin_up {
        return Err(mismatch(format!(
            "host interface {} is not an up port of bridge {} (master {:?})",
            ep.host_ifname, conf.bridge, host_end.master
        )));
    }
    if !host.addresses.iter().any(|a| a.link == conf.bridge && a.address == std::net::IpAddr::V4(gateway)) {
        return Err(mismatch(format!("bridge {} lacks gateway address {gateway}", conf.bridge)));
    }
    vethlab_verify::ping(&ctr, gateway, GATEWAY_TIMEOUT).map_err(|e| {
        CniError::new(Code::GatewayUnreachable, format!("container {id}: gateway {gateway} does not answer"))
            .with_details(e.to_string())
    })?;
    Ok(())
}

/// GC: disconnects every endpoint of this network that is not among the valid attachments, then
/// removes the network if it is empty. Keeps going after an error and reports all of them.
async fn gc(raw: &NetConf, conf: &Conf, rt: &Runtime) -> Result<(), CniError> {
    let record = match rt.inspect(&conf.bridge) {
        Ok(r) => r,
        Err(e) if no_such_network(&e) => return Ok(()),
        Err(e) => return Err(runtime_error(e)),
    };
    let valid = raw.valid_attachments.clone().unwrap_or_default();
    let mut errors = Vec::new();
    for ep in record.endpoints.values() {
        let keep = valid
            .iter()
            .any(|a| a.container_id == ep.container.as_str() && a.ifname == ep.peer_ifname.as_str());
        if !keep && let Err(e) = rt.disconnect(&conf.bridge, ep.container.as_str()).await {
            errors.push(e.to_string());
        }
    }
    if let Err(e) = remove_if_empty(conf, rt).await {
        errors.push(e.msg);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::Runtime,
            format!("network {}: gc incomplete: {}", conf.bridge, errors.join("; ")),
        ))
    }
}

/// STATUS: ADD can work if the state directory can be read and locked.
fn status(rt: &Runtime) -> Result<(), CniError> {
    rt.list().map(|_| ()).map_err(|e| CniError::new(Code::NotAvailable, format!("state unusable: {e}")))
}
