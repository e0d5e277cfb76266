//! `cargo xtask check-ci`: the workflow in `ci/ci.yml` is the source of truth; GitHub only reads
//! `.github/workflows/`, so `.github/workflows/ci.yml` must be an identical copy. Both must parse
//! as YAML with jobs and steps, every `cargo xtask …` line in the workflow or in `.ci/run` must
//! parse with xtask's own argument parser (subcommand and flags, once per matrix value it uses),
//! and every repository script they run must exist and be executable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::project::project_root;

pub const SOURCE: &str = "ci/ci.yml";
pub const COPY: &str = ".github/workflows/ci.yml";

pub fn run() -> Result<()> {
    let root = project_root();
    let problems = check(&root)?;
    if !problems.is_empty() {
        bail!("CI configuration problems:\n  {}", problems.join("\n  "));
    }
    println!(
        "xtask: {SOURCE} == {COPY}, valid YAML, every script exists and every `cargo xtask` command line parses"
    );
    Ok(())
}

/// All problems found (empty when fine).
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let source = std::fs::read_to_string(root.join(SOURCE)).with_context(|| format!("reading {SOURCE}"))?;
    match std::fs::read_to_string(root.join(COPY)) {
        Ok(copy) if copy == source => {}
        Ok(_) => problems.push(format!("{COPY} differs from {SOURCE}: cp {SOURCE} {COPY}")),
        Err(e) => problems.push(format!("{COPY}: {e}: cp {SOURCE} {COPY}")),
    }
    let yaml: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&source) {
        Ok(y) => y,
        Err(e) => {
            problems.push(format!("{SOURCE} is not valid YAML: {e}"));
            return Ok(problems);
        }
    };
    let Some(jobs) = yaml.get("jobs").and_then(|j| j.as_mapping()) else {
        problems.push(format!("{SOURCE} has no jobs"));
        return Ok(problems);
    };
    let mut commands = Vec::new();
    for (name, job) in jobs {
        let name = name.as_str().unwrap_or("?");
        let Some(steps) = job.get("steps").and_then(|s| s.as_sequence()) else {
            problems.push(format!("job {name} has no steps"));
            continue;
        };
        for step in steps {
            if let Some(run) = step.get("run").and_then(|r| r.as_str()) {
                for variant in expand_matrix(run, &matrix_values(job)) {
                    commands.push((format!("job {name}"), variant));
                }
            } else if step.get("uses").is_none() {
                problems.push(format!("job {name} has a step with neither run nor uses"));
            }
        }
    }
    let dot_ci = std::fs::read_to_string(root.join(".ci/run")).context("reading .ci/run")?;
    commands.extend(
        dot_ci.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| (".ci/run".into(), l.into())),
    );
    for (origin, cmd) in &commands {
        for args in xtask_invocations(cmd) {
            let argv = std::iter::once("cargo xtask".to_string()).chain(args.iter().cloned());
            if let Err(e) = crate::Cli::try_parse_from(argv) {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or_default().trim_start_matches("error: ");
                problems.push(format!("{origin} runs `cargo xtask {}`: {why}", args.join(" ")));
            }
        }
        for script in cmd.split_whitespace().filter(|w| w.starts_with("ci/") || w.starts_with(".ci/")) {
            let path = root.join(script);
            let executable = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o111 != 0);
            if !executable.unwrap_or(false) {
                problems.push(format!("{origin} runs {script}, which is missing or not executable"));
            }
        }
    }
    Ok(problems)
}

/// A job's `strategy.matrix` lists: name → values.
fn matrix_values(job: &serde_yaml_ng::Value) -> Vec<(String, Vec<String>)> {
    let Some(matrix) = job.get("strategy").and_then(|s| s.get("matrix")).and_then(|m| m.as_mapping()) else {
        return Vec::new();
    };
    matrix
        .iter()
        .filter_map(|(k, v)| {
            let values = v.as_sequence()?.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
            Some((k.as_str()?.to_string(), values))
        })
        .collect()
}

/// `cmd` once per matrix value it uses (`${{ matrix.NAME }}`), so each real command is checked.
fn expand_matrix(cmd: &str, matrix: &[(String, Vec<String>)]) -> Vec<String> {
    let mut variants = vec![cmd.to_string()];
    for (name, values) in matrix {
        let patterns = [format!("${{{{ matrix.{name} }}}}"), format!("${{{{matrix.{name}}}}}")];
        variants = variants
            .into_iter()
            .flat_map(|v| match patterns.iter().find(|p| v.contains(p.as_str())) {
                Some(p) => values.iter().map(|x| v.replace(p.as_str(), x)).collect(),
                None => vec![v],
            })
            .collect();
    }
    variants
}

/// The arguments of each `cargo xtask …` in a shell command (up to a `&&`, `||`, `;` or `|`).
fn xtask_invocations(cmd: &str) -> Vec<Vec<String>> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let mut found = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        if pair == ["cargo", "xtask"] {
            let args = words[i + 2..].iter().take_while(|w| !["&&", "||", ";", "|"].contains(*w));
            found.push(args.map(|w| w.to_string()).collect());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_is_in_sync_valid_and_names_real_commands() {
        let problems = check(&project_root()).expect("reading the CI files");
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn finds_xtask_invocations_and_expands_the_matrix() {
        assert_eq!(
            xtask_invocations("env -u CI cargo xtask test --no-lint && cargo xtask nope"),
            [vec!["test", "--no-lint"], vec!["nope"]]
        );
        let matrix = vec![(
            "kernel".to_string(),
            vec!["--kernel-version 6.1".to_string(), "--minimal-kernel 6.12".into()],
        )];
        assert_eq!(
            expand_matrix("cargo xtask test-vm ${{ matrix.kernel }}", &matrix),
            ["cargo xtask test-vm --kernel-version 6.1", "cargo xtask test-vm --minimal-kernel 6.12"]
        );
    }

    /// A root holding a one-job workflow with `steps`, its copy and an empty `.ci/run`.
    fn tempdir_with_ci(steps: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = format!("jobs:\n  j:\n    runs-on: x\n    steps:\n{steps}");
        for (path, text) in [(SOURCE, yaml.as_str()), (COPY, yaml.as_str()), (".ci/run", "")] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    #[test]
    fn a_wrong_flag_or_subcommand_is_reported() {
        let dir = tempdir_with_ci(
            "      - run: cargo xtask test-vm --kernel-verison 6.1\n      - run: cargo xtask nope\n",
        );
        let problems = check(dir.path()).expect("reading");
        assert!(problems.iter().any(|p| p.contains("--kernel-verison")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("`cargo xtask nope`")), "{problems:#?}");
    }
}
