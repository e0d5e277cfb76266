//! The conformance runner: a scenario from the catalogue run through a `NetworkRuntime` in a
//! throwaway lab, with semantic expectations that hold for every bridge runtime — the container's
//! interface is up with an address of the subnet (the requested one, if any), its default route
//! points at the gateway, the host end is an up port of the bridge, reachability is as declared,
//! and nothing is left after detach. Differences a peer is known for (scenario data: `Known`) are
//! accepted and reported; a scenario needing a capability the runtime lacks is `unsupported`.
//! [`report`] renders the scenario × runtime matrix as a table, JSON or JUnit XML.

mod report;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

pub use report::{json, junit, table};

use crate::lab::{Container, Lab};
use crate::probes::{REACH_TIMEOUT, UNREACH_TIMEOUT};
use crate::runtimes::{AttachRequest, Attachment, Capability, Flavour, NetSpec, NetworkRuntime};
use crate::scenario::{Behaviour, Probe, Scenario, SnapshotScope, Step, Target};

/// pass / fail / unsupported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail(String),
    Unsupported(String),
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail(_) => "FAIL",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub scenario: String,
    pub runtime: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub seconds: f64,
    /// Known behaviours of this runtime that the scenario met.
    pub known: Vec<String>,
    /// The normalised snapshot after the steps (when the run got that far).
    #[serde(skip)]
    pub snapshot: Option<String>,
}

/// The capabilities a scenario needs.
pub fn required(scenario: &Scenario) -> Vec<Capability> {
    let mut caps = vec![Capability::DefaultRoute];
    for n in &scenario.networks {
        if n.mtu.is_some() {
            caps.push(Capability::Mtu);
        }
        if n.gateway.is_some() {
            caps.push(Capability::CustomGateway);
        }
        if n.internal {
            caps.push(Capability::Internal);
        }
    }
    for probe in &scenario.probes {
        caps.push(match probe {
            Probe::Masquerade { .. } => Capability::Masquerade,
            Probe::Published { .. } => Capability::PortMapping,
            Probe::NoWayOut { .. } => Capability::Internal,
        });
    }
    // A container that must not reach a container of another network.
    let network_of = |label: &str| {
        scenario.steps.iter().find_map(|s| match s {
            Step::Connect { container, network, .. } if container == label => Some(*network),
            _ => None,
        })
    };
    for (from, target) in &scenario.unreachable {
        if let Target::Container(to) = target
            && network_of(from) != network_of(to)
        {
            caps.push(Capability::Isolation);
        }
    }
    for step in &scenario.steps {
        match step {
            Step::Connect { ip: Some(_), .. } => caps.push(Capability::StaticAddress),
            Step::Connect { ports, .. } if !ports.is_empty() => caps.push(Capability::PortMapping),
            Step::ConnectFails { .. } => caps.push(Capability::Ipam),
            Step::RemoveNetwork { .. } => caps.push(Capability::NetworkRemoval),
            _ => {}
        }
    }
    caps.sort();
    caps.dedup();
    caps
}

/// Whether `flavour` is known for `behaviour` in this scenario; the note if so.
fn known(scenario: &Scenario, flavour: Flavour, behaviour: Behaviour) -> Option<&'static str> {
    scenario.known.iter().find(|k| k.flavour == flavour && k.behaviour == behaviour).map(|k| k.note)
}

/// Runs one scenario against one runtime; never panics, every problem is a `Fail`.
pub async fn run_case(rt: &mut dyn NetworkRuntime, scenario: &Scenario) -> CaseResult {
    let start = Instant::now();
    let missing: Vec<&str> = required(scenario)
        .into_iter()
        .filter(|c| !rt.capabilities().contains(c))
        .map(Capability::name)
        .collect();
    let mut notes = Vec::new();
    let (verdict, snapshot) = if !missing.is_empty() {
        (Verdict::Unsupported(format!("needs {}", missing.join(", "))), None)
    } else {
        match run(rt, scenario, &mut notes).await {
            Ok(yaml) => (Verdict::Pass, Some(yaml)),
            Err(e) => (Verdict::Fail(format!("{e:#}")), None),
        }
    };
    notes.sort();
    notes.dedup();
    CaseResult {
        scenario: scenario.name.to_owned(),
        runtime: rt.name().to_owned(),
        verdict,
        seconds: start.elapsed().as_secs_f64(),
        known: notes,
        snapshot,
    }
}

