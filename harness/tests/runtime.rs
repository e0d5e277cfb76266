//! Privileged tests of the runtime itself (issue: the bridge-network runtime): the seed's exact
//! kernel state, the original's bugs, rollback and teardown. Each test builds its own lab.

use std::collections::BTreeSet;
use std::time::Duration;

use vethlab_core::{ConnectRequest, NetworkRequest};
use vethlab_harness::{Container, ContainerKind, Lab, require_root};
use vethlab_runtime::Netlink;
use vethlab_verify::{assert_reachable, ping};

fn net(name: &str, subnet: &str) -> NetworkRequest {
    NetworkRequest { name: name.into(), subnet: subnet.into(), ..Default::default() }
}

fn conn(network: &str, id: &str, c: &Container) -> ConnectRequest {
    ConnectRequest {
        network: network.into(),
        container_id: id.into(),
        netns: c.path().display().to_string(),
        ..Default::default()
    }
}

const TIMEOUT: Duration = Duration::from_secs(2);

/// The seed, checked link by link against the kernel for both kinds of container namespace.
#[tokio::test]
async fn seed_topology_exact_state() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    for kind in [ContainerKind::Process, ContainerKind::Named] {
        let lab = Lab::new().await?;
        let c1 = lab.container("c1", kind)?;
        let rt = lab.runtime();
        rt.create_network(&net("zdocker0", "192.168.1.0/24")).await?;
        let ep = rt.connect(&conn("zdocker0", "a1b2c3d4e5f6", &c1), c1.netns()).await?;
        assert_eq!(ep.host_ifname.as_str(), "a1b2c");
        assert_eq!(ep.peer_ifname.as_str(), "cif-a1b2c");
        assert_eq!(ep.address.to_string(), "192.168.1.2");

        // Read back through netlink, independently of what the runtime says it did.
        let host = Netlink::open(lab.host())?;
        let bridge = host.link_by_name("zdocker0").await?.expect("bridge exists");
        let veth = host.link_by_name("a1b2c").await?.expect("host veth exists");
        let master = veth.attributes.iter().find_map(|a| match a {
            netlink_packet_route::link::LinkAttribute::Controller(m) => Some(*m),
            _ => None,
        });
        assert_eq!(master, Some(bridge.header.index), "a1b2c's master is zdocker0");
        let ctr = Netlink::open(c1.netns())?;
        assert!(ctr.link_by_name("cif-a1b2c").await?.is_some(), "peer is inside the container");
        assert!(host.link_by_name("cif-a1b2c").await?.is_none(), "peer is not in the host namespace");

        let yaml = lab.snapshot(&[&c1]).await?;
        for line in
            ["192.168.1.1/24", "192.168.1.2/24", "default via 192.168.1.1 dev cif-a1b2c", "02:42:c0:a8:01:02"]
        {
            assert!(yaml.contains(line), "{kind:?}: snapshot lacks {line:?}:\n{yaml}");
        }
        assert_reachable(("c1", c1.netns()), "192.168.1.1".parse()?, TIMEOUT)?;
        assert_reachable(("host", lab.host()), "192.168.1.2".parse()?, TIMEOUT)?;
    }
    Ok(())
}

/// Two containers on one bridge get .2 and .3 and reach each other; teardown leaves nothing.
#[tokio::test]
async fn two_containers_ping_each_other_and_leave_nothing() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let before = lab.host_snapshot().await?;
    let (c1, c2) = (lab.container("c1", ContainerKind::Process)?, lab.container("c2", ContainerKind::Named)?);
    let rt = lab.runtime();
    rt.create_network(&net("zdocker0", "192.168.1.0/24")).await?;
    let e1 = rt.connect(&conn("zdocker0", "aaaaa1", &c1), c1.netns()).await?;
    let e2 = rt.connect(&conn("zdocker0", "bbbbb2", &c2), c2.netns()).await?;
    assert_eq!(
        (e1.address.to_string(), e2.address.to_string()),
        ("192.168.1.2".into(), "192.168.1.3".into())
    );
    ping(c1.netns(), e2.address, TIMEOUT)?;
    ping(c2.netns(), e1.address, TIMEOUT)?;

    assert!(rt.disconnect("zdocker0", "aaaaa1").await?.is_some());
    assert!(rt.disconnect("zdocker0", "aaaaa1").await?.is_none(), "disconnect is idempotent");
    rt.disconnect("zdocker0", "bbbbb2").await?;
    rt.remove_network("zdocker0", false).await?;
    assert_eq!(lab.host_snapshot().await?, before, "residue in the host namespace");
    assert!(rt.list()?.is_empty(), "state still lists networks");
    Ok(())
}

