//! The command line as a user meets it, without privileges: help with examples on every command,
//! exit codes (0 success, 1 error, 2 usage), one-line errors for invalid input.

use std::process::{Command, Output};

fn vethlab(args: &[&str]) -> Output {
    let state = tempfile::tempdir().expect("tempdir");
    Command::new(env!("CARGO_BIN_EXE_vethlab"))
        .args(args)
        .env("VETHLAB_STATE_DIR", state.path())
        .output()
        .expect("run vethlab")
}

#[test]
fn every_command_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["network", "create"],
        &["network", "ls"],
        &["network", "inspect"],
        &["network", "rm"],
        &["connect"],
        &["disconnect"],
        &["run"],
        &["demo"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = vethlab(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text.contains("Example"), "`vethlab {}` has no example:\n{text}", args.join(" "));
    }
}

#[test]
fn aliases_exist() {
    for args in [["network", "list", "--help"], ["network", "remove", "--help"]] {
        assert_eq!(vethlab(&args).status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["network", "create", "zdocker0"],         // --subnet missing
        vec!["connect", "zdocker0", "--id", "abcdef"], // neither --netns nor --pid
        vec!["connect", "n", "--id", "abcdef", "--netns", "/x", "--pid", "1"],
        vec!["frobnicate"],
        vec!["network", "ls", "--format", "xml"],
    ] {
        let out = vethlab(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Invalid input is refused before anything happens, in one line naming what was wrong.
#[test]
fn invalid_input_exits_1_with_one_line() {
    let own_pid = std::process::id().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "create", "--subnet", "192.168.1.0/33", "n"],
            "subnet \"192.168.1.0/33\" is not an IPv4 CIDR",
        ),
        (&["network", "create", "--subnet", "nonsense", "n"], "not an IPv4 CIDR"),
        (&["network", "create", "--subnet", "192.168.1.0/31", "n"], "has prefix /31"),
        (&["network", "create", "--subnet", "192.168.1.0/32", "n"], "has prefix /32"),
        (&["network", "create", "--subnet", "10.0.0.0/24", "sixteen-bytes-xx"], "at most 15"),
        (&["network", "create", "--subnet", "10.0.0.0/24", "a/b"], "'/'"),
        (&["network", "create", "--subnet", "10.0.0.0/24", "--mtu", "20", "n"], "network n: mtu 20"),
        (&["network", "create", "--subnet", "10.0.0.0/24", "--driver", "overlay", "n"], "driver \"overlay\""),
        (&["connect", "n", "--id", "abcd", "--pid", &own_pid], "container id \"abcd\" is too short"),
        (
            &["connect", "n", "--id", "abcdef", "--netns", "/nonexistent/ns"],
            "netns /nonexistent/ns: no such file",
        ),
        (&["connect", "n", "--id", "abcdef", "--netns", "/etc/hostname"], "not a network namespace"),
        (&["connect", "n", "--id", "abcdef", "--pid", "999999999"], "process 999999999 does not exist"),
        (&["network", "inspect", "nope"], "network nope does not exist"),
    ];
    for (args, want) in cases {
        let out = vethlab(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr:?} should contain {want:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {stderr:?}");
        assert!(stderr.starts_with("error: "), "{stderr:?}");
        assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn empty_state_lists_nothing() {
    let out = vethlab(&["network", "ls"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "NAME   SUBNET   GATEWAY   DRIVER   ENDPOINTS\n");
    let out = vethlab(&["network", "ls", "--format", "json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}
