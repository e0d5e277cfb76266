//! The runtime's error type: one enum for every operation, each message naming its object.

use std::fmt;

use thiserror::Error;
use vethlab_core::{PlanError, SpecError};

use crate::firewall::FirewallError;
use crate::netlink::NetlinkError;
use crate::netns::NetnsError;
use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(
        "netns {netns} is the host namespace or vethlab's own; refusing to configure it as container {container}'s namespace"
    )]
    HostNamespace { netns: String, container: String },
    #[error("{what} {ifname} already exists in netns {netns} and was not created by vethlab")]
    InterfaceExists { what: &'static str, ifname: String, netns: String },
    #[error("network {network}: bridge {network} is missing from netns {netns} (deleted outside vethlab?)")]
    BridgeMissing { network: String, netns: String },
    #[error("{failed} (undo also failed: {undo})")]
    RollbackFailed { failed: Box<RuntimeError>, undo: TeardownErrors },
    #[error("{0}")]
    Teardown(TeardownErrors),
}

/// Every error met while tearing something down; teardown never stops at the first one.
#[derive(Debug, Default)]
pub struct TeardownErrors {
    pub context: String,
    pub errors: Vec<String>,
}

impl TeardownErrors {
    pub fn new(context: impl Into<String>) -> Self {
        Self { context: context.into(), errors: Vec::new() }
    }

    pub fn push(&mut self, e: impl fmt::Display) {
        self.errors.push(e.to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(())` if nothing failed, else every failure.
    pub fn into_result(self) -> Result<(), RuntimeError> {
        if self.is_empty() { Ok(()) } else { Err(RuntimeError::Teardown(self)) }
    }
}

impl fmt::Display for TeardownErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} error(s): {}", self.context, self.errors.len(), self.errors.join("; "))
    }
}