/// Every attachment alive, by (container label, network).
type Attached = BTreeMap<(String, String), Attachment>;

/// The default interface name inside a container: vethlab's `cif-ID[:5]`, given to every runtime.
fn default_ifname(id: &str) -> Result<String> {
    Ok(vethlab_core::ContainerId::new(id)?.default_peer_ifname().to_string())
}

async fn run(rt: &mut dyn NetworkRuntime, scenario: &Scenario, notes: &mut Vec<String>) -> Result<String> {
    let lab = Lab::new().await?;
    let upstream = if scenario.needs_upstream() { Some(lab.upstream().await?) } else { None };
    let before = lab.host_snapshot().await?;
    rt.begin(&lab)?;
    let containers: BTreeMap<&str, Container> = scenario
        .containers
        .iter()
        .map(|c| Ok((c.label.as_str(), lab.container(&c.label, c.kind)?)))
        .collect::<Result<_>>()?;
    let nets: BTreeMap<&str, NetSpec> =
        scenario.networks.iter().map(|n| Ok((n.name, NetSpec::from_def(n)?))).collect::<Result<_>>()?;
    let id_of = |label: &str| -> Result<&str> {
        scenario
            .containers
            .iter()
            .find(|c| c.label == label)
            .map(|c| c.id.as_str())
            .context("unknown container")
    };
    let ctr = |label: &str| containers.get(label).with_context(|| format!("unknown container {label}"));
    let net = |name: &str| nets.get(name).with_context(|| format!("unknown network {name}"));
    let flavour = rt.flavour();
    let mut attached: Attached = BTreeMap::new();

    for (i, step) in scenario.steps.iter().enumerate() {
        let ctx = || format!("step {} ({})", i + 1, describe(step));
        match step {
            Step::Connect { container, network, ip, ifname, ports } => {
                let id = id_of(container)?;
                let ifname = match ifname {
                    Some(name) => (*name).to_owned(),
                    None => default_ifname(id)?,
                };
                let ip: Option<Ipv4Addr> = ip.map(str::parse).transpose()?;
                let c = ctr(container)?;
                let n = net(network)?;
                let req =
                    AttachRequest { network: n, container_id: id, ifname: &ifname, container: c, ip, ports };
                let att = rt.attach(&lab, req).await.with_context(ctx)?;
                let no_route = known(scenario, flavour, Behaviour::NoRouteWhenInternal);
                if let (true, Some(note)) = (n.internal, no_route) {
                    notes.push(note.to_owned());
                }
                check_attached(&lab, c, n, &att, ip, &attached, no_route.is_some())
                    .await
                    .with_context(ctx)?;
                attached.insert((container.clone(), network.to_string()), att);
            }
            Step::ConnectFails { container, network, error } => {
                let id = id_of(container)?;
                let ifname = default_ifname(id)?;
                let c = ctr(container)?;
                let req = AttachRequest {
                    network: net(network)?,
                    container_id: id,
                    ifname: &ifname,
                    container: c,
                    ip: None,
                    ports: &[],
                };
                match rt.attach(&lab, req).await {
                    Ok(att) => bail!("{}: attach should have failed but gave {}", ctx(), att.address),
                    Err(e) if format!("{e:#}").contains(error) => {}
                    Err(e) => match known(scenario, flavour, Behaviour::ErrorText) {
                        Some(note) => notes.push(format!("{note}: {e:#}")),
                        None => bail!("{}: expected an error containing {error:?}, got: {e:#}", ctx()),
                    },
                }
            }
            Step::Disconnect { container, network } => {
                let key = (container.clone(), network.to_string());
                let att = attached
                    .remove(&key)
                    .with_context(|| format!("{}: {container} is not attached", ctx()))?;
                let c = ctr(container)?;
                rt.detach(&lab, net(network)?, id_of(container)?, &att.ifname, c).await.with_context(ctx)?;
                check_detached(&lab, c, &att).await.with_context(ctx)?;
            }
            Step::RemoveNetwork { network, .. } => {
                rt.remove_network(&lab, net(network)?).await.with_context(ctx)?;
                attached.retain(|(_, n), _| n != network);
                let world = vethlab_verify::capture(&[("host", lab.host())]).await?;
                if world.namespaces[0].links.iter().any(|l| l.name == *network) {
                    bail!("{}: bridge {network} is still there", ctx());
                }
            }
            Step::Reload => rt.reload(&lab).with_context(ctx)?,
        }
    }

    let shown: Vec<&Container> = match scenario.snapshot {
        SnapshotScope::All => containers.values().collect(),
        SnapshotScope::HostOnly => vec![],
    };
    let mut namespaces: Vec<(&str, &vethlab_runtime::Netns)> = vec![("host", lab.host())];
    namespaces.extend(shown.iter().map(|c| (c.label.as_str(), c.netns())));
    let mut snapshot =
        vethlab_verify::capture_snapshot(&namespaces, &vethlab_verify::NormalizeOptions::vethlab()).await?;
    if let Some(note) = known(scenario, flavour, Behaviour::HostVethNamed) {
        notes.push(note.to_owned());
        normalise_host_ends(&mut snapshot, &attached);
    }
    let yaml = vethlab_verify::to_yaml(&snapshot);

    let address_of = |label: &str| attached.iter().find(|((l, _), _)| l == label).map(|(_, a)| a.address);
    let resolve = |target: &Target| -> Result<Ipv4Addr> {
        match target {
            Target::Gateway(n) => Ok(net(n)?.effective_gateway()),
            Target::Container(label) => {
                address_of(label).with_context(|| format!("{label} has no address to probe"))
            }
        }
    };
    let from = |label: &str| -> Result<&vethlab_runtime::Netns> {
        if label == "host" { Ok(lab.host()) } else { Ok(ctr(label)?.netns()) }
    };
    for (src, target) in &scenario.reachable {
        let dst = resolve(target)?;
        vethlab_verify::assert_reachable((src, from(src)?), dst, REACH_TIMEOUT)
            .with_context(|| format!("{src} should reach {} ({dst})", target_text(target)))?;
    }
    for (src, target) in &scenario.unreachable {
        let dst = resolve(target)?;
        vethlab_verify::assert_unreachable((src, from(src)?), dst, UNREACH_TIMEOUT)
            .with_context(|| format!("{src} should not reach {} ({dst})", target_text(target)))?;
    }

    let addresses: BTreeMap<String, Ipv4Addr> =
        attached.iter().map(|((label, _), att)| (label.clone(), att.address)).collect();
    crate::probes::run_all(scenario, &lab, &containers, upstream.as_ref(), &addresses)?;

    // Teardown: detach everything, then remove the networks where the runtime can.
    let mut errors = Vec::new();
    for ((label, network), att) in std::mem::take(&mut attached) {
        let (c, n, id) = (ctr(&label)?, net(&network)?, id_of(&label)?);
        if let Err(e) = rt.detach(&lab, n, id, &att.ifname, c).await {
            errors.push(format!("detach {label} from {network}: {e:#}"));
        }
    }
    if rt.capabilities().contains(&Capability::NetworkRemoval) {
        for n in nets.values() {
            if let Err(e) = rt.remove_network(&lab, n).await {
                errors.push(format!("remove network {}: {e:#}", n.name));
            }
        }
    }
    if !errors.is_empty() {
        bail!("teardown: {}", errors.join("; "));
    }
    let mut after = lab.host_snapshot().await?;
    if after != before
        && let Some(note) = known(scenario, flavour, Behaviour::BridgeKept)
    {
        // Documented: the bridges stay. Remove them ourselves, then nothing else may differ.
        let nl = vethlab_runtime::Netlink::open(lab.host())?;
        for n in nets.keys() {
            if nl.del_link_by_name(n).await? {
                notes.push(note.to_owned());
            }
        }
        after = lab.host_snapshot().await?;
    }
    let forwarding = "net.ipv4.ip_forward: '1'";
    if after != before
        && after.contains(forwarding)
        && !before.contains(forwarding)
        && let Some(note) = known(scenario, flavour, Behaviour::ForwardingEnabled)
    {
        // Documented: forwarding stays on. Switch it back, then nothing else may differ.
        lab.host().run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "0"))??;
        notes.push(note.to_owned());
        after = lab.host_snapshot().await?;
    }
    if after != before
        && after.contains("  nftables: |")
        && !before.contains("  nftables: |")
        && let Some(note) = known(scenario, flavour, Behaviour::FirewallKept)
    {
        // Documented: the runtime's firewall stays. The lab's host had none, so flush it all,
        // then nothing else may differ.
        let flushed =
            lab.host().run(|| std::process::Command::new("nft").args(["flush", "ruleset"]).status())??;
        if !flushed.success() {
            bail!("nft flush ruleset failed in the lab's host namespace");
        }
        notes.push(note.to_owned());
        after = lab.host_snapshot().await?;
    }
    if after != before {
        bail!(
            "nothing should be left after detach, but the host namespace differs:\n{}",
            vethlab_verify::diff_text(&before, &after, "before", "after")
        );
    }
    Ok(yaml)
}

