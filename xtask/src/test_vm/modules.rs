//! The kernel modules the scenarios need, decompressed on the host and ordered so each one's
//! dependencies come first (read from each module's own `.modinfo` `depends=`, which is what
//! `depmod` writes into `modules.dep`); modules built into the kernel are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::kernel::pipe_through;

/// What the scenarios need: veth pairs, bridges, nftables with NAT and conntrack, iptables-nft.
/// Dependencies (stp, llc, nf_conntrack, nf_defrag_*, libcrc32c, …) are found automatically.
pub const WANTED: &[&str] = &[
    "veth",
    "bridge",
    "dummy",
    "nf_tables",
    "nf_conntrack",
    "nf_nat",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    // `fib daddr type local` in vethlab's port-mapping rules (and netavark's).
    "nft_fib_ipv4",
    // iptables-nft, used by netavark and the CNI plugins in the conformance tests.
    "nft_compat",
    "xt_conntrack",
    "xt_MASQUERADE",
    "xt_comment",
    "xt_addrtype",
    "xt_nat",
    "xt_mark",
    "xt_multiport",
    "xt_tcpudp",
];

/// A decompressed module to put into the initramfs.
#[derive(Debug)]
pub struct Module {
    pub name: String,
    pub data: Vec<u8>,
}

/// Modules in load order, plus the names found built in or missing (for the progress output).
#[derive(Debug, Default)]
pub struct Resolved {
    pub modules: Vec<Module>,
    pub builtin: Vec<String>,
    pub missing: Vec<String>,
}

/// Resolves [`WANTED`] against `dir` (`lib/modules/<version>`).
pub fn resolve(dir: &Path) -> Result<Resolved> {
    let mut files = BTreeMap::new();
    index(&dir.join("kernel"), &mut files)
        .with_context(|| format!("listing modules in {}", dir.display()))?;
    let builtin: BTreeSet<String> = std::fs::read_to_string(dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(Path::new(l)))
        .collect();
    let mut out = Resolved::default();
    let mut seen = BTreeSet::new();
    for want in WANTED {
        visit(&normalize(want), &files, &builtin, &mut seen, &mut out)?;
    }
    Ok(out)
}

fn visit(
    name: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    out: &mut Resolved,
) -> Result<()> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let Some(path) = files.get(name) else {
        if builtin.contains(name) {
            out.builtin.push(name.to_string());
        } else {
            out.missing.push(name.to_string());
        }
        return Ok(());
    };
    let data = strip_signature(decompress(path)?);
    for dep in softdep_pre(&data).into_iter().chain(depends(&data)) {
        // A soft dependency names an alias (libcrc32c's `pre: crc32c`); the generic
        // implementation is the module that provides it on every CPU, TCG's included.
        let dep = normalize(&dep);
        let dep =
            if files.contains_key(&dep) || builtin.contains(&dep) { dep } else { format!("{dep}_generic") };
        visit(&dep, files, builtin, seen, out)?;
    }
    out.modules.push(Module { name: name.to_string(), data });
    Ok(())
}

/// `nf-nat` and `nf_nat` are the same module to the kernel.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/net/bridge/bridge.ko.xz` → `bridge`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file.split(".ko").next()?;
    (file.contains(".ko") && !stem.is_empty()).then(|| normalize(stem))
}

fn index(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            index(&path, files)?;
        } else if let Some(name) = module_name(&path) {
            files.insert(name, path);
        }
    }
    Ok(())
}

/// A module file's bytes, decompressed (`.ko.xz`, `.ko.zst`, `.ko.gz`) for `finit_module(2)` in the guest.
fn decompress(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.to_string_lossy();
    let tool: &[&str] = if name.ends_with(".xz") {
        &["xz", "-dc"]
    } else if name.ends_with(".zst") {
        &["zstd", "-dcq"]
    } else if name.ends_with(".gz") {
        &["gzip", "-dc"]
    } else {
        return Ok(raw);
    };
    pipe_through(tool, &raw).with_context(|| format!("decompressing {}", path.display()))
}

/// Drops the appended module signature. Checking it (RSA + SHA over the whole module) is the
/// slowest part of `insmod` under TCG; Debian kernels do not enforce signatures without Secure
/// Boot, so an unsigned module loads and merely taints the kernel ("module verification failed").
fn strip_signature(mut module: Vec<u8>) -> Vec<u8> {
    const MARKER: &[u8] = b"~Module signature appended~\n";
    // struct module_signature: 8 bytes of algorithm/id fields, then the signature length (BE u32).
    const INFO: usize = 12;
    if !module.ends_with(MARKER) || module.len() < MARKER.len() + INFO {
        return module;
    }
    let info_at = module.len() - MARKER.len() - INFO;
    let len = &module[info_at + 8..info_at + 12];
    let sig_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if let Some(end) = info_at.checked_sub(sig_len) {
        module.truncate(end);
    }
    module
}

/// The value of `key` in the module's `.modinfo` section (NUL-separated `key=value`s).
fn modinfo(module: &[u8], key: &str) -> Option<String> {
    let key = format!("\0{key}=");
    let at = module.windows(key.len()).position(|w| w == key.as_bytes())?;
    let rest = &module[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// `depends=a,b`: what `depmod` puts into `modules.dep`.
fn depends(module: &[u8]) -> Vec<String> {
    let deps = modinfo(module, "depends").unwrap_or_default();
    deps.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The `pre:` part of `softdep=pre: a b post: c`.
fn softdep_pre(module: &[u8]) -> Vec<String> {
    let soft = modinfo(module, "softdep").unwrap_or_default();
    let mut pre = Vec::new();
    let mut in_pre = false;
    for word in soft.split_whitespace() {
        match word {
            "pre:" => in_pre = true,
            "post:" => in_pre = false,
            w if in_pre => pre.push(w.to_string()),
            _ => {}
        }
    }
    pre
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_depends_from_modinfo() {
        let m = b"\x7fELF...\0license=GPL\0depends=stp,llc\0intree=Y\0";
        assert_eq!(depends(m), ["stp", "llc"]);
        assert!(depends(b"\0depends=\0").is_empty());
        let mut signed = b"MODULE".to_vec();
        signed.extend_from_slice(b"SIG");
        signed.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        signed.extend_from_slice(b"~Module signature appended~\n");
        assert_eq!(strip_signature(signed), b"MODULE");
        assert_eq!(softdep_pre(b"\0softdep=pre: crc32c post: x\0"), ["crc32c"]);
        assert_eq!(module_name(Path::new("kernel/net/nf-nat.ko.xz")).as_deref(), Some("nf_nat"));
    }
}
