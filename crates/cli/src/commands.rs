//! One function per verb: build the request, call the runtime, print the result.

use std::process::ExitCode;

use anyhow::{Context, Result};
use vethlab_core::{ConnectRequest, NetworkRequest};
use vethlab_runtime::{Netns, Runtime, StateDir};

use crate::args::{Cli, Command, ConnectArgs, Format, NetworkCommand};
use crate::output::{EndpointView, NetworkView, network_table};

/// The runtime for this invocation: bridges live in `--host-netns` or in our own namespace.
pub fn open_runtime(cli: &Cli) -> Result<Runtime> {
    let host = match &cli.host_netns {
        Some(path) => Netns::open(path)?,
        None => Netns::current()?.with_label("host"),
    };
    Ok(Runtime::new(host, StateDir::new(&cli.state_dir)))
}

pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    if let Command::Conformance(args) = cli.command {
        return crate::conformance::conformance(args).await;
    }
    let rt = open_runtime(&cli)?;
    match cli.command {
        Command::Network(cmd) => network(&rt, cmd).await?,
        Command::Connect(args) => connect(&rt, args).await?,
        Command::Disconnect(args) => match rt.disconnect(&args.network, &args.id).await? {
            Some(ep) => println!("disconnected {} from network {}", ep.container, ep.network),
            None => println!("container {} was not connected to network {}", args.id, args.network),
        },
        Command::Run(args) => return crate::run::run(&rt, args).await,
        Command::Demo => crate::demo::demo().await?,
        Command::Conformance(_) => unreachable!("handled above: it builds its own labs"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn network(rt: &Runtime, cmd: NetworkCommand) -> Result<()> {
    match cmd {
        NetworkCommand::Create(a) => {
            let req = NetworkRequest {
                name: a.name,
                driver: Some(a.driver),
                subnet: a.subnet,
                gateway: a.gateway,
                mtu: a.mtu,
                internal: a.internal,
            };
            let record = rt.create_network(&req).await?;
            println!("{}", record.spec.name);
        }
        NetworkCommand::Ls(a) => {
            let networks = rt.list()?;
            match a.format {
                Format::Table => print!("{}", network_table(&networks)),
                Format::Json => {
                    let views: Vec<_> = networks.iter().map(NetworkView::new).collect();
                    println!("{}", serde_json::to_string_pretty(&views)?);
                }
            }
        }
        NetworkCommand::Inspect(a) => {
            let record = rt.inspect(&a.name)?;
            println!("{}", serde_json::to_string_pretty(&NetworkView::new(&record))?);
        }
        NetworkCommand::Rm(a) => {
            rt.remove_network(&a.name, a.force).await?;
            println!("{}", a.name);
        }
    }
    Ok(())
}

async fn connect(rt: &Runtime, a: ConnectArgs) -> Result<()> {
    let container = match (&a.netns, a.pid) {
        (Some(path), _) => Netns::open(path)?,
        (None, Some(pid)) => Netns::from_pid(pid)?,
        (None, None) => unreachable!("clap requires --netns or --pid"),
    };
    let req = ConnectRequest {
        network: a.network,
        container_id: a.id,
        ip: a.endpoint.ip,
        ifname: a.endpoint.ifname,
        netns: container.label().to_owned(),
        ports: a.endpoint.publish,
    };
    let ep = rt.connect(&req, &container).await?;
    let gateway = rt.inspect(ep.network.as_str()).map(|n| n.spec.gateway).ok();
    let view = EndpointView::new(&ep, gateway);
    println!("{}", serde_json::to_string_pretty(&view).context("encode endpoint")?);
    Ok(())
}
