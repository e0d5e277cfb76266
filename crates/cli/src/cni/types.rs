//! The CNI protocol's wire types (spec 0.4.0, 1.0.0, 1.1.0): the network configuration read from
//! stdin, the result, the version answer and the error JSON, with the spec's well-known error
//! codes. Kept apart from vethlab's validated model: these are external JSON, checked in `plugin`.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The versions this plugin speaks; the first ones the bridge plugin of the same era speaks too.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];

/// The spec's well-known error codes (0–99; 100+ are plugin-specific).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin cannot serve ADDs right now.
    NotAvailable = 50,
    /// CHECK: the kernel state differs from what ADD made (plugin-specific).
    StateMismatch = 100,
    /// CHECK: the container cannot reach its gateway (plugin-specific).
    GatewayUnreachable = 101,
    /// Any other failure of the runtime while applying (plugin-specific).
    Runtime = 999,
}

/// A CNI error: code, one-line message and optional details, as printed on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into(), details: String::new() }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The error JSON the spec asks for.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code as u32,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code as u32)
    }
}

/// `{"cniVersion":"1.0.0","name":"…","type":"vethlab","bridge":"…","subnet":"…"}` and the
/// optional fields. Unknown fields (`args`, `runtimeConfig`, `capabilities`, …) are ignored as the
/// spec allows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// vethlab allocates addresses itself; an `ipam` section is refused rather than ignored.
    pub ipam: Option<serde_json::Value>,
    pub bridge: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub mtu: Option<u32>,
    /// `true`: an internal network (no masquerade, nothing forwarded in or out).
    pub internal: Option<bool>,
    pub state_dir: Option<String>,
    /// GC: the attachments the runtime still knows about; everything else is garbage.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The answer to VERSION.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

/// An interface of the result; `sandbox` is set for the one inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sandbox: Option<String>,
}

/// An address of the result; `interface` indexes `interfaces`. 0.4.0 also carries `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gw: Option<Ipv4Addr>,
}

/// The result of ADD (and the `prevResult` of CHECK and DEL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: serde_json::Value,
}

/// Whether `version` is one this plugin speaks.
pub fn supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// GC and STATUS exist from 1.1.0 on.
pub fn at_least_1_1(version: &str) -> bool {
    version == "1.1.0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_code_msg_and_optional_details() {
        let e = CniError::new(Code::InvalidConfig, "network zdocker0: bad subnet");
        assert_eq!(
            e.to_json("1.0.0"),
            serde_json::json!({"cniVersion":"1.0.0","code":7,"msg":"network zdocker0: bad subnet"})
        );
        let e = e.with_details("more");
        assert_eq!(e.to_json("1.0.0")["details"], "more");
    }

    #[test]
    fn config_ignores_unknown_fields_and_reads_valid_attachments() -> Result<(), serde_json::Error> {
        let conf: NetConf = serde_json::from_str(
            r#"{"cniVersion":"1.1.0","name":"n","type":"vethlab","bridge":"br0","subnet":"10.0.0.0/24",
                "capabilities":{},"cni.dev/valid-attachments":[{"containerID":"abcdef","ifname":"eth0"}]}"#,
        )?;
        assert_eq!(conf.bridge.as_deref(), Some("br0"));
        let valid = conf.valid_attachments.unwrap_or_default();
        assert_eq!((valid[0].container_id.as_str(), valid[0].ifname.as_str()), ("abcdef", "eth0"));
        Ok(())
    }
}
