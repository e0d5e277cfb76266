//! vethlab as a CNI plugin: when `CNI_COMMAND` is set, the `vethlab` binary speaks the CNI
//! protocol (environment variables, network configuration on stdin, result or error JSON on
//! stdout) instead of parsing a command line.
//!
//! The host namespace is the plugin's own (the CNI convention: the runtime runs plugins in the
//! namespace that holds the bridges); the state lives in `stateDir`, default `/var/lib/vethlab`.

mod plugin;
pub mod types;

use std::io::Read;
use std::process::ExitCode;

use types::{CniError, Code};

/// The CNI environment: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
}

impl Env {
    fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            command: var("CNI_COMMAND").unwrap_or_default(),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
        }
    }

    /// A variable the command needs, or the spec's "invalid environment" error naming it.
    pub fn require<'a>(&self, value: &'a Option<String>, name: &str) -> Result<&'a str, CniError> {
        value.as_deref().ok_or_else(|| {
            CniError::new(
                Code::InvalidEnvironment,
                format!("{name} is required for CNI_COMMAND={}", self.command),
            )
        })
    }
}

/// Runs one CNI command and exits: 0 with the result on stdout, 1 with the error JSON on stdout.
pub fn main() -> ExitCode {
    let env = Env::from_process();
    let mut stdin = String::new();
    let read = std::io::stdin().read_to_string(&mut stdin);
    let outcome = match read {
        Ok(_) => run(&env, &stdin),
        Err(e) => Err((CniError::new(Code::Io, format!("read network configuration from stdin: {e}")), None)),
    };
    match outcome {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err((e, version)) => {
            let version = version.unwrap_or_else(|| "1.1.0".to_owned());
            println!("{}", e.to_json(&version));
            eprintln!("vethlab cni: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the configuration and runs the command on a current-thread tokio runtime. The error
/// carries the configuration's cniVersion when it was readable.
fn run(env: &Env, stdin: &str) -> Result<Option<String>, (CniError, Option<String>)> {
    if env.command == "VERSION" {
        return Ok(Some(plugin::version(stdin)));
    }
    let conf: types::NetConf = serde_json::from_str(stdin)
        .map_err(|e| (CniError::new(Code::Decode, format!("network configuration on stdin: {e}")), None))?;
    let version = conf.cni_version.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        (CniError::new(Code::Io, format!("start the async runtime: {e}")), Some(version.clone()))
    })?;
    rt.block_on(plugin::dispatch(env, &conf, stdin)).map_err(|e| (e, Some(version)))
}
