//! Reading libtest's human output (`test NAME ... ok`) and printing the per-area summary table.

use std::collections::BTreeMap;

/// What happened to one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    /// Marked with the `ignore` attribute: deliberately not run; never a failure.
    Ignored,
    /// The test ran but skipped itself (privileges missing), with the reason from the skip log.
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    pub status: Status,
}

/// The parsed output of one test binary.
#[derive(Debug, Default)]
pub struct Parsed {
    pub tests: Vec<TestOutcome>,
    /// How many `test result:` lines were seen (a binary that crashed has none).
    pub result_lines: usize,
}

/// Parses `test NAME ... ok|FAILED|ignored` lines and counts `test result:` lines.
pub fn parse(output: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for line in output.lines() {
        let line = line.trim_end();
        if line.starts_with("test result: ") {
            parsed.result_lines += 1;
            continue;
        }
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, verdict)) = rest.rsplit_once(" ... ") else { continue };
        let status = match verdict {
            "ok" => Status::Passed,
            "FAILED" => Status::Failed,
            v if v == "ignored" || v.starts_with("ignored, ") => Status::Ignored,
            _ => continue,
        };
        parsed.tests.push(TestOutcome { name: name.to_string(), status });
    }
    parsed
}

/// Parses the skip log (`<test name>\t<reason>` per line).
pub fn parse_skip_log(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once('\t') {
            Some((n, r)) => (n.trim().to_string(), r.trim().to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect()
}

/// Whether a skip-log name (often a full path like `runtime::creates_bridge`) names the libtest
/// test `test` (e.g. `creates_bridge` or `tests::creates_bridge`).
pub fn skip_matches(skip_name: &str, test: &str) -> bool {
    skip_name == test
        || skip_name.ends_with(&format!("::{test}"))
        || test.ends_with(&format!("::{skip_name}"))
}

/// Marks passed tests that appear in the skip log as skipped; returns skip entries matching no test.
pub fn apply_skips(tests: &mut [TestOutcome], skips: &[(String, String)]) -> Vec<(String, String)> {
    let mut unmatched = Vec::new();
    for (skip, reason) in skips {
        let mut found = false;
        for t in tests.iter_mut().filter(|t| skip_matches(skip, &t.name)) {
            found = true;
            if t.status == Status::Passed {
                t.status = Status::Skipped(reason.clone());
            }
        }
        if !found {
            unmatched.push((skip.clone(), reason.clone()));
        }
    }
    unmatched
}

/// Results of the whole run, per area, in insertion order.
#[derive(Debug, Default)]
pub struct Summary {
    areas: Vec<(String, Vec<TestOutcome>)>,
}

impl Summary {
    pub fn add(&mut self, area: &str, tests: Vec<TestOutcome>) {
        self.areas.push((area.to_string(), tests));
    }

    pub fn count(&self, pred: impl Fn(&Status) -> bool) -> usize {
        self.areas.iter().flat_map(|(_, t)| t).filter(|t| pred(&t.status)).count()
    }

    pub fn failed(&self) -> usize {
        self.count(|s| *s == Status::Failed)
    }

    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, Status::Skipped(_)))
    }

    /// The table: one row per area, then the names of failing and skipped tests.
    pub fn render(&self) -> String {
        let width = self.areas.iter().map(|(a, _)| a.len()).max().unwrap_or(4).max(5);
        let mut out = format!(
            "{:<width$}  {:>6}  {:>6}  {:>7}  {:>7}\n",
            "area", "passed", "failed", "skipped", "ignored"
        );
        let mut totals = [0usize; 4];
        for (area, tests) in &self.areas {
            let mut c = [0usize; 4];
            for t in tests {
                let i = match t.status {
                    Status::Passed => 0,
                    Status::Failed => 1,
                    Status::Skipped(_) => 2,
                    Status::Ignored => 3,
                };
                c[i] += 1;
                totals[i] += 1;
            }
            out += &format!("{area:<width$}  {:>6}  {:>6}  {:>7}  {:>7}\n", c[0], c[1], c[2], c[3]);
        }
        out += &format!(
            "{:<width$}  {:>6}  {:>6}  {:>7}  {:>7}\n",
            "total", totals[0], totals[1], totals[2], totals[3]
        );
        let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (area, tests) in &self.areas {
            for t in tests {
                match &t.status {
                    Status::Failed => {
                        by_kind.entry("failed").or_default().push(format!("{area}: {}", t.name))
                    }
                    Status::Skipped(r) => {
                        by_kind.entry("skipped").or_default().push(format!("{area}: {} ({r})", t.name))
                    }
                    _ => {}
                }
            }
        }
        for (kind, names) in by_kind {
            out += &format!("\n{kind}:\n");
            for n in names {
                out += &format!("  {n}\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\nrunning 4 tests\ntest a::passes ... ok\ntest b::fails ... FAILED\n\
        test c ... ignored\ntest d ... ignored, needs hardware\ntest e ... ok\n\nfailures:\n\n\
        test result: FAILED. 2 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out\n";

    #[test]
    fn parses_human_output() {
        let p = parse(OUTPUT);
        assert_eq!(p.result_lines, 1);
        let got: Vec<_> = p.tests.iter().map(|t| (t.name.as_str(), t.status.clone())).collect();
        assert_eq!(
            got,
            [
                ("a::passes", Status::Passed),
                ("b::fails", Status::Failed),
                ("c", Status::Ignored),
                ("d", Status::Ignored),
                ("e", Status::Passed)
            ]
        );
    }

    #[test]
    fn skip_log_marks_tests_skipped() {
        let mut p = parse(OUTPUT);
        let skips = parse_skip_log("runtime::a::passes\tneeds root\nother::x\twhy\n");
        let unmatched = apply_skips(&mut p.tests, &skips);
        assert_eq!(p.tests[0].status, Status::Skipped("needs root".into()));
        assert_eq!(unmatched, [("other::x".to_string(), "why".to_string())]);
        let mut s = Summary::default();
        s.add("crates/x (unit)", p.tests);
        assert_eq!((s.failed(), s.skipped()), (1, 1));
        let table = s.render();
        assert!(table.contains("crates/x (unit): b::fails"), "{table}");
        assert!(table.contains("a::passes (needs root)"), "{table}");
    }
}
