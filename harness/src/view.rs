//! The harness's view of kernel state: a normalised YAML snapshot of the lab's namespaces, read
//! through `vethlab-verify`'s netlink dumps. One place, so every test compares the same thing.

use anyhow::Result;
use vethlab_runtime::Netns;

use crate::lab::{Container, Lab};

impl Lab {
    /// The host namespace and `containers`, labelled `host` and by container label.
    pub async fn snapshot(&self, containers: &[&Container]) -> Result<String> {
        let mut namespaces: Vec<(&str, &Netns)> = vec![("host", self.host())];
        namespaces.extend(containers.iter().map(|c| (c.label.as_str(), c.netns())));
        let opts = vethlab_verify::NormalizeOptions::vethlab();
        let snapshot = vethlab_verify::capture_snapshot(&namespaces, &opts).await?;
        Ok(vethlab_verify::to_yaml(&snapshot))
    }

    /// A snapshot of the host namespace alone: the residue baseline.
    pub async fn host_snapshot(&self) -> Result<String> {
        self.snapshot(&[]).await
    }
}
