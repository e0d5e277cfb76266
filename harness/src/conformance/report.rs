//! The conformance matrix rendered for people (an aligned table, failures and known behaviour
//! explained below it) and for CI (JSON, JUnit XML with unsupported as `skipped`).

use std::fmt::Write as _;

use anyhow::Result;

use super::{CaseResult, Verdict};

/// The scenario × runtime matrix as an aligned table, failures explained below it.
pub fn table(results: &[CaseResult]) -> String {
    let runtimes: Vec<&str> = unique(results.iter().map(|r| r.runtime.as_str()));
    let scenarios: Vec<&str> = unique(results.iter().map(|r| r.scenario.as_str()));
    let cell = |s: &str, rt: &str| {
        results
            .iter()
            .find(|r| r.scenario == s && r.runtime == rt)
            .map(|r| match r.verdict {
                Verdict::Unsupported(_) => "unsupported".to_owned(),
                _ => format!("{} {:.2}s", r.verdict.word(), r.seconds),
            })
            .unwrap_or_default()
    };
    let first = scenarios.iter().map(|s| s.len()).max().unwrap_or(0).max("SCENARIO".len());
    let widths: Vec<usize> = runtimes
        .iter()
        .map(|rt| scenarios.iter().map(|s| cell(s, rt).len()).max().unwrap_or(0).max(rt.len()))
        .collect();
    let mut out = format!("{:first$}", "SCENARIO");
    for (rt, w) in runtimes.iter().zip(&widths) {
        let _ = write!(out, "   {rt:w$}");
    }
    out = out.trim_end().to_owned() + "\n";
    for s in &scenarios {
        let mut line = format!("{s:first$}");
        for (rt, w) in runtimes.iter().zip(&widths) {
            let _ = write!(line, "   {:w$}", cell(s, rt));
        }
        out += line.trim_end();
        out.push('\n');
    }
    let count = |word: &str| results.iter().filter(|r| r.verdict.word() == word).count();
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} unsupported",
        count("pass"),
        count("FAIL"),
        count("unsupported")
    );
    for r in results {
        match &r.verdict {
            Verdict::Fail(reason) => {
                let _ = writeln!(
                    out,
                    "\nFAIL {} on {}:\n  {}",
                    r.scenario,
                    r.runtime,
                    reason.replace('\n', "\n  ")
                );
            }
            Verdict::Unsupported(reason) => {
                let _ = writeln!(out, "unsupported: {} on {}: {reason}", r.scenario, r.runtime);
            }
            Verdict::Pass => {}
        }
    }
    let mut seen = Vec::new();
    for r in results {
        for k in &r.known {
            if !seen.contains(&(&r.runtime, k)) {
                seen.push((&r.runtime, k));
            }
        }
    }
    if !seen.is_empty() {
        out += "\nknown behaviour:\n";
        for (rt, k) in seen {
            let _ = writeln!(out, "  {rt}: {k}");
        }
    }
    out
}

/// The results as a JSON array.
pub fn json(results: &[CaseResult]) -> Result<String> {
    Ok(serde_json::to_string_pretty(results)?)
}

/// JUnit XML: one testsuite per runtime, one testcase per scenario; unsupported is `skipped`.
pub fn junit(results: &[CaseResult]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"vethlab conformance\">\n",
    );
    for rt in unique(results.iter().map(|r| r.runtime.as_str())) {
        let cases: Vec<&CaseResult> = results.iter().filter(|r| r.runtime == rt).collect();
        let failures = cases.iter().filter(|r| matches!(r.verdict, Verdict::Fail(_))).count();
        let skipped = cases.iter().filter(|r| matches!(r.verdict, Verdict::Unsupported(_))).count();
        let time: f64 = cases.iter().map(|r| r.seconds).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml(rt),
            cases.len()
        );
        for r in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(rt),
                xml(&r.scenario),
                r.seconds
            );
            match &r.verdict {
                Verdict::Pass if r.known.is_empty() => out += "/>\n",
                Verdict::Pass => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml(&r.known.join("\n"))
                    );
                }
                Verdict::Fail(reason) => {
                    let first = reason.lines().next().unwrap_or("");
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(first),
                        xml(reason)
                    );
                }
                Verdict::Unsupported(reason) => {
                    let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(reason));
                }
            }
        }
        out += "  </testsuite>\n";
    }
    out + "</testsuites>\n"
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}