fn describe(step: &Step) -> String {
    match step {
        Step::Connect { container, network, ip, ifname, .. } => format!(
            "attach {container} to {network}{}{}",
            ip.map(|i| format!(" at {i}")).unwrap_or_default(),
            ifname.map(|i| format!(" as {i}")).unwrap_or_default()
        ),
        Step::ConnectFails { container, network, .. } => {
            format!("attach {container} to {network}, must fail")
        }
        Step::Disconnect { container, network } => format!("detach {container} from {network}"),
        Step::RemoveNetwork { network, .. } => format!("remove network {network}"),
        Step::Reload => "reload".to_owned(),
    }
}

fn target_text(t: &Target) -> String {
    match t {
        Target::Gateway(n) => format!("the gateway of {n}"),
        Target::Container(c) => c.clone(),
    }
}

/// The semantic expectations after an attach, read from the kernel; a mismatch says what was
/// expected and what was captured.
async fn check_attached(
    lab: &Lab,
    c: &Container,
    net: &NetSpec,
    att: &Attachment,
    ip: Option<Ipv4Addr>,
    attached: &Attached,
    no_route_when_internal: bool,
) -> Result<()> {
    let world = vethlab_verify::capture(&[("host", lab.host()), ("container", c.netns())]).await?;
    let (host, inside) = (&world.namespaces[0], &world.namespaces[1]);
    let gateway = net.effective_gateway();
    let who = &c.label;
    let link = inside.links.iter().find(|l| l.name == att.ifname).with_context(|| {
        let names: Vec<&str> = inside.links.iter().map(|l| l.name.as_str()).collect();
        format!("{who}: expected interface {}, captured {names:?}", att.ifname)
    })?;
    if !link.admin_up {
        bail!("{who}: interface {} is down", att.ifname);
    }
    let addrs: Vec<String> = inside
        .addresses
        .iter()
        .filter(|a| a.link == att.ifname && a.address.is_ipv4())
        .map(|a| format!("{}/{}", a.address, a.prefix))
        .collect();
    let expected = format!("{}/{}", att.address, net.subnet.prefix());
    if !addrs.contains(&expected) {
        bail!("{who}: expected address {expected} on {}, captured {addrs:?}", att.ifname);
    }
    if !net.subnet.contains(att.address)
        || net.subnet.host_index(att.address).is_none()
        || att.address == gateway
    {
        bail!(
            "{who}: address {} is not a free host address of {} (gateway {gateway})",
            att.address,
            net.subnet
        );
    }
    if let Some(want) = ip
        && want != att.address
    {
        bail!("{who}: asked for address {want}, got {}", att.address);
    }
    if let Some(((other, _), _)) =
        attached.iter().find(|((_, n), a)| *n == net.name && a.address == att.address)
    {
        bail!("{who}: address {} is already {other}'s", att.address);
    }
    let default = inside.routes.iter().any(|r| {
        r.destination.is_none()
            && r.prefix == 0
            && r.gateway == Some(IpAddr::V4(gateway))
            && r.dev.as_deref() == Some(&att.ifname)
    });
    // A runtime known to route nothing on internal networks is excused only there.
    let excused = net.internal && no_route_when_internal;
    if !default && !excused {
        let routes: Vec<String> = inside.routes.iter().map(vethlab_verify::route_line).collect();
        bail!("{who}: expected default via {gateway} dev {}, captured routes {routes:?}", att.ifname);
    }
    let host_end =
        host.links.iter().find(|l| l.name == att.host_ifname).with_context(|| {
            format!("{who}: host end {} is missing from the host namespace", att.host_ifname)
        })?;
    if host_end.master.as_deref() != Some(net.name.as_str()) || !host_end.admin_up {
        bail!(
            "{who}: host end {} should be an up port of bridge {}, captured master {:?}, up {}",
            att.host_ifname,
            net.name,
            host_end.master,
            host_end.admin_up
        );
    }
    if let Some(mtu) = net.mtu
        && (link.mtu != Some(mtu) || host_end.mtu != Some(mtu))
    {
        bail!(
            "{who}: expected mtu {mtu} on both ends, captured {:?} inside and {:?} on the host",
            link.mtu,
            host_end.mtu
        );
    }
    Ok(())
}

