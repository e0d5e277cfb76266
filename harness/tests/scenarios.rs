//! The scenario catalogue, one test per scenario, each with its reviewed snapshot in
//! `harness/snapshots/`. Tests run in parallel: each builds its own lab.

use vethlab_harness::{check::check, require_root, scenario::by_name};

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() -> anyhow::Result<()> {
            if !require_root!() {
                return Ok(());
            }
            let scenario = by_name(stringify!($name));
            let outcome = check(&scenario).await?;
            insta::with_settings!({
                snapshot_path => "../snapshots",
                prepend_module_to_snapshot => false,
                description => scenario.description,
                omit_expression => true,
            }, {
                insta::assert_snapshot!(stringify!($name), outcome.yaml);
            });
            Ok(())
        }
    )*};
}

scenario_tests!(
    seed,
    two_containers_one_bridge,
    two_networks,
    disconnect_one_of_two,
    network_remove,
    ipam_order_and_reuse,
    exhaustion_of_a_29,
    static_ip,
    custom_mtu_and_ifname,
    state_reload,
    fifty_containers,
    masquerade_to_upstream,
    published_ports,
    internal_network,
    networks_isolated,
);

/// The catalogue and the tests above list the same scenarios.
#[test]
fn every_scenario_has_a_test() {
    let source = include_str!("scenarios.rs");
    for s in vethlab_harness::scenario::catalogue() {
        assert!(source.contains(&format!("    {},\n", s.name)), "scenario {} has no test", s.name);
    }
}
