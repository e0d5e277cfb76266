//! vethlab's CNI mode over the real protocol: the binary run with `CNI_COMMAND` set, inside a
//! lab's host namespace — VERSION, error JSON with the spec's codes, idempotent DEL, CHECK.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use vethlab_harness::cli::vethlab_bin;
use vethlab_harness::runtimes::command_in;
use vethlab_harness::{ContainerKind, Lab, require_root};

/// Runs the plugin: (exit code, stdout as JSON or Null).
fn plugin(cmd: Command, env: &[(&str, &str)], stdin: &str) -> anyhow::Result<(i32, Value)> {
    let mut cmd = cmd;
    cmd.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    child.stdin.take().map(|mut s| s.write_all(stdin.as_bytes())).transpose()?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? };
    Ok((out.status.code().unwrap_or(-1), v))
}

#[test]
fn version_lists_the_supported_versions() -> anyhow::Result<()> {
    let (code, v) =
        plugin(Command::new(vethlab_bin()?), &[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#)?;
    assert_eq!(code, 0);
    assert_eq!(v, json!({"cniVersion": "0.4.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}));
    Ok(())
}

#[test]
fn errors_are_cni_error_json_with_spec_codes() -> anyhow::Result<()> {
    let bin = vethlab_bin()?;
    let (code, v) = plugin(Command::new(&bin), &[("CNI_COMMAND", "ADD")], "not json")?;
    assert_eq!((code, &v["code"]), (1, &json!(6)), "{v}");
    let conf = r#"{"cniVersion":"0.3.1","name":"n","type":"vethlab","bridge":"br0","subnet":"10.0.0.0/24"}"#;
    let (code, v) = plugin(Command::new(&bin), &[("CNI_COMMAND", "ADD")], conf)?;
    assert_eq!((code, &v["code"]), (1, &json!(1)), "{v}");
    let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"vethlab","bridge":"br0"}"#;
    let (_, v) = plugin(Command::new(&bin), &[("CNI_COMMAND", "ADD")], conf)?;
    assert_eq!(v, json!({"cniVersion": "1.0.0", "code": 7, "msg": "network n: \"subnet\" is required"}));
    let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"vethlab","bridge":"br0","subnet":"10.0.0.0/24"}"#;
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/nonexistent"),
        ("CNI_IFNAME", "eth0"),
    ];
    let (_, v) = plugin(Command::new(&bin), &env, conf)?;
    assert_eq!(v["code"], 4, "ids shorter than 5 characters are refused: {v}");
    let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"vethlab","bridge":"br0","subnet":"10.0.0.0/24"}"#;
    let (_, v) = plugin(Command::new(&bin), &[("CNI_COMMAND", "GC")], conf)?;
    assert_eq!(v["code"], 1, "GC needs 1.1.0: {v}");
    Ok(())
}

#[tokio::test]
async fn add_check_del_and_del_again() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let c1 = lab.container("c1", ContainerKind::Named)?;
    let bin = vethlab_bin()?;
    let state = lab.state_dir().display().to_string();
    let conf = json!({"cniVersion": "1.0.0", "name": "cninet", "type": "vethlab", "bridge": "cninet",
                      "subnet": "10.66.0.0/24", "stateDir": state})
    .to_string();
    let netns = c1.path().display().to_string();
    let env = |cmd: &'static str| {
        [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "cnictr0001"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
        ]
    };
    let before = lab.host_snapshot().await?;
    let (code, result) = plugin(command_in(lab.host(), &bin), &env("ADD"), &conf)?;
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["ips"], json!([{"address": "10.66.0.2/24", "gateway": "10.66.0.1", "interface": 2}]));
    assert_eq!(result["interfaces"][2]["sandbox"], json!(netns));
    assert_eq!(result["interfaces"][0]["name"], "cninet");
    assert_eq!(result["interfaces"][1]["name"], "cnict");
    assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.66.0.1"}]));
    let (code, v) = plugin(command_in(lab.host(), &bin), &env("CHECK"), &conf)?;
    assert_eq!(code, 0, "{v}");
    // Another subnet for the same bridge is refused.
    let other = conf.replace("10.66.0.0/24", "10.67.0.0/24");
    let (_, v) = plugin(command_in(lab.host(), &bin), &env("ADD"), &other)?;
    assert_eq!(v["code"], 7, "{v}");
    for _ in 0..2 {
        let (code, v) = plugin(command_in(lab.host(), &bin), &env("DEL"), &conf)?;
        assert_eq!(code, 0, "DEL is idempotent: {v}");
    }
    assert_eq!(lab.host_snapshot().await?, before, "DEL of the last endpoint leaves nothing behind");
    // DEL when the namespace is gone.
    drop(c1);
    let gone = [("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "cnictr0001"), ("CNI_IFNAME", "eth0")];
    let (code, v) = plugin(command_in(lab.host(), &bin), &gone, &conf)?;
    assert_eq!(code, 0, "{v}");
    Ok(())
}

/// GC (1.1.0): attachments missing from `cni.dev/valid-attachments` are released; STATUS answers
/// success while the state directory is usable; both are refused below 1.1.0.
#[tokio::test]
async fn gc_releases_stale_attachments_and_status_reports_ready() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let (c1, c2) = (lab.container("c1", ContainerKind::Named)?, lab.container("c2", ContainerKind::Named)?);
    let bin = vethlab_bin()?;
    let state = lab.state_dir().display().to_string();
    let conf = |version: &str, valid: Value| {
        json!({"cniVersion": version, "name": "gcnet", "type": "vethlab", "bridge": "gcnet",
               "subnet": "10.77.0.0/24", "stateDir": state, "cni.dev/valid-attachments": valid})
        .to_string()
    };
    for (c, id) in [(&c1, "keep00001"), (&c2, "stale0001")] {
        let netns = c.path().display().to_string();
        let env =
            [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", id), ("CNI_NETNS", &netns), ("CNI_IFNAME", "eth0")];
        let (code, v) = plugin(command_in(lab.host(), &bin), &env, &conf("1.1.0", json!([])))?;
        assert_eq!(code, 0, "ADD {id}: {v}");
    }
    let valid = json!([{"containerID": "keep00001", "ifname": "eth0"}]);
    let (code, v) =
        plugin(command_in(lab.host(), &bin), &[("CNI_COMMAND", "GC")], &conf("1.0.0", valid.clone()))?;
    assert_ne!(code, 0, "GC needs 1.1.0: {v}");
    let (code, v) = plugin(command_in(lab.host(), &bin), &[("CNI_COMMAND", "GC")], &conf("1.1.0", valid))?;
    assert_eq!(code, 0, "GC: {v}");
    let inspect = lab.cli(&["network", "inspect", "gcnet"])?;
    let net: Value = serde_json::from_str(&inspect.stdout)?;
    let ids: Vec<&str> = net["endpoints"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["container_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["keep00001"], "GC keeps the valid attachment and releases the other");
    let yaml = lab.snapshot(&[&c2]).await?;
    assert!(!yaml.contains("stale"), "the stale endpoint's veth is gone:\n{yaml}");
    let (code, v) =
        plugin(command_in(lab.host(), &bin), &[("CNI_COMMAND", "STATUS")], &conf("1.1.0", json!([])))?;
    assert_eq!(code, 0, "STATUS: {v}");
    Ok(())
}

/// The same scenarios pass whichever spec version is spoken, for vethlab's plugin and Debian's
/// bridge plugin alike (each in the versions its VERSION command claims; Debian's bridge plugin
/// stops at 1.0.0, vethlab's speaks 1.1.0 too).
#[tokio::test]
async fn every_spec_version_end_to_end() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let bridge = std::path::Path::new("/usr/lib/cni/bridge");
    let mut plugins = vec![vethlab_bin()?];
    if bridge.exists() {
        plugins.push(bridge.to_owned());
    } else if std::env::var_os("CI").is_some() {
        anyhow::bail!("{} is missing: run ci/install.sh", bridge.display());
    }
    for plugin_path in plugins {
        let (_, answer) = plugin(Command::new(&plugin_path), &[("CNI_COMMAND", "VERSION")], "{}")?;
        let claimed = answer["supportedVersions"].as_array().cloned().unwrap_or_default();
        let versions: Vec<&str> =
            ["0.4.0", "1.0.0", "1.1.0"].into_iter().filter(|v| claimed.contains(&json!(v))).collect();
        assert!(versions.contains(&"1.0.0"), "{} claims {claimed:?}", plugin_path.display());
        if plugin_path == vethlab_bin()? {
            assert_eq!(versions, ["0.4.0", "1.0.0", "1.1.0"]);
        }
        for version in versions {
            let mut rt = vethlab_harness::runtimes::cni::Cni::new(plugin_path.clone())?.with_version(version);
            for name in ["seed", "static_ip"] {
                let scenario = vethlab_harness::scenario::by_name(name);
                let result = vethlab_harness::conformance::run_case(&mut rt, &scenario).await;
                assert_eq!(
                    result.verdict,
                    vethlab_harness::conformance::Verdict::Pass,
                    "{name} with {} at cniVersion {version}",
                    plugin_path.display()
                );
            }
        }
    }
    Ok(())
}
