//! Architecture invariant: `vethlab-core` does no IO, so it must not depend on tokio, nix,
//! rtnetlink or any netlink crate, directly or through another dependency.

use std::process::Command;

#[test]
fn core_depends_on_no_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "vethlab-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("vethlab-core"), "unexpected cargo tree output: {tree}");
    for banned in ["tokio", "nix", "rtnetlink", "netlink", "libc", "mio"] {
        let hit = tree.lines().find(|l| l.split_whitespace().next().is_some_and(|c| c.starts_with(banned)));
        assert!(hit.is_none(), "vethlab-core depends on {banned}: {hit:?}\n{tree}");
    }
}
