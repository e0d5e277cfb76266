//! `cargo xtask test-vm --junit PATH`: the run as JUnit XML for CI systems. One `testsuite` per
//! kernel, one `testcase` per test (its class is the kernel and the test binary), a failure
//! carrying the output the test printed in the guest; a VM-level problem (a panic, a missing done
//! marker, a timeout) is a failing testcase of its own, `vm`, so a report never shows a kernel
//! green whose VM broke.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::report::{CaseVerdict, Row};

pub(super) fn write(rows: &[Row], path: &Path) -> Result<()> {
    std::fs::write(path, render(rows)).with_context(|| format!("writing {}", path.display()))?;
    println!("xtask: JUnit report in {}", path.display());
    Ok(())
}

fn render(rows: &[Row]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"vethlab test-vm\">\n");
    for row in rows {
        let failures = row.cases.iter().filter(|c| c.verdict.is_failure()).count()
            + usize::from(!row.problems.is_empty());
        let skipped = row.skipped();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            xml(&row.kernel),
            row.cases.len() + usize::from(!row.problems.is_empty()),
            row.total.as_secs_f64()
        );
        for case in &row.cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&format!("{}.{}", row.kernel, case.area)),
                xml(&case.name),
                case.seconds
            );
            match &case.verdict {
                CaseVerdict::Pass => out += "/>\n",
                CaseVerdict::Skip => out += ">\n      <skipped/>\n    </testcase>\n",
                CaseVerdict::Fail(output) | CaseVerdict::NoResult(output) => {
                    let first = output.lines().next().unwrap_or("failed");
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(first),
                        xml(output)
                    );
                }
            }
        }
        if !row.problems.is_empty() {
            let problems = row.problems.join("\n");
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"vm\" time=\"0.000\">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                xml(&row.kernel),
                xml(row.problems.first().map_or("", String::as_str)),
                xml(&problems)
            );
        }
        out += "  </testsuite>\n";
    }
    out + "</testsuites>\n"
}

/// Escapes text for an attribute or element; drops the control characters XML 1.0 forbids (a
/// console can carry them).
fn xml(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_vm::qemu::Accel;
    use crate::test_vm::report::Case;

    fn row(problems: Vec<String>) -> Row {
        let case = |name: &str, verdict| Case {
            area: "harness tests/scenarios".into(),
            name: name.into(),
            verdict,
            seconds: 1.5,
        };
        let mut row = Row::new("6.12.118+deb12-amd64", Accel::Tcg, 2);
        row.total = Duration::from_secs(30);
        row.problems = problems;
        row.cases = vec![
            case("two_networks", CaseVerdict::Pass),
            case("slow", CaseVerdict::Skip),
            case("seed", CaseVerdict::Fail("assertion `left == right` failed <a & b>\n\u{1b}[31mred".into())),
            case("lost", CaseVerdict::NoResult("no result from the guest (console: vm1/console.log)".into())),
        ];
        row
    }

    #[test]
    fn a_suite_per_kernel_with_failures_escaped() {
        let xml = render(&[row(Vec::new())]);
        assert!(xml.contains(
            "<testsuite name=\"6.12.118+deb12-amd64\" tests=\"4\" failures=\"2\" skipped=\"1\" time=\"30.000\">"
        ));
        assert!(xml.contains(
            "<testcase classname=\"6.12.118+deb12-amd64.harness tests/scenarios\" name=\"two_networks\" time=\"1.500\"/>"
        ));
        assert!(xml.contains("<failure message=\"assertion `left == right` failed &lt;a &amp; b&gt;\">"));
        assert!(!xml.contains('\u{1b}'), "control characters are not XML");
        assert!(xml.contains("<failure message=\"no result from the guest (console: vm1/console.log)\">"));
        assert_eq!(xml.matches("<testcase ").count(), 4);
        assert!(!xml.contains("name=\"vm\""));
    }

    #[test]
    fn a_broken_vm_is_a_failing_testcase_of_its_own() {
        let xml = render(&[row(vec!["vm 2/2: no done marker from the guest".into()])]);
        assert!(xml.contains("tests=\"5\" failures=\"3\""), "{xml}");
        assert!(xml.contains("name=\"vm\""));
        assert!(xml.contains("<failure message=\"vm 2/2: no done marker from the guest\">"));
    }
}
