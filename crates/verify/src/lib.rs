//! vethlab's read-only side: capture kernel network state of several namespaces through
//! rtnetlink, normalise it into deterministic YAML snapshots, diff snapshots for residue, and
//! probe connectivity (ICMP, TCP, UDP) from inside namespaces.
//!
//! Nothing here changes kernel state, with one caveat: dumping a veth whose peer lives in another
//! namespace makes the kernel allocate an nsid for that namespace if it had none (the kernel does
//! this itself when filling `IFLA_LINK_NETNSID`; `ip link` has the same effect). We never send
//! `RTM_NEWNSID`. Probes open sockets and send packets, but only inside the namespaces given.

pub mod capture;
pub mod error;
pub mod normalize;
pub mod probe;
pub mod residue;

pub use capture::{Address, Link, NsState, Peer, Route, World, capture};
pub use error::{ProbeError, ReachError, VerifyError};
pub use normalize::{
    LinkSnapshot, MAC_PLACEHOLDER, NormalizeOptions, NsSnapshot, Snapshot, normalize, route_line, to_yaml,
};
pub use probe::{
    EchoServer, Proto, assert_reachable, assert_unreachable, ping, tcp_connect, tcp_echo, udp_echo,
};
pub use residue::{capture_snapshot, diff, diff_text};
