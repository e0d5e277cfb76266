//! Errors of the read-only side: capturing kernel state and probing connectivity.

use std::time::Duration;

use thiserror::Error;
use vethlab_runtime::{NetlinkError, NetnsError};

/// Why a capture of kernel state failed.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("netns {netns}: {what}: {source}")]
    Request { netns: String, what: String, source: std::io::Error },
    #[error("netns {netns}: {what} was interrupted by concurrent changes {attempts} times in a row")]
    DumpInterrupted { netns: String, what: String, attempts: u32 },
    #[error("netns {netns}: cannot read sysctl {name}: {source}")]
    Sysctl { netns: String, name: String, source: std::io::Error },
    #[error("netns {netns}: nftables ruleset: {message}")]
    Nft { netns: String, message: String },
    #[error("namespace label {label} is given twice")]
    DuplicateLabel { label: String },
}

/// Why a probe could not run or did not get its answer.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netns {netns}: {what}: {source}")]
    Io { netns: String, what: String, source: std::io::Error },
    #[error("no {what} within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("{what}: echoed {got} bytes that differ from the {sent} bytes sent")]
    Mismatch { what: String, sent: usize, got: usize },
}

impl ProbeError {
    /// Whether the probe ran and simply got no answer (as opposed to failing to run at all).
    pub fn is_no_answer(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Io { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::ETIMEDOUT)
                ) || source.kind() == std::io::ErrorKind::TimedOut
            }
            _ => false,
        }
    }
}

/// The outcome of a reachability assertion that did not hold.
#[derive(Debug, Error)]
pub enum ReachError {
    #[error("{from} (netns {netns}) could not reach {to}: {source}")]
    Unreachable { from: String, netns: String, to: String, source: Box<ProbeError> },
    #[error("{from} (netns {netns}) unexpectedly reached {to} in {}", fmt_rtt(.rtt))]
    UnexpectedlyReachable { from: String, netns: String, to: String, rtt: Duration },
    #[error("{from} (netns {netns}) cannot probe {to}: {source}")]
    Probe { from: String, netns: String, to: String, source: Box<ProbeError> },
}

/// `0.1ms`, `12.3ms`: round-trip times as people read them.
fn fmt_rtt(rtt: &Duration) -> String {
    format!("{:.1}ms", rtt.as_secs_f64() * 1000.0)
}
