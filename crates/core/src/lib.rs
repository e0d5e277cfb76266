//! vethlab's pure model: everything that can be decided without touching the kernel.
//!
//! Requests arrive as plain strings ([`spec::NetworkRequest`], [`spec::ConnectRequest`]) and are
//! validated into types that cannot hold invalid values ([`name::IfName`], [`subnet::Subnet`], …).
//! From a validated request and the current [`state::State`], [`plan`] computes the desired kernel
//! state; `vethlab-runtime` applies a plan and `vethlab-verify` reads the kernel back in the same
//! vocabulary.
//!
//! Architecture invariant: this crate does no IO and depends on no tokio, nix or rtnetlink
//! (checked by `tests/no_io.rs`).

pub mod firewall;
pub mod ipam;
pub mod mac;
pub mod name;
pub mod plan;
pub mod port;
pub mod spec;
pub mod state;
pub mod subnet;

pub use firewall::FirewallPlan;
pub use ipam::{IpamError, Owner, Pool};
pub use mac::MacAddr;
pub use name::{ContainerId, IfName, NameError, NetworkName};
pub use plan::{EndpointPlan, NetworkPlan, PlanError};
pub use port::{PortError, PortMapping, Proto};
pub use spec::{ConnectRequest, Driver, Mtu, NetworkRequest, NetworkSpec, SpecError};
pub use state::{EndpointRecord, NetworkRecord, State, StateError};
pub use subnet::{Subnet, SubnetError};
