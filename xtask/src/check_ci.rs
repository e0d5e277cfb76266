//! `cargo xtask check-ci`: the workflow in `ci/ci.yml` is the source of truth; GitHub only reads
//! `.github/workflows/`, so `.github/workflows/ci.yml` must be an identical copy. Both must parse
//! as YAML with jobs and steps, every `cargo xtask <cmd>` named in the workflow or in `.ci/run`
//! must be a real subcommand, and every repository script they run must exist and be executable.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::project::project_root;

pub const SOURCE: &str = "ci/ci.yml";
pub const COPY: &str = ".github/workflows/ci.yml";

pub fn run() -> Result<()> {
    let root = project_root();
    let problems = check(&root)?;
    if !problems.is_empty() {
        bail!("CI configuration problems:\n  {}", problems.join("\n  "));
    }
    println!("xtask: {SOURCE} == {COPY}, valid YAML, every command it names exists");
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
                commands.push((format!("job {name}"), run.to_string()));
            } else if step.get("uses").is_none() {
                problems.push(format!("job {name} has a step with neither run nor uses"));
            }
        }
    }
    let dot_ci = std::fs::read_to_string(root.join(".ci/run")).context("reading .ci/run")?;
    commands.extend(
        dot_ci.lines().filter(|l| !l.trim_start().starts_with('#')).map(|l| (".ci/run".into(), l.into())),
    );
    let known: Vec<String> =
        crate::Cli::command().get_subcommands().map(|c| c.get_name().to_string()).collect();
    for (origin, cmd) in &commands {
        for sub in xtask_subcommands(cmd) {
            if !known.contains(&sub) {
                problems.push(format!(
                    "{origin} runs `cargo xtask {sub}`, which does not exist (have: {})",
                    known.join(", ")
                ));
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

/// The words after each `cargo xtask` in a shell command.
fn xtask_subcommands(cmd: &str) -> Vec<String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    words.windows(3).filter(|w| w[0] == "cargo" && w[1] == "xtask").map(|w| w[2].to_string()).collect()
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
    fn finds_xtask_subcommands() {
        assert_eq!(
            xtask_subcommands("env -u CI cargo xtask test --no-lint && cargo xtask nope"),
            ["test", "nope"]
        );
    }
}