/// After a detach both ends are gone.
async fn check_detached(lab: &Lab, c: &Container, att: &Attachment) -> Result<()> {
    let world = vethlab_verify::capture(&[("host", lab.host()), ("container", c.netns())]).await?;
    if world.namespaces[0].links.iter().any(|l| l.name == att.host_ifname) {
        bail!("{}: host end {} is still there after detach", c.label, att.host_ifname);
    }
    if world.namespaces[1].links.iter().any(|l| l.name == att.ifname) {
        bail!("{}: interface {} is still there after detach", c.label, att.ifname);
    }
    Ok(())
}

/// Replaces runtime-chosen host veth names by `host-<label>` wherever a name appears (link,
/// master, peer, bridge ports, routes), then sorts again so the order does not depend on the
/// random names.
fn normalise_host_ends(snapshot: &mut vethlab_verify::Snapshot, attached: &Attached) {
    let names: BTreeMap<&str, String> =
        attached.iter().map(|((label, _), a)| (a.host_ifname.as_str(), format!("host-{label}"))).collect();
    let rename = |text: &mut String| {
        if let Some(new) = names.get(text.as_str()) {
            *text = new.clone();
        } else if let Some((name, rest)) = text.split_once('@')
            && let Some(new) = names.get(name)
        {
            *text = format!("{new}@{rest}");
        }
    };
    for ns in &mut snapshot.namespaces {
        for link in &mut ns.links {
            rename(&mut link.name);
            link.master.as_mut().map(rename);
            link.peer.as_mut().map(rename);
            link.ports.iter_mut().for_each(rename);
            link.ports.sort();
        }
        ns.links.sort_by(|a, b| a.name.cmp(&b.name));
        for route in &mut ns.routes {
            for (old, new) in &names {
                *route = route.replace(&format!("dev {old}"), &format!("dev {new}"));
            }
        }
        ns.routes.sort();
    }
}
