//! The four operations of a bridge runtime over a host namespace and a state directory.

use vethlab_core::plan::{self, EndpointPlan, NetworkPlan};
use vethlab_core::{
    ConnectRequest, EndpointRecord, FirewallPlan, NetworkName, NetworkRecord, NetworkRequest, NetworkSpec,
    State, spec::EndpointSpec,
};

use crate::error::{RuntimeError, TeardownErrors};
use crate::netlink::{Netlink, link_kind};
use crate::netns::Netns;
use crate::store::{StateDir, StateLock};

/// The loopback device is always ifindex 1 in every namespace (`LOOPBACK_IFINDEX`).
const LOOPBACK_IFINDEX: u32 = 1;

/// A bridge runtime: `host` is the namespace that holds the bridges (the machine's own, or a
/// throwaway one in tests), `state` where networks and endpoints are recorded.
#[derive(Debug)]
pub struct Runtime {
    host: Netns,
    state: StateDir,
}

impl Runtime {
    pub fn new(host: Netns, state: StateDir) -> Self {
        Self { host, state }
    }

    pub fn host(&self) -> &Netns {
        &self.host
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// Every network with its endpoints (`vethlab network ls`).
    pub fn list(&self) -> Result<Vec<NetworkRecord>, RuntimeError> {
        let Some(lock) = self.state.lock_shared()? else { return Ok(Vec::new()) };
        Ok(self.state.load(&lock)?.networks().cloned().collect())
    }

    /// One network with its endpoints (`vethlab network inspect`).
    pub fn inspect(&self, name: &str) -> Result<NetworkRecord, RuntimeError> {
        let name = NetworkName::new(name).map_err(vethlab_core::SpecError::from)?;
        self.list()?
            .into_iter()
            .find(|n| n.spec.name == name)
            .ok_or_else(|| plan::PlanError::NoSuchNetwork(name).into())
    }

    /// `vethlab network create`: bridge up with the gateway address, then the record.
    pub async fn create_network(&self, req: &NetworkRequest) -> Result<NetworkRecord, RuntimeError> {
        let spec = NetworkSpec::validate(req)?;
        let lock = self.state.lock()?;
        let state = self.state.load(&lock)?;
        let plan = plan::plan_network(&state, spec)?;
        let host = Netlink::open(&self.host)?;
        if host.link_by_name(plan.bridge.as_str()).await?.is_some() {
            return Err(RuntimeError::InterfaceExists {
                what: "interface",
                ifname: plan.bridge.to_string(),
                netns: self.host.label().to_owned(),
            });
        }
        let result = self.apply_network(&host, &plan, &state, &lock).await;
        if let Err(failed) = result {
            let mut undo = TeardownErrors::new(format!("network {}: rollback", plan.bridge));
            if let Err(e) = host.del_link_by_name(plan.bridge.as_str()).await {
                undo.push(e);
            }
            if let Err(e) = self.sync_firewall(&state) {
                undo.push(e);
            }
            return Err(rollback_error(failed, undo));
        }
        Ok(plan.record)
    }

    async fn apply_network(
        &self,
        host: &Netlink,
        plan: &NetworkPlan,
        state: &State,
        lock: &StateLock,
    ) -> Result<(), RuntimeError> {
        let name = plan.bridge.as_str();
        let index = host.add_bridge(name, plan.mac.octets(), plan.mtu.map(|m| m.get())).await?;
        host.add_address(index, name, plan.address.ip, plan.address.prefix).await?;
        self.sync_firewall(&with_record(state, plan.record.clone())?)?;
        self.state.save(lock, &plan.record)?;
        Ok(())
    }

    /// Makes vethlab's nftables table and host sysctls match `state`.
    fn sync_firewall(&self, state: &State) -> Result<(), RuntimeError> {
        crate::firewall::apply(&self.host, &FirewallPlan::for_state(state), self.state.path())?;
        Ok(())
    }

    /// `vethlab network rm [--force]`: disconnects endpoints (with `force`), deletes the bridge and
    /// the record. Keeps going after an error and reports all of them; whatever could not be
    /// removed stays recorded so a later attempt can finish the job.
    pub async fn remove_network(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        let name = NetworkName::new(name).map_err(vethlab_core::SpecError::from)?;
        let lock = self.state.lock()?;
        let state = self.state.load(&lock)?;
        let endpoints: Vec<EndpointRecord> =
            plan::plan_remove_network(&state, &name, force)?.into_iter().cloned().collect();
        let mut record =
            state.network(&name).cloned().ok_or_else(|| plan::PlanError::NoSuchNetwork(name.clone()))?;
        let host = Netlink::open(&self.host)?;
        let mut errors = TeardownErrors::new(format!("network {name}: removal incomplete"));
        for ep in endpoints {
            match host.del_link_by_name(ep.host_ifname.as_str()).await {
                Ok(_) => {
                    record.endpoints.remove(&ep.container);
                }
                Err(e) => errors.push(format!("endpoint {}: {e}", ep.container)),
            }
        }
        if record.endpoints.is_empty() {
            match host.del_link_by_name(name.as_str()).await {
                Ok(_) => {
                    let remaining = State::new(state.networks().filter(|n| n.spec.name != name).cloned());
                    match remaining {
                        Ok(remaining) => {
                            if let Err(e) = self.sync_firewall(&remaining) {
                                errors.push(e);
                            }
                        }
                        Err(e) => errors.push(e),
                    }
                    if let Err(e) = self.state.remove(&lock, &name) {
                        errors.push(e);
                    }
                    return errors.into_result();
                }
                Err(e) => errors.push(format!("bridge {name}: {e}")),
            }
        }
        match with_record(&state, record.clone()) {
            Ok(partial) => {
                if let Err(e) = self.sync_firewall(&partial) {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e),
        }
        if let Err(e) = self.state.save(&lock, &record) {
            errors.push(e);
        }
        errors.into_result()
    }

    /// `vethlab connect`: one veth pair, host end on the bridge, peer configured in `container`.
    pub async fn connect(
        &self,
        req: &ConnectRequest,
        container: &Netns,
    ) -> Result<EndpointRecord, RuntimeError> {
        let spec = EndpointSpec::validate(req)?;
        // zdocker once configured its own namespace because it held the pid of a process that had
        // not yet unshared: refuse the host namespace and the caller's own, by inode.
        if container.same_as(&self.host) || container.same_as(&Netns::current()?) {
            return Err(RuntimeError::HostNamespace {
                netns: container.label().to_owned(),
                container: spec.container.to_string(),
            });
        }
        let lock = self.state.lock()?;
        let state = self.state.load(&lock)?;
        let plan = plan::plan_connect(&state, spec)?;
        let host = Netlink::open(&self.host)?;
        let ctr = Netlink::open(container)?;

        // Everything that can be refused is refused here, before the first change.
        let (bridge, host_clash, peer_clash) = futures::try_join!(
            host.link_by_name(plan.bridge.as_str()),
            host.link_by_name(plan.host_ifname.as_str()),
            ctr.link_by_name(plan.peer_ifname.as_str()),
        )?;
        let bridge = match bridge {
            Some(b) if link_kind(&b).as_deref() == Some("bridge") => b.header.index,
            _ => {
                return Err(RuntimeError::BridgeMissing {
                    network: plan.bridge.to_string(),
                    netns: self.host.label().to_owned(),
                });
            }
        };
        if host_clash.is_some() {
            let netns = self.host.label().to_owned();
            return Err(RuntimeError::InterfaceExists {
                what: "host interface",
                ifname: plan.host_ifname.to_string(),
                netns,
            });
        }
        if peer_clash.is_some() {
            let netns = container.label().to_owned();
            return Err(RuntimeError::InterfaceExists {
                what: "interface",
                ifname: plan.peer_ifname.to_string(),
                netns,
            });
        }

        let mut record = state
            .network(&plan.record.network)
            .cloned()
            .ok_or_else(|| plan::PlanError::NoSuchNetwork(plan.record.network.clone()))?;
        record.endpoints.insert(plan.record.container.clone(), plan.record.clone());
        let new_state = with_record(&state, record.clone())?;
        let applied =
            self.apply_endpoint(&host, &ctr, container, bridge, &plan, &new_state, &record, &lock).await;
        if let Err(failed) = applied {
            // Deleting the host end deletes the pair; the allocation was never written.
            let mut undo = TeardownErrors::new(format!("endpoint {}: rollback", plan.record.container));
            if let Err(e) = host.del_link_by_name(plan.host_ifname.as_str()).await {
                undo.push(e);
            }
            if !plan.record.ports.is_empty()
                && let Err(e) = self.sync_firewall(&state)
            {
                undo.push(e);
            }
            return Err(rollback_error(failed, undo));
        }
        Ok(plan.record)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_endpoint(
        &self,
        host: &Netlink,
        ctr: &Netlink,
        container: &Netns,
        bridge: u32,
        plan: &EndpointPlan,
        new_state: &State,
        record: &NetworkRecord,
        lock: &StateLock,
    ) -> Result<(), RuntimeError> {
        let peer = plan.peer_ifname.as_str();
        let mtu = plan.mtu.map(|m| m.get());
        host.add_veth(plan.host_ifname.as_str(), bridge, peer, container, plan.peer_mac.octets(), mtu)
            .await?;
        let peer_index = ctr.index_of(peer).await?;
        // Independent requests, sent together: one round trip instead of three.
        futures::try_join!(
            ctr.set_up(LOOPBACK_IFINDEX, "lo"),
            ctr.add_address(peer_index, peer, plan.address.ip, plan.address.prefix),
            ctr.set_up(peer_index, peer),
        )?;
        ctr.add_default_route(peer_index, peer, plan.default_route.gateway).await?;
        // Only published ports change the table; skipping the nft call keeps connect fast.
        if !plan.record.ports.is_empty() {
            self.sync_firewall(new_state)?;
        }
        self.state.save(lock, record)?;
        Ok(())
    }

    /// `vethlab disconnect`: deletes the host end (which takes the peer with it, wherever it is)
    /// and releases the address. Idempotent; works when the container's namespace is gone.
    pub async fn disconnect(
        &self,
        network: &str,
        container: &str,
    ) -> Result<Option<EndpointRecord>, RuntimeError> {
        let network = NetworkName::new(network).map_err(vethlab_core::SpecError::from)?;
        let container = vethlab_core::ContainerId::new(container).map_err(vethlab_core::SpecError::from)?;
        let lock = self.state.lock()?;
        let state = self.state.load(&lock)?;
        let mut record = state
            .network(&network)
            .cloned()
            .ok_or_else(|| plan::PlanError::NoSuchNetwork(network.clone()))?;
        let Some(ep) = record.endpoints.remove(&container) else { return Ok(None) };
        let host = Netlink::open(&self.host)?;
        host.del_link_by_name(ep.host_ifname.as_str()).await?;
        if !ep.ports.is_empty() {
            self.sync_firewall(&with_record(&state, record.clone())?)?;
        }
        self.state.save(&lock, &record)?;
        Ok(Some(ep))
    }
}

/// `state` with `record` added or replaced.
fn with_record(state: &State, record: NetworkRecord) -> Result<State, RuntimeError> {
    let name = record.spec.name.clone();
    let records = state.networks().filter(|n| n.spec.name != name).cloned().chain([record]);
    State::new(records).map_err(|e| RuntimeError::Plan(e.into()))
}

fn rollback_error(failed: RuntimeError, undo: TeardownErrors) -> RuntimeError {
    if undo.is_empty() { failed } else { RuntimeError::RollbackFailed { failed: Box::new(failed), undo } }
}
