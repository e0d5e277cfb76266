//! Privileged: capture two namespaces joined by a veth and check the raw and normalised views.

mod common;

use common::{Pair, require_root};
use vethlab_verify::capture;

#[tokio::test(flavor = "current_thread")]
async fn capture_resolves_veth_peers_across_namespaces() {
    if !require_root("capture_resolves_veth_peers_across_namespaces") {
        return;
    }
    let pair = Pair::new().await;
    let world = capture(&[("a", &pair.a), ("b", &pair.b)]).await.expect("capture");
    println!("{}", serde_json::to_string_pretty(&world).unwrap());
    let a = &world.namespaces[0];
    let va = a.links.iter().find(|l| l.name == "va").expect("va in a");
    let peer = va.peer.as_ref().expect("va has a peer");
    assert_eq!(peer.netns.as_deref(), Some("b"));
    assert_eq!(peer.name.as_deref(), Some("vb"));
}
