//! Privileged tests of the `vethlab` command as a separate process, against a lab's host
//! namespace (`--host-netns`) and state directory (`--state-dir`).

use vethlab_harness::{ContainerKind, Lab, require_root};

/// Every file of the state directory with its contents: "the state files as they were".
fn state_files(lab: &Lab) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(lab.state_dir().join("networks"))? {
        let path = entry?.path();
        files.push((path.display().to_string(), std::fs::read(&path)?));
    }
    files.sort();
    Ok(files)
}

#[tokio::test]
async fn seed_through_the_cli() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let c1 = lab.container("c1", ContainerKind::Process)?;
    let out = lab.cli(&["network", "create", "--subnet", "192.168.1.0/24", "zdocker0"])?;
    assert_eq!((out.code, out.stdout.as_str()), (0, "zdocker0\n"), "{}", out.stderr);
    let pid = c1.pid().expect("process container").to_string();
    let out = lab.cli(&["connect", "zdocker0", "--id", "a1b2c3d4e5f6", "--pid", &pid])?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ep: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(ep["host_ifname"], "a1b2c");
    assert_eq!(ep["ifname"], "cif-a1b2c");
    assert_eq!(ep["address"], "192.168.1.2/24");
    assert_eq!(ep["gateway"], "192.168.1.1");
    assert_eq!(ep["mac"], "02:42:c0:a8:01:02");
    assert_eq!(ep["netns"], format!("pid:{pid}"));

    let ls = lab.cli(&["network", "ls"])?;
    assert_eq!(
        ls.stdout,
        "NAME       SUBNET           GATEWAY       DRIVER   ENDPOINTS\nzdocker0   192.168.1.0/24   192.168.1.1   bridge   1\n"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&lab.cli(&["network", "inspect", "zdocker0"])?.stdout)?;
    assert_eq!(inspect["endpoints"][0]["container_id"], "a1b2c3d4e5f6");
    assert_eq!(inspect["subnet"], "192.168.1.0/24");

    let yaml = lab.snapshot(&[&c1]).await?;
    assert!(yaml.contains("default via 192.168.1.1 dev cif-a1b2c"), "{yaml}");

    let out = lab.cli(&["network", "rm", "zdocker0"])?;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("still attached (a1b2c3d4e5f6)"), "{}", out.stderr);
    assert_eq!(lab.cli(&["disconnect", "zdocker0", "--id", "a1b2c3d4e5f6"])?.code, 0);
    assert_eq!(lab.cli(&["disconnect", "zdocker0", "--id", "a1b2c3d4e5f6"])?.code, 0, "idempotent");
    assert_eq!(lab.cli(&["network", "rm", "zdocker0"])?.code, 0);
    assert!(state_files(&lab)?.is_empty());
    Ok(())
}

/// `vethlab run`: connected before the command starts, exit status passed through, detached after.
#[tokio::test]
async fn run_connects_waits_and_detaches() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    assert_eq!(lab.cli(&["network", "create", "--subnet", "192.168.1.0/24", "zdocker0"])?.code, 0);
    let before = lab.host_snapshot().await?;
    // The interface must already exist and carry its address when the command starts. (/proc/self/net
    // shows the process's own namespace; /sys/class/net would show the mounter's.)
    let script =
        "grep -q cif-runme: /proc/self/net/dev && grep -q 192.168.1.2 /proc/self/net/fib_trie && exit 7";
    let out = lab.cli(&["run", "--net", "zdocker0", "--id", "runme1234", "--", "sh", "-c", script])?;
    assert_eq!(out.code, 7, "exit status passes through; stderr: {}", out.stderr);
    assert_eq!(lab.host_snapshot().await?, before, "run left its endpoint behind");
    let inspect: serde_json::Value =
        serde_json::from_str(&lab.cli(&["network", "inspect", "zdocker0"])?.stdout)?;
    assert_eq!(inspect["endpoints"], serde_json::json!([]));

    let out = lab.cli(&["run", "--net", "zdocker0", "--", "/nonexistent/cmd"])?;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot run \"/nonexistent/cmd\""), "{}", out.stderr);
    assert_eq!(lab.host_snapshot().await?, before, "failed run left its endpoint behind");
    Ok(())
}

