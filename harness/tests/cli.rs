//! Privileged tests of the `vethlab` command as a separate process, against a lab's host
//! namespace (`--host-netns`) and state directory (`--state-dir`).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use vethlab_harness::cli::vethlab_bin;
use vethlab_harness::lab::NETNS_RUN_DIR;
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

/// The firewall's bad input: each mapping refused in one line, exit 1, with no rule added.
#[tokio::test]
async fn bad_port_mappings_add_no_rule() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let web = lab.container("web", ContainerKind::Named)?;
    let other = lab.container("other", ContainerKind::Named)?;
    assert_eq!(lab.cli(&["network", "create", "--subnet", "192.168.1.0/24", "zdocker0"])?.code, 0);
    let web_path = web.path().display().to_string();
    let out =
        lab.cli(&["connect", "zdocker0", "--id", "web000001", "--netns", &web_path, "-p", "8080:80"])?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before_kernel = lab.snapshot(&[&web, &other]).await?;
    assert!(before_kernel.contains("tcp dport 8080 dnat to 192.168.1.2:80"), "{before_kernel}");
    let before_state = state_files(&lab)?;
    let path = other.path().display().to_string();
    let cases = [
        ("0:80", "host port \"0\" is not a number from 1 to 65535"),
        ("70000:80", "host port \"70000\" is not a number from 1 to 65535"),
        ("80", "is not [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]"),
        ("a:b", "host port \"a\""),
        ("8080:80/sctpx", "protocol \"sctpx\" is not tcp or udp"),
        (
            "8080:81",
            "port mapping 8080:81/tcp clashes with 8080:80/tcp of container web000001 on network zdocker0",
        ),
    ];
    for (mapping, want) in cases {
        let out = lab.cli(&["connect", "zdocker0", "--id", "other0001", "--netns", &path, "-p", mapping])?;
        assert_eq!(out.code, 1, "-p {mapping}: {}", out.stderr);
        assert!(out.stderr.contains(want), "-p {mapping}: {:?} should contain {want:?}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "-p {mapping}: {:?}", out.stderr);
    }
    assert_eq!(lab.snapshot(&[&web, &other]).await?, before_kernel, "a refused mapping changed the kernel");
    assert_eq!(state_files(&lab)?, before_state, "a refused mapping changed the state");
    let inspect: serde_json::Value =
        serde_json::from_str(&lab.cli(&["network", "inspect", "zdocker0"])?.stdout)?;
    assert_eq!(inspect["endpoints"][0]["ports"], serde_json::json!(["8080:80/tcp"]));
    Ok(())
}

/// Rules are kernel state: they outlive the process that made them, another process still knows
/// them, and removing one network removes exactly its rules.
#[tokio::test]
async fn rules_survive_the_process_and_leave_exactly() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let lab = Lab::new().await?;
    let empty = lab.host_snapshot().await?;
    assert_eq!(lab.cli(&["network", "create", "--subnet", "10.1.0.0/24", "one"])?.code, 0);
    let with_one = lab.host_snapshot().await?;
    assert!(with_one.contains("ip saddr 10.1.0.0/24 oifname != \"one\" masquerade"), "{with_one}");
    assert!(with_one.contains("net.ipv4.ip_forward: '1'"), "{with_one}");
    let ls = lab.cli(&["network", "ls"])?;
    assert!(ls.stdout.contains("\none    10.1.0.0/24   10.1.0.1   bridge   0\n"), "{}", ls.stdout);

    assert_eq!(lab.cli(&["network", "create", "--subnet", "10.2.0.0/24", "two"])?.code, 0);
    let with_two = lab.host_snapshot().await?;
    assert!(with_two.contains("iifname \"one\" oifname \"two\" drop"), "{with_two}");
    // Creating again is refused and duplicates nothing.
    assert_eq!(lab.cli(&["network", "create", "--subnet", "10.2.0.0/24", "two"])?.code, 1);
    assert_eq!(lab.host_snapshot().await?, with_two, "a refused create changed the ruleset");
    assert_eq!(lab.cli(&["network", "rm", "two"])?.code, 0);
    assert_eq!(lab.host_snapshot().await?, with_one, "removing two left or took other rules");
    assert_eq!(lab.cli(&["network", "rm", "one"])?.code, 0);
    assert_eq!(lab.host_snapshot().await?, empty, "the table or ip_forward was left behind");
    Ok(())
}

/// The named namespaces that process `pid`'s labs made (`vl<pid>-…`) in a `/run/netns`: ours,
/// or its own through `/proc/PID/root`. Other tests of this binary make theirs concurrently.
fn lab_netns(dir: &str, pid: i32) -> Vec<String> {
    let prefix = format!("vl{pid}-");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

/// A child process killed and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vethlab conformance` killed in the middle of a scenario leaves nothing: its labs' named
/// namespaces were only ever in a `/run/netns` private to it, and its container processes die
/// with it.
#[test]
fn conformance_killed_midway_leaves_nothing() -> anyhow::Result<()> {
    if !require_root!() {
        return Ok(());
    }
    let child = Command::new(vethlab_bin()?)
        .args(["conformance", "--scenario", "fifty_containers"])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = i32::try_from(child.id())?;
    // Killed if an assertion below fails first.
    let mut child = KillOnDrop(child);
    let child = &mut child.0;
    // Its own view of /run/netns fills up while the scenario creates containers (half of them
    // named namespaces, half processes).
    let theirs = format!("/proc/{pid}/root{NETNS_RUN_DIR}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while seen.len() < 6 {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            anyhow::bail!("conformance never got to 6 named namespaces (saw {seen:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
        seen = lab_netns(&theirs, pid);
    }
    assert_eq!(
        lab_netns(NETNS_RUN_DIR, pid),
        Vec::<String>::new(),
        "the run's namespaces showed in our /run/netns"
    );
    kill(Pid::from_raw(pid), Signal::SIGKILL)?;
    child.wait()?;

    assert_eq!(lab_netns(NETNS_RUN_DIR, pid), Vec::<String>::new(), "a killed run left named namespaces");
    // Its container processes were in its process group; they must follow it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match killpg(Pid::from_raw(pid), None) {
            Err(Errno::ESRCH) => break,
            _ if Instant::now() > deadline => anyhow::bail!("container processes outlived the killed run"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(())
}
