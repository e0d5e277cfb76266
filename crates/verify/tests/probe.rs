//! Privileged: probes between two namespaces joined by a veth, and across a bridge.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{A_IP, B_IP, BRIDGE_IP, Bridged, C1_IP, C2_IP, Pair, require_root};
use vethlab_verify::{
    EchoServer, Proto, assert_reachable, assert_unreachable, ping, tcp_connect, tcp_echo, udp_echo,
};

const T: Duration = Duration::from_secs(2);
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 99);

#[tokio::test(flavor = "current_thread")]
async fn ping_answers_across_a_veth_and_times_out_for_nobody() {
    if !require_root("ping_answers_across_a_veth_and_times_out_for_nobody") {
        return;
    }
    let pair = Pair::new().await;
    let rtt = ping(&pair.a, B_IP, T).expect("a pings b");
    assert!(rtt < T);
    assert_reachable(("a", &pair.a), B_IP, T).expect("b reachable from a");
    assert_reachable(("b", &pair.b), A_IP, T).expect("a reachable from b");
    assert_unreachable(("a", &pair.a), NOBODY, Duration::from_millis(300)).expect("nobody answers");

    let err = assert_reachable(("a", &pair.a), NOBODY, Duration::from_millis(300)).expect_err("nobody");
    assert_eq!(
        err.to_string(),
        "a (netns test-a) could not reach 10.213.0.99: no echo reply from 10.213.0.99 within 300ms"
    );
    let err = assert_unreachable(("a", &pair.a), B_IP, T).expect_err("b answers");
    assert!(err.to_string().starts_with("a (netns test-a) unexpectedly reached 10.213.0.2 in "), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn ping_without_a_route_fails_at_once() {
    if !require_root("ping_without_a_route_fails_at_once") {
        return;
    }
    let pair = Pair::new().await;
    let start = Instant::now();
    let err = ping(&pair.a, Ipv4Addr::new(10, 214, 0, 1), T).expect_err("no route");
    assert!(err.is_no_answer(), "{err}");
    assert!(start.elapsed() < T / 2);
    assert_unreachable(("a", &pair.a), Ipv4Addr::new(10, 214, 0, 1), T).expect("unreachable without route");
}

#[tokio::test(flavor = "current_thread")]
async fn tcp_echo_server_echoes_and_records_the_client_address() {
    if !require_root("tcp_echo_server_echoes_and_records_the_client_address") {
        return;
    }
    let pair = Pair::new().await;
    let server = EchoServer::start(&pair.b, Proto::Tcp, SocketAddr::from((B_IP, 0))).expect("server");
    let addr = server.local_addr();
    tcp_connect(&pair.a, addr, T).expect("connect");
    tcp_echo(&pair.a, addr, b"hello over tcp", T).expect("echo");
    let big = vec![7u8; 100_000];
    tcp_echo(&pair.a, addr, &big, T).expect("large echo");
    let peers = server.peers();
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert!(peers.iter().all(|p| p.ip() == A_IP), "{peers:?}");

    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(1), "server stops promptly");
    let err = tcp_connect(&pair.a, addr, T).expect_err("server is gone");
    assert!(err.is_no_answer(), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn udp_echo_server_echoes_and_records_the_client_address() {
    if !require_root("udp_echo_server_echoes_and_records_the_client_address") {
        return;
    }
    let pair = Pair::new().await;
    let server = EchoServer::start(&pair.b, Proto::Udp, SocketAddr::from(([0, 0, 0, 0], 0))).expect("server");
    let addr = SocketAddr::from((B_IP, server.local_addr().port()));
    udp_echo(&pair.a, addr, b"hello over udp", T).expect("echo");
    assert_eq!(server.peers().first().map(|p| p.ip()), Some(A_IP.into()));
    drop(server);
    let err = udp_echo(&pair.a, addr, b"anyone?", Duration::from_millis(300)).expect_err("server is gone");
    assert!(err.is_no_answer(), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn containers_reach_each_other_and_the_gateway_through_the_bridge() {
    if !require_root("containers_reach_each_other_and_the_gateway_through_the_bridge") {
        return;
    }
    let topo = Bridged::new().await;
    assert_reachable(("c1", &topo.c1), C2_IP, T).expect("c1 -> c2");
    assert_reachable(("c2", &topo.c2), C1_IP, T).expect("c2 -> c1");
    assert_reachable(("c1", &topo.c1), BRIDGE_IP, T).expect("c1 -> gateway");
    assert_reachable(("host", &topo.host), C2_IP, T).expect("host -> c2");
}