/// The list of bad input: one line, exit 1, kernel and state files untouched.
#[tokio::test]
async fn bad_input_is_refused_without_trace() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let c1 = lab.container("c1", ContainerKind::Named)?;
    let c2 = lab.container("c2", ContainerKind::Named)?;
    assert_eq!(lab.cli(&["network", "create", "--subnet", "10.40.0.0/30", "tiny"])?.code, 0);
    let c1_path = c1.path().display().to_string();
    let c2_path = c2.path().display().to_string();
    assert_eq!(lab.cli(&["connect", "tiny", "--id", "first1", "--netns", &c1_path])?.code, 0);
    let host_path = lab.host_path().display().to_string();
    let own = format!("/proc/{}/ns/net", std::process::id());
    let regular = lab.state_dir().join("lock").display().to_string();

    let before_kernel = lab.snapshot(&[&c1, &c2]).await?;
    let before_state = state_files(&lab)?;
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["network", "create", "--subnet", "10.0.0.0/33", "x"], "not an IPv4 CIDR"),
        (vec!["network", "create", "--subnet", "10.0.0.0/31", "x"], "prefix /31"),
        (vec!["network", "create", "--subnet", "10.0.0.0/32", "x"], "prefix /32"),
        (vec!["network", "create", "--subnet", "10.0.0.0/24", "sixteen-bytes-xx"], "at most 15"),
        (vec!["network", "create", "--subnet", "10.0.0.0/24", "a/b"], "'/'"),
        (vec!["network", "create", "--subnet", "10.50.0.0/24", "tiny"], "network tiny already exists"),
        (vec!["network", "create", "--subnet", "10.50.0.0/24", "lo"], "interface lo already exists in netns"),
        (vec!["connect", "tiny", "--id", "second", "--netns", "/run/netns/does-not-exist"], "no such file"),
        (vec!["connect", "tiny", "--id", "second", "--netns", &regular], "not a network namespace"),
        (vec!["connect", "tiny", "--id", "second", "--netns", &host_path], "is the host namespace"),
        (
            vec!["connect", "tiny", "--id", "second", "--netns", &own],
            "is the host namespace or vethlab's own",
        ),
        (vec!["connect", "tiny", "--id", "second", "--pid", "999999999"], "process 999999999 does not exist"),
        (vec!["connect", "tiny", "--id", "abcd", "--netns", &c2_path], "too short"),
        (
            vec!["connect", "tiny", "--id", "second", "--ip", "10.41.0.2", "--netns", &c2_path],
            "outside subnet",
        ),
        (
            vec!["connect", "tiny", "--id", "second", "--ip", "10.40.0.2", "--netns", &c2_path],
            "already assigned to container first1",
        ),
        (vec!["connect", "tiny", "--id", "second", "--netns", &c2_path], "exhausted"),
        (vec!["connect", "tiny", "--id", "first1", "--netns", &c2_path], "already connected"),
    ];
    for (args, want) in &cases {
        let out = lab.cli(args)?;
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{args:?}: {:?} should contain {want:?}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {:?}", out.stderr);
    }
    assert_eq!(lab.snapshot(&[&c1, &c2]).await?, before_kernel, "bad input changed the kernel");
    assert_eq!(state_files(&lab)?, before_state, "bad input changed the state files");

    // A corrupt state file is reported, and never overwritten.
    let file = lab.state_dir().join("networks/tiny.json");
    std::fs::write(&file, b"{ \"name\": \"tiny\", \"subnet\": ")?;
    for args in [
        vec!["network", "ls"],
        vec!["network", "create", "--subnet", "10.60.0.0/24", "more"],
        vec!["disconnect", "tiny", "--id", "first1"],
    ] {
        let out = lab.cli(&args)?;
        assert_eq!(out.code, 1, "{args:?}");
        assert!(out.stderr.contains("tiny.json is corrupt"), "{args:?}: {}", out.stderr);
    }
    assert_eq!(std::fs::read(&file)?, b"{ \"name\": \"tiny\", \"subnet\": ");
    assert_eq!(lab.snapshot(&[&c1, &c2]).await?, before_kernel, "corrupt state led to a kernel change");
    Ok(())
}
