//! Command-line arguments: docker-like verbs, each with an example in its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "vethlab",
    version,
    about = "A bridge-network runtime for containers, and a harness that proves such runtimes work",
    after_help = "Examples:\n  vethlab demo\n  vethlab network create --subnet 192.168.1.0/24 zdocker0\n  vethlab run --net zdocker0 -- ip addr"
)]
pub struct Cli {
    /// Where networks and endpoints are recorded.
    #[arg(long, global = true, env = "VETHLAB_STATE_DIR", default_value = vethlab_runtime::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Network namespace that holds the bridges (default: vethlab's own). Lets a test harness
    /// drive the CLI against a throwaway "host".
    #[arg(long, global = true, env = "VETHLAB_HOST_NETNS", value_name = "PATH")]
    pub host_netns: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Attach a container's network namespace to a network.
    #[command(
        after_help = "Example:\n  vethlab connect zdocker0 --id a1b2c3d4e5f6 --netns /run/netns/c1\n  vethlab connect zdocker0 --id a1b2c3d4e5f6 --pid 4242 --ip 192.168.1.10 --ifname eth0"
    )]
    Connect(ConnectArgs),
    /// Detach a container from a network (idempotent; works when its namespace is gone).
    #[command(after_help = "Example:\n  vethlab disconnect zdocker0 --id a1b2c3d4e5f6")]
    Disconnect(DisconnectArgs),
    /// Run a command in a fresh network namespace attached to a network.
    #[command(
        after_help = "Example:\n  vethlab run --net zdocker0 -- ping -c1 192.168.1.1\n  vethlab run --net zdocker0 -p 8080:80 -- busybox httpd -f -p 80"
    )]
    Run(RunArgs),
    /// Build the seed topology in a private namespace, show it live, ping across it, tear it down.
    #[command(after_help = "Example:\n  sudo vethlab demo")]
    Demo,
    /// Run the scenario catalogue against bridge runtimes and print a scenario × runtime matrix.
    #[command(
        after_help = "Example:\n  sudo vethlab conformance\n  sudo vethlab conformance --runtime native --runtime cni:/usr/lib/cni/bridge --runtime netavark:/usr/lib/podman/netavark\n  sudo vethlab conformance --runtime cni:/opt/cni/bin/vethlab --scenario seed --format junit"
    )]
    Conformance(ConformanceArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Junit,
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// native | cli | cni:PATH | netavark:PATH (repeatable; default: native)
    #[arg(long = "runtime", value_name = "RUNTIME")]
    pub runtimes: Vec<String>,
    /// Scenario name (repeatable; default: the whole catalogue).
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network.
    #[command(
        after_help = "Example:\n  vethlab network create --subnet 192.168.1.0/24 zdocker0\n  vethlab network create --subnet 10.10.0.0/16 --gateway 10.10.0.254 --mtu 1400 backend"
    )]
    Create(CreateArgs),
    /// List networks.
    #[command(
        visible_alias = "list",
        after_help = "Example:\n  vethlab network ls\n  vethlab network ls --format json"
    )]
    Ls(LsArgs),
    /// Show a network and its endpoints as JSON.
    #[command(after_help = "Example:\n  vethlab network inspect zdocker0")]
    Inspect(InspectArgs),
    /// Remove a network (refused while endpoints are attached, unless --force).
    #[command(
        visible_alias = "remove",
        after_help = "Example:\n  vethlab network rm zdocker0\n  vethlab network rm --force zdocker0"
    )]
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Network driver.
    #[arg(long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form, /8 to /30.
    #[arg(long)]
    pub subnet: String,
    /// Gateway address (default: the subnet's first host address).
    #[arg(long)]
    pub gateway: Option<String>,
    /// MTU of the bridge and of every veth on it.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// No way out: no masquerade, nothing forwarded to or from other interfaces.
    #[arg(long)]
    pub internal: bool,
    /// Network name; also the bridge's interface name.
    pub name: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Disconnect attached endpoints first.
    #[arg(long, short)]
    pub force: bool,
    pub name: String,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["netns", "pid"]))]
pub struct ConnectArgs {
    pub network: String,
    /// Container id; the host interface is named after its first 5 characters.
    #[arg(long)]
    pub id: String,
    /// Path of the container's network namespace (/run/netns/NAME, /proc/PID/ns/net).
    #[arg(long)]
    pub netns: Option<PathBuf>,
    /// Pid of a process in the container's network namespace.
    #[arg(long)]
    pub pid: Option<i32>,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

/// What `connect` and `run` both let the user choose about the endpoint.
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// Static address (default: lowest free).
    #[arg(long)]
    pub ip: Option<String>,
    /// Interface name inside the container (default: cif-ID[:5]).
    #[arg(long)]
    pub ifname: Option<String>,
    /// Publish a port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp] (repeatable).
    #[arg(short = 'p', long = "publish", value_name = "MAPPING")]
    pub publish: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    pub network: String,
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Network to attach the command to.
    #[arg(long)]
    pub net: String,
    /// Container id (default: 12 random hex digits).
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}