/// A connect that fails after the veth exists removes it and releases the address.
#[tokio::test]
async fn failed_connect_rolls_back() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let rt = lab.runtime();
    rt.create_network(&net("zdocker0", "192.168.1.0/24")).await?;
    let baseline = lab.host_snapshot().await?;
    // A container that already has a default route: the last step (route add) fails with EEXIST.
    let c1 = lab.container("c1", ContainerKind::Named)?;
    let ctr = Netlink::open(c1.netns())?;
    ctr.handle().link().add(rtnetlink::LinkVeth::new("pre0", "pre1").up().build()).execute().await?;
    let pre0 = ctr.index_of("pre0").await?;
    ctr.set_up(1, "lo").await?;
    ctr.add_address(pre0, "pre0", "10.99.0.1".parse()?, 24).await?;
    ctr.add_default_route(pre0, "pre0", "10.99.0.2".parse()?).await?;
    let ctr_before = lab.snapshot(&[&c1]).await?;

    let err = rt.connect(&conn("zdocker0", "a1b2c3d4e5f6", &c1), c1.netns()).await.expect_err("route exists");
    let msg = err.to_string();
    assert!(msg.contains("add default route via 192.168.1.1 dev cif-a1b2c"), "{msg}");
    assert!(msg.contains("File exists"), "{msg}");
    assert_eq!(lab.snapshot(&[&c1]).await?, ctr_before, "rollback left something behind");
    assert_eq!(lab.host_snapshot().await?, baseline);
    assert!(rt.inspect("zdocker0")?.endpoints.is_empty(), "endpoint recorded despite failure");

    // The address was never kept: the next container gets .2.
    let c2 = lab.container("c2", ContainerKind::Process)?;
    let ep = rt.connect(&conn("zdocker0", "bbbbb2", &c2), c2.netns()).await?;
    assert_eq!(ep.address.to_string(), "192.168.1.2");
    Ok(())
}

/// Refusals that must happen before any side effect, each leaving kernel and state unchanged.
#[tokio::test]
async fn refusals_change_nothing() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let rt = lab.runtime();
    rt.create_network(&net("small", "10.7.0.0/30")).await?;
    let c1 = lab.container("c1", ContainerKind::Process)?;
    let c2 = lab.container("c2", ContainerKind::Named)?;
    rt.connect(&conn("small", "a1b2c3d4e5f6", &c1), c1.netns()).await?;
    // An interface vethlab did not create, named like a network.
    let host = Netlink::open(lab.host())?;
    host.handle().link().add(rtnetlink::LinkVeth::new("eth0", "eth0p").build()).execute().await?;

    let before_host = lab.snapshot(&[&c1, &c2]).await?;
    let before_state = rt.list()?;
    let cases: Vec<(&str, anyhow::Result<()>)> = vec![
        (
            "network small already exists",
            rt.create_network(&net("small", "10.8.0.0/24")).await.map(drop).map_err(Into::into),
        ),
        (
            "interface eth0 already exists in netns host and was not created by vethlab",
            rt.create_network(&net("eth0", "10.9.0.0/24")).await.map(drop).map_err(Into::into),
        ),
        (
            "overlaps network small",
            rt.create_network(&net("other", "10.7.0.0/16")).await.map(drop).map_err(Into::into),
        ),
        (
            "subnet 10.7.0.0/30 is exhausted",
            rt.connect(&conn("small", "c2c2c2", &c2), c2.netns()).await.map(drop).map_err(Into::into),
        ),
        (
            "host interface a1b2c for container a1b2c999 is already used by endpoint a1b2c3d4e5f6 on network small",
            rt.connect(&conn("small", "a1b2c999", &c2), c2.netns()).await.map(drop).map_err(Into::into),
        ),
        (
            "is the host namespace or vethlab's own",
            rt.connect(&conn("small", "hosthost", &c2), lab.host()).await.map(drop).map_err(Into::into),
        ),
        (
            "network nope does not exist",
            rt.connect(&conn("nope", "c2c2c2", &c2), c2.netns()).await.map(drop).map_err(Into::into),
        ),
        (
            "endpoint(s) still attached (a1b2c3d4e5f6)",
            rt.remove_network("small", false).await.map_err(Into::into),
        ),
    ];
    for (want, result) in cases {
        let err = result.expect_err(want).to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
    assert_eq!(lab.snapshot(&[&c1, &c2]).await?, before_host, "a refused operation changed the kernel");
    assert_eq!(rt.list()?, before_state, "a refused operation changed the state");
    Ok(())
}

