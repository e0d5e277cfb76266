//! The `native` adapter: vethlab's runtime in-process, on the lab's host namespace and a state
//! directory of its own.

use anyhow::{Context, Result};
use vethlab_core::{ConnectRequest, NetworkRequest, PlanError};
use vethlab_runtime::{Runtime, RuntimeError, StateDir};

use super::{AttachRequest, Attachment, BoxFuture, Capability, Flavour, NetSpec, NetworkRuntime};
use crate::lab::{Container, Lab};

pub const CAPABILITIES: &[Capability] = &[
    Capability::StaticAddress,
    Capability::Mtu,
    Capability::CustomGateway,
    Capability::DefaultRoute,
    Capability::Ipam,
    Capability::NetworkRemoval,
    Capability::Masquerade,
    Capability::PortMapping,
    Capability::Internal,
    Capability::Isolation,
];

/// The in-process runtime; opened on first use, so one adapter can serve several labs in turn.
#[derive(Debug, Default)]
pub struct Native {
    runtime: Option<Runtime>,
}

impl Native {
    pub fn new() -> Self {
        Self::default()
    }

    fn runtime(&mut self, lab: &Lab) -> Result<&Runtime> {
        if self.runtime.is_none() {
            self.reload(lab)?;
        }
        self.runtime.as_ref().context("native runtime is not open")
    }
}

/// Inspects the network, creating it on first use (as `vethlab`'s CNI mode does).
pub(super) async fn ensure_network(rt: &Runtime, net: &NetSpec) -> Result<()> {
    match rt.inspect(&net.name) {
        Ok(_) => Ok(()),
        Err(RuntimeError::Plan(PlanError::NoSuchNetwork(_))) => {
            // `..Default::default()`: fields added to the request later keep their defaults here.
            let req = NetworkRequest {
                name: net.name.clone(),
                subnet: net.subnet.to_string(),
                gateway: net.gateway.map(|g| g.to_string()),
                mtu: net.mtu,
                internal: net.internal,
                ..Default::default()
            };
            rt.create_network(&req).await.with_context(|| format!("create network {}", net.name))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

impl NetworkRuntime for Native {
    fn name(&self) -> &str {
        "native"
    }

    fn slug(&self) -> String {
        "native".to_owned()
    }

    fn flavour(&self) -> Flavour {
        Flavour::Vethlab
    }

    fn capabilities(&self) -> &[Capability] {
        CAPABILITIES
    }

    fn begin(&mut self, lab: &Lab) -> Result<()> {
        self.reload(lab)
    }

    fn attach<'a>(&'a mut self, lab: &'a Lab, req: AttachRequest<'a>) -> BoxFuture<'a, Result<Attachment>> {
        Box::pin(async move {
            let rt = self.runtime(lab)?;
            ensure_network(rt, req.network).await?;
            let mut connect = ConnectRequest {
                network: req.network.name.clone(),
                container_id: req.container_id.to_owned(),
                ifname: Some(req.ifname.to_owned()),
                netns: req.container.path().display().to_string(),
                ..Default::default()
            };
            connect.ip = req.ip.map(|ip| ip.to_string());
            connect.ports = req.ports.iter().map(|p| (*p).to_owned()).collect();
            let ep = rt.connect(&connect, req.container.netns()).await?;
            Ok(Attachment {
                host_ifname: ep.host_ifname.to_string(),
                ifname: ep.peer_ifname.to_string(),
                address: ep.address,
                prefix: ep.prefix,
                mac: Some(ep.mac.to_string()),
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
            self.runtime(lab)?.disconnect(&network.name, container_id).await?;
            Ok(())
        })
    }

    fn remove_network<'a>(&'a mut self, lab: &'a Lab, network: &'a NetSpec) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.runtime(lab)?.remove_network(&network.name, true).await {
                Ok(()) | Err(RuntimeError::Plan(PlanError::NoSuchNetwork(_))) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn reload(&mut self, lab: &Lab) -> Result<()> {
        let host = lab.host().try_clone()?.with_label("host");
        self.runtime = Some(Runtime::new(host, StateDir::new(lab.state_dir())));
        Ok(())
    }
}
