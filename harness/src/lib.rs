//! vethlab's integration-test harness: throwaway labs, runtime adapters, the scenario catalogue
//! and the one `check` that runs a scenario end to end.
//!
//! Every lab builds its own "host" namespace (the runtime's world) and container namespaces, so
//! tests never touch the machine's real network and can run in parallel.

pub mod check;
pub mod cli;
pub mod conformance;
pub mod lab;
pub mod privileges;
pub mod probes;
pub mod runtimes;
pub mod scenario;
pub mod view;

pub use lab::{Container, ContainerKind, Lab};
pub use privileges::require_root;
