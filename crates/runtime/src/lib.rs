//! vethlab's side effects: namespaces, netlink, persisted state, and the operations that tie them
//! together (`create_network`, `remove_network`, `connect`, `disconnect`).
//!
//! Every operation validates and plans with `vethlab-core` before its first side effect, applies
//! the plan, rolls back what it did if a step fails, and only then records the result.

pub mod error;
pub mod firewall;
pub mod netlink;
pub mod netns;
pub mod runtime;
pub mod store;

pub use error::{RuntimeError, TeardownErrors};
pub use netlink::{Netlink, NetlinkError};
pub use netns::{Netns, NetnsError, NsId};
pub use runtime::Runtime;
pub use store::{DEFAULT_STATE_DIR, StateDir, StateLock, StoreError};
