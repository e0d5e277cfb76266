//! The `cli` adapter: the `vethlab` binary as a separate process per call, pointed at the lab's
//! host namespace and state directory, exactly as a user or a container engine would run it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::{AttachRequest, Attachment, BoxFuture, Capability, Flavour, NetSpec, NetworkRuntime, parse_cidr};
use crate::cli::CliOutput;
use crate::lab::{Container, Lab};

#[derive(Debug)]
pub struct Cli {
    bin: PathBuf,
}

impl Cli {
    pub fn new(bin: PathBuf) -> Self {
        Self { bin }
    }

    fn run(&self, lab: &Lab, args: &[&str]) -> Result<CliOutput> {
        lab.cli_with(&self.bin, args)
    }

    fn ok(&self, lab: &Lab, args: &[&str]) -> Result<CliOutput> {
        let out = self.run(lab, args)?;
        if out.code != 0 {
            bail!("vethlab {}: exit {}: {}", args.join(" "), out.code, out.stderr.trim());
        }
        Ok(out)
    }
}

impl NetworkRuntime for Cli {
    fn name(&self) -> &str {
        "cli"
    }

    fn slug(&self) -> String {
        "cli".to_owned()
    }

    fn flavour(&self) -> Flavour {
        Flavour::Vethlab
    }

    fn capabilities(&self) -> &[Capability] {
        super::native::CAPABILITIES
    }

    fn begin(&mut self, _lab: &Lab) -> Result<()> {
        Ok(())
    }

    fn attach<'a>(&'a mut self, lab: &'a Lab, req: AttachRequest<'a>) -> BoxFuture<'a, Result<Attachment>> {
        Box::pin(async move {
            let net = req.network;
            if self.run(lab, &["network", "inspect", &net.name])?.code != 0 {
                let subnet = net.subnet.to_string();
                let mut args = vec!["network", "create", "--subnet", &subnet];
                let gateway = net.gateway.map(|g| g.to_string());
                let mtu = net.mtu.map(|m| m.to_string());
                if let Some(g) = &gateway {
                    args.extend(["--gateway", g]);
                }
                if let Some(m) = &mtu {
                    args.extend(["--mtu", m]);
                }
                if net.internal {
                    args.push("--internal");
                }
                args.push(&net.name);
                self.ok(lab, &args)?;
            }
            let netns = req.container.path().display().to_string();
            let ip = req.ip.map(|ip| ip.to_string());
            let mut args = vec![
                "connect",
                &net.name,
                "--id",
                req.container_id,
                "--netns",
                &netns,
                "--ifname",
                req.ifname,
            ];
            if let Some(ip) = &ip {
                args.extend(["--ip", ip]);
            }
            for p in req.ports {
                args.extend(["-p", p]);
            }
            let out = self.ok(lab, &args)?;
            let ep: serde_json::Value =
                serde_json::from_str(&out.stdout).context("vethlab connect output")?;
            let field = |k: &str| -> Result<String> {
                ep[k].as_str().map(str::to_owned).with_context(|| format!("vethlab connect output lacks {k}"))
            };
            let (address, prefix) = parse_cidr(&field("address")?)?;
            Ok(Attachment {
                host_ifname: field("host_ifname")?,
                ifname: field("ifname")?,
                address,
                prefix,
                mac: field("mac").ok(),
            })
        })
    }

    fn detach<'a>(
        &'a mut self,
        lab: &'a Lab,
        network: &'a NetSpec,
        container_id: &'a str,
        _ifname: &'a str,
        _container: &'a Container,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.ok(lab, &["disconnect", &network.name, "--id", container_id])?;
            Ok(())
        })
    }

    fn remove_network<'a>(&'a mut self, lab: &'a Lab, network: &'a NetSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.run(lab, &["network", "inspect", &network.name])?.code == 0 {
                self.ok(lab, &["network", "rm", "--force", &network.name])?;
            }
            Ok(())
        })
    }
}
