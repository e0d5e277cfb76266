//! Validated names: interface names, network names and container ids.
//!
//! Parse, don't check: once a value of these types exists it is valid, so the runtime never has to
//! wonder whether the kernel will accept a name.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest interface name the kernel accepts (`IFNAMSIZ` minus the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// Characters of the container id used for the host end's name (`ID[:5]`, as zdocker did).
pub const ID_PREFIX_LEN: usize = 5;

/// Longest container id we accept; docker ids are 64 hex characters.
pub const CONTAINER_ID_MAX: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("interface name {0:?} is empty")]
    Empty(String),
    #[error("interface name {name:?} is {len} bytes long; the kernel allows at most {IFNAME_MAX}")]
    TooLong { name: String, len: usize },
    #[error("interface name {0:?} contains '/', ':', whitespace or NUL, which the kernel refuses")]
    BadChar(String),
    #[error("interface name {0:?} is reserved ('.' and '..' name directories in sysfs)")]
    Reserved(String),
    #[error(
        "network name {0:?} may only contain ASCII letters, digits, '_', '.' and '-', and must start with a letter or digit"
    )]
    BadNetworkName(String),
    #[error(
        "container id {id:?} is too short: at least {ID_PREFIX_LEN} characters are needed to name the host interface"
    )]
    IdTooShort { id: String },
    #[error("container id {id:?} is longer than {CONTAINER_ID_MAX} characters")]
    IdTooLong { id: String },
    #[error(
        "container id {0:?} may only contain ASCII letters, digits, '_', '.' and '-', and must start with a letter or digit"
    )]
    BadContainerId(String),
}

/// A Linux interface name the kernel will accept (see `dev_valid_name()` in net/core/dev.c).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// Validates `name` as an interface name.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty(name));
        }
        if name.len() > IFNAME_MAX {
            let len = name.len();
            return Err(NameError::TooLong { name, len });
        }
        if name == "." || name == ".." {
            return Err(NameError::Reserved(name));
        }
        if name.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace()) {
            return Err(NameError::BadChar(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A network's name. The bridge is named after the network (as in zdocker), so a network name is
/// also an interface name; it is also a file name in the state directory, hence the narrower
/// character set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NetworkName(IfName);

impl NetworkName {
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let ifname = IfName::new(name)?;
        if !is_safe_token(ifname.as_str()) {
            return Err(NameError::BadNetworkName(ifname.0));
        }
        Ok(Self(ifname))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The bridge interface that carries this network.
    pub fn bridge(&self) -> &IfName {
        &self.0
    }
}

/// A container's id, as given by the runtime that owns the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

impl ContainerId {
    pub fn new(id: impl Into<String>) -> Result<Self, NameError> {
        let id = id.into();
        if id.chars().count() < ID_PREFIX_LEN {
            return Err(NameError::IdTooShort { id });
        }
        if id.len() > CONTAINER_ID_MAX {
            return Err(NameError::IdTooLong { id });
        }
        if !is_safe_token(&id) {
            return Err(NameError::BadContainerId(id));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first five characters: zdocker's host-side veth name.
    pub fn short(&self) -> &str {
        // The id is ASCII (checked in `new`), so byte slicing is character slicing.
        &self.0[..ID_PREFIX_LEN]
    }

    /// Host end of the veth pair: `ID[:5]`.
    pub fn host_ifname(&self) -> IfName {
        IfName(self.short().to_owned())
    }

    /// Default name of the container end: `cif-ID[:5]`.
    pub fn default_peer_ifname(&self) -> IfName {
        IfName(format!("cif-{}", self.short()))
    }
}

/// ASCII letters, digits, `_`, `.`, `-`, starting with a letter or digit.
fn is_safe_token(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

macro_rules! string_newtype_impls {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_owned()
            }
        }
        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
    };
}
string_newtype_impls!(IfName);
string_newtype_impls!(NetworkName);
string_newtype_impls!(ContainerId);

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("zdocker0")]
    #[case("a")]
    #[case("fifteen-bytes-x")]
    #[case("cif-a1b2c")]
    #[case("eth0.100")]
    fn valid_ifnames(#[case] name: &str) {
        assert_eq!(IfName::new(name).map(|n| n.to_string()), Ok(name.to_owned()));
    }

    #[rstest]
    #[case("", "empty")]
    #[case("sixteen-bytes-xx", "at most 15")]
    #[case("a/b", "'/'")]
    #[case("a b", "whitespace")]
    #[case("a\tb", "whitespace")]
    #[case("a\0b", "NUL")]
    #[case("a:b", "':'")]
    #[case(".", "reserved")]
    #[case("..", "reserved")]
    fn invalid_ifnames(#[case] name: &str, #[case] why: &str) {
        let err = IfName::new(name).expect_err(name).to_string();
        assert!(err.contains(why), "{err:?} should mention {why:?}");
    }

    #[test]
    fn multibyte_names_are_measured_in_bytes() {
        // 8 characters but 16 bytes: the kernel counts bytes.
        assert!(matches!(IfName::new("éééééééé"), Err(NameError::TooLong { len: 16, .. })));
    }

    #[test]
    fn network_names_are_file_safe() {
        assert!(NetworkName::new("zdocker0").is_ok());
        assert!(NetworkName::new("my-net_1.x").is_ok());
        assert!(matches!(NetworkName::new("-x"), Err(NameError::BadNetworkName(_))));
        assert!(matches!(NetworkName::new("a%b"), Err(NameError::BadNetworkName(_))));
        assert!(matches!(NetworkName::new("a/b"), Err(NameError::BadChar(_))));
    }

    #[test]
    fn container_id_derives_zdocker_names() {
        let id = ContainerId::new("a1b2c3d4e5f6").expect("valid id");
        assert_eq!(id.host_ifname().as_str(), "a1b2c");
        assert_eq!(id.default_peer_ifname().as_str(), "cif-a1b2c");
    }

    #[rstest]
    #[case("a1b2", "too short")]
    #[case("", "too short")]
    #[case("a1b2c/x", "may only contain")]
    #[case("_abcde", "may only contain")]
    #[case("ab cde", "may only contain")]
    fn invalid_container_ids(#[case] id: &str, #[case] why: &str) {
        let err = ContainerId::new(id).expect_err(id).to_string();
        assert!(err.contains(why), "{err:?} should mention {why:?}");
    }

    #[test]
    fn too_long_container_id() {
        let id = "a".repeat(CONTAINER_ID_MAX + 1);
        assert!(matches!(ContainerId::new(id), Err(NameError::IdTooLong { .. })));
    }

    #[test]
    fn serde_round_trip_validates() {
        let name: IfName = serde_json::from_str("\"br0\"").expect("valid");
        assert_eq!(name.as_str(), "br0");
        assert!(serde_json::from_str::<IfName>("\"way-too-long-name\"").is_err());
    }
}
