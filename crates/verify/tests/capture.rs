//! Privileged: capture real namespaces and check the raw and normalised views.

mod common;

use common::{Bridged, Pair, require_root};
use vethlab_verify::{NormalizeOptions, capture, normalize, to_yaml};

#[tokio::test(flavor = "current_thread")]
async fn capture_resolves_veth_peers_across_namespaces() {
    if !require_root("capture_resolves_veth_peers_across_namespaces") {
        return;
    }
    let pair = Pair::new().await;
    let world = capture(&[("a", &pair.a), ("b", &pair.b)]).await.expect("capture");
    let a = &world.namespaces[0];
    let va = a.links.iter().find(|l| l.name == "va").expect("va in a");
    let peer = va.peer.as_ref().expect("va has a peer");
    assert_eq!(peer.netns.as_deref(), Some("b"));
    assert_eq!(peer.name.as_deref(), Some("vb"));
    let b = &world.namespaces[1];
    let vb = b.links.iter().find(|l| l.name == "vb").expect("vb in b");
    assert_eq!(vb.peer.as_ref().and_then(|p| p.name.as_deref()), Some("va"));
}

#[tokio::test(flavor = "current_thread")]
async fn capture_of_a_peer_outside_the_captured_set_is_marked_uncaptured() {
    if !require_root("capture_of_a_peer_outside_the_captured_set_is_marked_uncaptured") {
        return;
    }
    let pair = Pair::new().await;
    let world = capture(&[("a", &pair.a)]).await.expect("capture");
    let yaml = to_yaml(&normalize(&world, &NormalizeOptions::default()));
    assert!(yaml.contains("peer: ?@uncaptured") || yaml.contains("peer: '?@uncaptured'"), "{yaml}");
}

const BRIDGED_YAML: &str = include_str!("fixtures/bridged.yaml");

#[tokio::test(flavor = "current_thread")]
async fn capture_of_a_bridge_topology_matches_the_recorded_snapshot() {
    if !require_root("capture_of_a_bridge_topology_matches_the_recorded_snapshot") {
        return;
    }
    let topo = Bridged::new().await;
    let world = capture(&[("host", &topo.host), ("c1", &topo.c1), ("c2", &topo.c2)]).await.expect("capture");
    // Set VETHLAB_RECORD_FIXTURE=1 to refresh the committed raw capture and snapshot used by
    // the unprivileged normalisation tests.
    if std::env::var_os("VETHLAB_RECORD_FIXTURE").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bridged.json");
        std::fs::write(path, serde_json::to_string_pretty(&world).expect("json")).expect("write fixture");
    }
    let yaml = to_yaml(&normalize(&world, &NormalizeOptions::vethlab()));
    if std::env::var_os("VETHLAB_RECORD_FIXTURE").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bridged.yaml");
        std::fs::write(path, &yaml).expect("write fixture");
        return;
    }
    assert_eq!(yaml, BRIDGED_YAML, "got:\n{yaml}");
}

#[tokio::test(flavor = "current_thread")]
async fn residue_diff_shows_a_leftover_link_under_its_namespace() {
    if !require_root("residue_diff_shows_a_leftover_link_under_its_namespace") {
        return;
    }
    let pair = Pair::new().await;
    let ns = [("a", &pair.a), ("b", &pair.b)];
    let opts = NormalizeOptions::default();
    let before = vethlab_verify::capture_snapshot(&ns, &opts).await.expect("before");
    let again = vethlab_verify::capture_snapshot(&ns, &opts).await.expect("again");
    assert_eq!(vethlab_verify::diff(&before, &again), None);

    let nl = vethlab_runtime::Netlink::open(&pair.b).expect("netlink in b");
    nl.add_bridge("leftover0", [0x02, 0, 0, 0, 0, 0x99], None).await.expect("create bridge");
    let after = vethlab_verify::capture_snapshot(&ns, &opts).await.expect("after");
    let diff = vethlab_verify::diff(&before, &after).expect("a difference");
    assert!(diff.contains("netns: b\n"), "{diff}");
    assert!(diff.contains("+  - name: leftover0\n+    kind: bridge\n+    state: up\n"), "{diff}");
}
