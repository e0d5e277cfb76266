//! `vethlab demo`: the seed topology built live in a private namespace, drawn with the values the
//! kernel reports, pinged both ways, torn down, and checked for residue.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vethlab_core::{ConnectRequest, NetworkRequest};
use vethlab_runtime::{Netlink, Netns, Runtime, StateDir};
use vethlab_verify::{Link, NsState, World};

const NETWORK: &str = "zdocker0";
const SUBNET: &str = "192.168.1.0/24";
const CONTAINER_ID: &str = "a1b2c3d4e5f6";
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Inner width of each namespace box in the diagram.
const BOX: usize = 40;

pub async fn demo() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "vethlab demo needs root to create network namespaces (CAP_SYS_ADMIN, CAP_NET_ADMIN): try `sudo vethlab demo`"
        );
    }
    // Everything lives in namespaces created here and in a scratch state directory: when they are
    // dropped, the kernel removes whatever is left, so the machine is never touched.
    let host = Netns::new_anonymous("host (private)")?;
    let container = Netns::new_anonymous("c1")?;
    Netlink::open(&host)?.set_up(1, "lo").await?;
    let state = Scratch::new()?;
    let rt = Runtime::new(host.try_clone()?, StateDir::new(&state.0));
    let baseline = vethlab_verify::capture(&[("host", &host)]).await?;

    println!("vethlab demo: the zdocker seed topology, built live in a private namespace\n");
    println!("$ vethlab network create --subnet {SUBNET} {NETWORK}");
    let net = rt
        .create_network(&NetworkRequest { name: NETWORK.into(), subnet: SUBNET.into(), ..Default::default() })
        .await?;
    println!("$ vethlab connect {NETWORK} --id {CONTAINER_ID} --netns <c1>\n");
    let req = ConnectRequest {
        network: NETWORK.into(),
        container_id: CONTAINER_ID.into(),
        netns: container.label().into(),
        ..Default::default()
    };
    let ep = rt.connect(&req, &container).await?;

    let world = vethlab_verify::capture(&[("host", &host), ("c1", &container)]).await?;
    print!("{}", diagram(&world, ep.host_ifname.as_str(), ep.peer_ifname.as_str())?);

    let gw = net.spec.gateway;
    let rtt = vethlab_verify::ping(&host, ep.address, PING_TIMEOUT).context("ping gateway -> container")?;
    println!("\nping {gw} (host, {NETWORK}) -> {} (c1): {:.3} ms", ep.address, ms(rtt));
    let rtt = vethlab_verify::ping(&container, gw, PING_TIMEOUT).context("ping container -> gateway")?;
    println!("ping {} (c1) -> {gw} (host, {NETWORK}): {:.3} ms", ep.address, ms(rtt));

    println!("\n$ vethlab disconnect {NETWORK} --id {CONTAINER_ID}");
    rt.disconnect(NETWORK, CONTAINER_ID).await?;
    println!("$ vethlab network rm {NETWORK}");
    rt.remove_network(NETWORK, false).await?;
    let after = vethlab_verify::capture(&[("host", &host)]).await?;
    let opts = vethlab_verify::NormalizeOptions::default();
    let (before, after) =
        (vethlab_verify::normalize(&baseline, &opts), vethlab_verify::normalize(&after, &opts));
    match vethlab_verify::residue::diff(&before, &after) {
        None => println!("\nresidue check: the host namespace is exactly as before; no state left"),
        Some(diff) => bail!("teardown left residue:\n{diff}"),
    }
    if !rt.list()?.is_empty() {
        bail!("teardown left networks in the state directory");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn find<'a>(ns: &'a NsState, name: &str) -> Result<&'a Link> {
    ns.links
        .iter()
        .find(|l| l.name == name)
        .with_context(|| format!("{name} not found in netns {}", ns.label))
}

fn addr(ns: &NsState, link: &str) -> String {
    let v4: Vec<String> = ns
        .addresses
        .iter()
        .filter(|a| a.link == link && a.address.is_ipv4())
        .map(|a| format!("{}/{}", a.address, a.prefix))
        .collect();
    if v4.is_empty() { "(no IPv4 address)".into() } else { v4.join(", ") }
}

fn state(l: &Link) -> &'static str {
    match (l.admin_up, l.lower_up) {
        (true, true) => "UP",
        (true, false) => "up, no carrier",
        _ => "DOWN",
    }
}

/// The seed's diagram, filled with live values.
fn diagram(world: &World, host_if: &str, peer_if: &str) -> Result<String> {
    let host = world.namespaces.iter().find(|n| n.label == "host").context("host not captured")?;
    let ctr = world.namespaces.iter().find(|n| n.label == "c1").context("c1 not captured")?;
    let (br, veth, peer) = (find(host, NETWORK)?, find(host, host_if)?, find(ctr, peer_if)?);
    let lo = find(ctr, "lo")?;
    let mac = |l: &Link| l.mac.clone().unwrap_or_default();
    let left = [
        format!("{} (bridge, ifindex {})", br.name, br.index),
        format!("  {}  {}", addr(host, NETWORK), state(br)),
        format!("  mac {}", mac(br)),
        "        │".to_string(),
        format!("{} (veth, ifindex {})", veth.name, veth.index),
        format!("  master {}  {}", veth.master.as_deref().unwrap_or("-"), state(veth)),
        format!("  mac {}", mac(veth)),
    ];
    // The peer sits on the same row as the host end, so the pair's arrow joins them.
    let right = [
        format!("lo (ifindex {})  {}", lo.index, state(lo)),
        format!("  {}", addr(ctr, "lo")),
        String::new(),
        String::new(),
        format!("{} (veth, ifindex {})", peer.name, peer.index),
        format!("  {}  {}", addr(ctr, peer_if), state(peer)),
        format!("  mac {}", mac(peer)),
    ];
    let mut out = String::new();
    let rule = "─".repeat(BOX + 2);
    let title = "Host network namespace (private)";
    writeln!(out, "  {title:<w$}      Container network namespace (c1)", w = BOX + 2)?;
    writeln!(out, "  ┌{rule}┐      ┌{rule}┐")?;
    for (i, (l, r)) in left.iter().zip(&right).enumerate() {
        // The veth pair crosses between the boxes on the host end's row.
        let link = if i == 4 { "◄────►" } else { "      " };
        let (lb, rb) = if i == 4 { ("├", "┤") } else { ("│", "│") };
        writeln!(out, "  │ {l:<BOX$} {lb}{link}{rb} {r:<BOX$} │")?;
    }
    writeln!(out, "  └{rule}┘      └{rule}┘")?;
    writeln!(out, "  container routes (main table):")?;
    for r in ctr.routes.iter().filter(|r| r.family == "inet") {
        writeln!(out, "    {}", vethlab_verify::route_line(r))?;
    }
    writeln!(out, "  data path: c1 → {peer_if} → {host_if} → {NETWORK} → other containers or the host")?;
    Ok(out)
}

/// A state directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("vethlab-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
