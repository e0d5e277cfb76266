//! The scenario catalogue through every runtime adapter: vethlab in-process, the `vethlab`
//! binary, vethlab as a CNI plugin, Debian's CNI bridge plugin and netavark. Each scenario must
//! pass or be explicitly unsupported, and each passing scenario's normalised state is compared
//! with that runtime's reviewed snapshot in `harness/snapshots/<runtime>/`.

use std::path::Path;

use vethlab_harness::cli::vethlab_bin;
use vethlab_harness::conformance::{Verdict, run_case};
use vethlab_harness::require_root;
use vethlab_harness::runtimes::{self, NetworkRuntime, cni::Cni};
use vethlab_harness::scenario::catalogue;

const CNI_BRIDGE: &str = "/usr/lib/cni/bridge";
const NETAVARK: &str = "/usr/lib/podman/netavark";

/// Runs the catalogue; returns the failures (scenario: reason) and snapshots each pass.
async fn whole_catalogue(rt: &mut dyn NetworkRuntime) -> Vec<String> {
    let slug = rt.slug();
    let mut failures = Vec::new();
    for scenario in catalogue() {
        let result = run_case(rt, &scenario).await;
        eprintln!("{} on {}: {} ({:.2}s)", scenario.name, rt.name(), result.verdict.word(), result.seconds);
        match (&result.verdict, &result.snapshot) {
            (Verdict::Pass, Some(yaml)) => {
                insta::with_settings!({
                    snapshot_path => format!("../snapshots/{slug}"),
                    prepend_module_to_snapshot => false,
                    description => scenario.description,
                    omit_expression => true,
                }, {
                    insta::assert_snapshot!(scenario.name, yaml);
                });
            }
            (Verdict::Fail(reason), _) => failures.push(format!("{}: {reason}", scenario.name)),
            _ => {}
        }
    }
    failures
}

fn installed(path: &str) -> bool {
    let there = Path::new(path).is_file();
    if !there {
        // ci/install.sh installs it; a developer box may lack it. Under CI that is a failure.
        assert!(std::env::var_os("CI").is_none(), "{path} is not installed; CI must have it");
        eprintln!("SKIPPED: {path} is not installed");
    }
    there
}

#[tokio::test]
async fn native_passes_the_catalogue() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let mut rt = runtimes::parse("native", &vethlab_bin()?)?;
    assert_eq!(whole_catalogue(rt.as_mut()).await, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn cli_passes_the_catalogue() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let mut rt = runtimes::parse("cli", &vethlab_bin()?)?;
    assert_eq!(whole_catalogue(rt.as_mut()).await, Vec::<String>::new());
    Ok(())
}

/// The CNI adapter driven against vethlab's own CNI mode passes what native passes: every
/// scenario except the one that removes a network, which CNI has no verb for.
#[tokio::test]
async fn vethlab_as_cni_plugin_passes_the_catalogue_like_native() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let bin = vethlab_bin()?;
    let mut cni = runtimes::parse(&format!("cni:{}", bin.display()), &bin)?;
    let mut native = runtimes::parse("native", &bin)?;
    let mut differs = Vec::new();
    for scenario in catalogue() {
        let a = run_case(cni.as_mut(), &scenario).await;
        let b = run_case(native.as_mut(), &scenario).await;
        let unsupported_here = matches!(a.verdict, Verdict::Unsupported(_));
        if !(a.verdict == Verdict::Pass && b.verdict == Verdict::Pass
            || unsupported_here && scenario.name == "network_remove")
        {
            differs.push(format!("{}: cni {:?}, native {:?}", scenario.name, a.verdict, b.verdict));
        }
    }
    assert_eq!(differs, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn vethlab_cni_snapshots() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let bin = vethlab_bin()?;
    let mut rt = runtimes::parse(&format!("cni:{}", bin.display()), &bin)?;
    assert_eq!(whole_catalogue(rt.as_mut()).await, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn cni_bridge_plugin_passes_the_catalogue() -> anyhow::Result<()> {
    if !require_root!() || !installed(CNI_BRIDGE) {
        return Ok(());
    }
    let mut rt = runtimes::parse(&format!("cni:{CNI_BRIDGE}"), &vethlab_bin()?)?;
    assert_eq!(whole_catalogue(rt.as_mut()).await, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn netavark_passes_the_catalogue() -> anyhow::Result<()> {
    if !require_root!() || !installed(NETAVARK) {
        return Ok(());
    }
    let mut rt = runtimes::parse(&format!("netavark:{NETAVARK}"), &vethlab_bin()?)?;
    assert_eq!(whole_catalogue(rt.as_mut()).await, Vec::<String>::new());
    Ok(())
}

/// A peer broken on purpose: the bridge plugin with `isGateway: false` gives the bridge no
/// address, so the gateway the container routes to does not answer; the scenarios that expect to
/// reach it turn red, each saying who could not reach whom.
#[tokio::test]
async fn bridge_plugin_without_gateway_turns_red_with_a_reason() -> anyhow::Result<()> {
    if !require_root!() || !installed(CNI_BRIDGE) {
        return Ok(());
    }
    let mut rt = Cni::new(CNI_BRIDGE.into())?.with_patch(serde_json::json!({"isGateway": false}));
    for name in ["seed", "two_networks", "custom_mtu_and_ifname"] {
        let scenario = vethlab_harness::scenario::by_name(name);
        let result = run_case(&mut rt, &scenario).await;
        match &result.verdict {
            Verdict::Fail(reason) => assert!(
                reason.contains("should reach the gateway of") && reason.contains("could not reach"),
                "{name}: unclear reason: {reason}"
            ),
            other => panic!("{name}: a bridge without a gateway should fail, got {other:?}"),
        }
    }
    Ok(())
}
