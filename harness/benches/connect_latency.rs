//! Connect and disconnect latency of the in-process runtime, printed as figures (not asserted):
//! `cargo bench -p vethlab-harness --bench connect_latency` as root. The reference
//! points on this machine: the CNI bridge plugin takes about 8 ms per container, netavark 33 ms.

use std::time::{Duration, Instant};

use vethlab_core::{ConnectRequest, NetworkRequest};
use vethlab_harness::{ContainerKind, Lab};

/// Containers per run; enough for stable percentiles, few enough to finish in seconds.
const CONTAINERS: usize = 100;

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("connect_latency: needs root (network namespaces); skipped");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let lab = Lab::new().await?;
    let runtime = lab.runtime();
    let req = NetworkRequest { name: "bench0".into(), subnet: "10.200.0.0/16".into(), ..Default::default() };
    runtime.create_network(&req).await?;
    let containers: Vec<_> = (0..CONTAINERS)
        .map(|i| lab.container(&format!("c{i}"), ContainerKind::Named))
        .collect::<Result<_, _>>()?;

    let mut connect = Vec::with_capacity(CONTAINERS);
    for (i, c) in containers.iter().enumerate() {
        let req = ConnectRequest {
            network: "bench0".into(),
            container_id: format!("b{i:04}xxxx"),
            netns: c.path().display().to_string(),
            ..Default::default()
        };
        let start = Instant::now();
        runtime.connect(&req, c.netns()).await?;
        connect.push(start.elapsed());
    }
    let mut disconnect = Vec::with_capacity(CONTAINERS);
    for i in 0..CONTAINERS {
        let start = Instant::now();
        runtime.disconnect("bench0", &format!("b{i:04}xxxx")).await?;
        disconnect.push(start.elapsed());
    }
    runtime.remove_network("bench0", false).await?;
    report("connect", connect);
    report("disconnect", disconnect);
    Ok(())
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: usize| samples[(samples.len() - 1) * p / 100].as_secs_f64() * 1e3;
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1e3 / samples.len() as f64;
    println!(
        "{what:<10} n={:<4} mean {mean:.3} ms  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        samples.len(),
        pct(50),
        pct(90),
        pct(99),
        pct(100)
    );
}
