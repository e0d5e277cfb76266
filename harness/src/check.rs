//! `check(scenario)`: set-up → capture → snapshot → probes → teardown → residue.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use vethlab_core::{ConnectRequest, NetworkRequest};
use vethlab_runtime::{Netns, Runtime};

use crate::lab::{Container, Lab};
use crate::probes::{REACH_TIMEOUT, UNREACH_TIMEOUT};
use crate::scenario::{Scenario, SnapshotScope, Step, Target};

/// What a scenario left after its steps: the snapshot to compare and who has which address.
#[derive(Debug)]
pub struct Outcome {
    pub yaml: String,
    pub addresses: BTreeMap<String, Ipv4Addr>,
}

/// Runs a scenario end to end and returns its normalised snapshot; the caller compares it with
/// `insta` (see `tests/scenarios.rs`). Fails on any step error, unexpected reachability, or
/// residue after teardown.
pub async fn check(scenario: &Scenario) -> Result<Outcome> {
    let lab = Lab::new().await?;
    // The outside world is part of the baseline: residue is what vethlab leaves, not the lab.
    let upstream = if scenario.needs_upstream() { Some(lab.upstream().await?) } else { None };
    let before = lab.host_snapshot().await?;
    let containers: BTreeMap<&str, Container> = scenario
        .containers
        .iter()
        .map(|c| Ok((c.label.as_str(), lab.container(&c.label, c.kind)?)))
        .collect::<Result<_>>()?;
    let ids: BTreeMap<&str, &str> =
        scenario.containers.iter().map(|c| (c.label.as_str(), c.id.as_str())).collect();
    let mut runtime = lab.reopen_runtime()?;
    for n in &scenario.networks {
        let req = NetworkRequest {
            name: n.name.into(),
            driver: None,
            subnet: n.subnet.into(),
            gateway: n.gateway.map(Into::into),
            mtu: n.mtu,
            internal: n.internal,
        };
        runtime
            .create_network(&req)
            .await
            .with_context(|| format!("{}: create network {}", scenario.name, n.name))?;
    }

    let mut addresses = BTreeMap::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let ctx = || format!("{}: step {} ({step:?})", scenario.name, i + 1);
        match step {
            Step::Connect { container, network, ip, ifname, ports } => {
                let c = lookup(&containers, container)?;
                let req = request(network, ids[container.as_str()], c, *ip, *ifname, ports);
                let ep = runtime.connect(&req, c.netns()).await.with_context(ctx)?;
                addresses.insert(container.clone(), ep.address);
            }
            Step::ConnectFails { container, network, error } => {
                let c = lookup(&containers, container)?;
                let req = request(network, ids[container.as_str()], c, None, None, &[]);
                match runtime.connect(&req, c.netns()).await {
                    Ok(ep) => bail!("{}: connect should have failed but gave {}", ctx(), ep.address),
                    Err(e) if e.to_string().contains(error) => {}
                    Err(e) => bail!("{}: expected an error containing {error:?}, got {e:?}", ctx()),
                }
            }
            Step::Disconnect { container, network } => {
                runtime.disconnect(network, ids[container.as_str()]).await.with_context(ctx)?;
                addresses.remove(container);
            }
            Step::RemoveNetwork { network, force } => {
                let removed: Vec<String> = runtime
                    .inspect(network)?
                    .endpoints
                    .values()
                    .filter_map(|ep| scenario.containers.iter().find(|c| c.id == ep.container.as_str()))
                    .map(|c| c.label.clone())
                    .collect();
                runtime.remove_network(network, *force).await.with_context(ctx)?;
                for label in removed {
                    addresses.remove(&label);
                }
            }
            Step::Reload => runtime = lab.reopen_runtime()?,
        }
    }

    let shown: Vec<&Container> = match scenario.snapshot {
        SnapshotScope::All => containers.values().collect(),
        SnapshotScope::HostOnly => vec![],
    };
    let yaml = lab.snapshot(&shown).await?;

    let gateway = |network: &str| -> Result<Ipv4Addr> { Ok(runtime.inspect(network)?.spec.gateway) };
    let resolve = |target: &Target| -> Result<Ipv4Addr> {
        match target {
            Target::Gateway(n) => gateway(n),
            Target::Container(label) => {
                addresses.get(label).copied().with_context(|| format!("{label} has no address to probe"))
            }
        }
    };
    let from = |label: &str| -> Result<&Netns> {
        if label == "host" { Ok(lab.host()) } else { Ok(lookup(&containers, label)?.netns()) }
    };
    for (src, target) in &scenario.reachable {
        let dst = resolve(target)?;
        vethlab_verify::assert_reachable((src, from(src)?), dst, REACH_TIMEOUT)
            .with_context(|| format!("{}: {src} -> {target:?}", scenario.name))?;
    }
    for (src, target) in &scenario.unreachable {
        // A target whose network is gone has no gateway to look up: use the scenario's subnet.
        let dst = match resolve(target) {
            Ok(ip) => ip,
            Err(_) => scenario.defined_gateway(target)?,
        };
        vethlab_verify::assert_unreachable((src, from(src)?), dst, UNREACH_TIMEOUT)
            .with_context(|| format!("{}: {src} -> {target:?}", scenario.name))?;
    }

    crate::probes::run_all(scenario, &lab, &containers, upstream.as_ref(), &addresses)
        .with_context(|| scenario.name.to_owned())?;

    teardown(&runtime).await.with_context(|| format!("{}: teardown", scenario.name))?;
    let after = lab.host_snapshot().await?;
    if let Some(diff) =
        (before != after).then(|| vethlab_verify::diff_text(&before, &after, "before", "after"))
    {
        bail!("{}: teardown left residue in the host namespace:\n{diff}", scenario.name);
    }
    if !runtime.list()?.is_empty() {
        bail!("{}: teardown left networks in the state directory", scenario.name);
    }
    Ok(Outcome { yaml, addresses })
}

/// Disconnects every endpoint and removes every network, reporting every failure.
async fn teardown(runtime: &Runtime) -> Result<()> {
    let mut errors = Vec::new();
    for network in runtime.list()? {
        if let Err(e) = runtime.remove_network(network.spec.name.as_str(), true).await {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() { Ok(()) } else { bail!("{}", errors.join("; ")) }
}

pub(crate) fn lookup<'a>(containers: &'a BTreeMap<&str, Container>, label: &str) -> Result<&'a Container> {
    containers.get(label).with_context(|| format!("scenario names unknown container {label}"))
}

fn request(
    network: &str,
    id: &str,
    c: &Container,
    ip: Option<&str>,
    ifname: Option<&str>,
    ports: &[&str],
) -> ConnectRequest {
    ConnectRequest {
        network: network.into(),
        container_id: id.into(),
        ip: ip.map(Into::into),
        ifname: ifname.map(Into::into),
        netns: c.path().display().to_string(),
        ports: ports.iter().map(|p| (*p).to_owned()).collect(),
    }
}