/// Addresses: static, taken, outside, and reuse after release.
#[tokio::test]
async fn static_addresses_and_reuse() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let rt = lab.runtime();
    rt.create_network(&net("n1", "172.30.0.0/24")).await?;
    let cs: Vec<_> =
        (0..4).map(|i| lab.container(&format!("c{i}"), ContainerKind::Process)).collect::<Result<_, _>>()?;
    let stat = ConnectRequest { ip: Some("172.30.0.50".into()), ..conn("n1", "stat1", &cs[0]) };
    assert_eq!(rt.connect(&stat, cs[0].netns()).await?.address.to_string(), "172.30.0.50");
    for (ip, want) in [
        ("172.30.0.50", "already assigned to container stat1"),
        ("172.30.1.5", "outside subnet"),
        ("172.30.0.1", "gateway address"),
    ] {
        let req = ConnectRequest { ip: Some(ip.into()), ..conn("n1", "other1", &cs[1]) };
        let err = rt.connect(&req, cs[1].netns()).await.expect_err(ip).to_string();
        assert!(err.contains(want), "{err}");
    }
    assert_eq!(
        rt.connect(&conn("n1", "dyn01", &cs[1]), cs[1].netns()).await?.address.to_string(),
        "172.30.0.2"
    );
    assert_eq!(
        rt.connect(&conn("n1", "dyn02", &cs[2]), cs[2].netns()).await?.address.to_string(),
        "172.30.0.3"
    );
    rt.disconnect("n1", "dyn01").await?;
    assert_eq!(
        rt.connect(&conn("n1", "dyn03", &cs[3]), cs[3].netns()).await?.address.to_string(),
        "172.30.0.2"
    );
    Ok(())
}

/// `--ifname` and `--mtu`; disconnect after the container vanished; `rm --force`.
#[tokio::test]
async fn ifname_mtu_vanished_container_and_force_remove() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let before = lab.host_snapshot().await?;
    let rt = lab.runtime();
    rt.create_network(&NetworkRequest { mtu: Some(1400), ..net("jumbo", "10.20.0.0/24") }).await?;
    let c1 = lab.container("c1", ContainerKind::Process)?;
    let c2 = lab.container("c2", ContainerKind::Named)?;
    let req = ConnectRequest { ifname: Some("eth0".into()), ..conn("jumbo", "c1c1c1", &c1) };
    rt.connect(&req, c1.netns()).await?;
    rt.connect(&conn("jumbo", "c2c2c2", &c2), c2.netns()).await?;
    let yaml = lab.snapshot(&[&c1, &c2]).await?;
    assert!(yaml.contains("default via 10.20.0.1 dev eth0"), "{yaml}");
    assert_eq!(yaml.matches("mtu: 1400").count(), 5, "bridge, two host ends, two peers:\n{yaml}");

    c1.destroy();
    assert!(rt.disconnect("jumbo", "c1c1c1").await?.is_some(), "disconnect works once the netns is gone");
    rt.remove_network("jumbo", true).await?;
    assert_eq!(lab.host_snapshot().await?, before, "force remove left residue");
    assert!(rt.list()?.is_empty());
    Ok(())
}

/// State written by one runtime is read by the next (a new `vethlab` process).
#[tokio::test]
async fn state_survives_a_new_runtime() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let c1 = lab.container("c1", ContainerKind::Process)?;
    lab.runtime().create_network(&net("zdocker0", "192.168.1.0/24")).await?;
    lab.runtime().connect(&conn("zdocker0", "a1b2c3d4e5f6", &c1), c1.netns()).await?;
    let again = lab.reopen_runtime()?;
    let record = again.inspect("zdocker0")?;
    assert_eq!(record.endpoints.len(), 1);
    // The reloaded gateway is the gateway, not the network address (a bug of the original).
    assert_eq!(record.spec.gateway.to_string(), "192.168.1.1");
    let c2 = lab.container("c2", ContainerKind::Process)?;
    let ep = again.connect(&conn("zdocker0", "bbbbb2", &c2), c2.netns()).await?;
    assert_eq!(ep.address.to_string(), "192.168.1.3");
    let yaml = lab.snapshot(&[&c2]).await?;
    assert!(yaml.contains("default via 192.168.1.1 dev cif-bbbbb"), "{yaml}");
    Ok(())
}

/// Concurrent `vethlab connect` processes never hand out the same address.
#[tokio::test]
async fn concurrent_cli_connects_get_distinct_addresses() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let out = lab.cli(&["network", "create", "--subnet", "10.30.0.0/24", "par0"])?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cs: Vec<_> =
        (0..8).map(|i| lab.container(&format!("c{i}"), ContainerKind::Named)).collect::<Result<_, _>>()?;
    let lab_ref = &lab;
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let id = format!("ctr{i:02}xx");
                let path = c.path().display().to_string();
                s.spawn(move || lab_ref.cli(&["connect", "par0", "--id", &id, "--netns", &path]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let mut addresses = BTreeSet::new();
    for out in outputs {
        let out = out?;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout)?;
        assert!(
            addresses.insert(json["address"].as_str().unwrap_or_default().to_owned()),
            "duplicate: {json}"
        );
    }
    let want: BTreeSet<_> = (2..10).map(|d| format!("10.30.0.{d}/24")).collect();
    assert_eq!(addresses, want);
    Ok(())
}
