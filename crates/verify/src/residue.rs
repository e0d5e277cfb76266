//! Residue checks: compare two snapshots (typically before a test and after its teardown) and
//! explain any difference as a unified diff of their YAML.

use vethlab_runtime::Netns;

use crate::capture::capture;
use crate::error::VerifyError;
use crate::normalize::{NormalizeOptions, Snapshot, normalize, to_yaml};

/// Lines of unchanged context around each change.
const CONTEXT: usize = 3;
/// Above this many line pairs the quadratic LCS is skipped and the whole text is shown as
/// replaced: snapshots are far smaller, and a diff is only for reading.
const MAX_LCS_CELLS: usize = 4_000_000;

/// Captures `namespaces` and normalises the result in one go.
pub async fn capture_snapshot(
    namespaces: &[(&str, &Netns)],
    opts: &NormalizeOptions,
) -> Result<Snapshot, VerifyError> {
    Ok(normalize(&capture(namespaces).await?, opts))
}

/// `None` if the snapshots are equal, otherwise a unified diff of their YAML from `before` to
/// `after`, each hunk headed by the namespace it is in.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Option<String> {
    if before == after {
        return None;
    }
    let (a, b) = (to_yaml(before), to_yaml(after));
    Some(diff_text(&a, &b, "before", "after"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// A unified diff of two texts, line by line.
pub fn diff_text(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let ops = line_ops(&a, &b);
    // Positions (old line, new line) before each op, to number the hunks.
    let mut pos = Vec::with_capacity(ops.len() + 1);
    let (mut i, mut j) = (0, 0);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Same => (i, j) = (i + 1, j + 1),
            Op::Del => i += 1,
            Op::Add => j += 1,
        }
    }
    pos.push((i, j));
    let mut out = format!("--- {a_name}\n+++ {b_name}\n");
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Same).collect();
    let mut k = 0;
    while k < changed.len() {
        // Grow the hunk while the next change is within two contexts of the last.
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT {
            k += 1;
            last = changed[k];
        }
        let end = (last + CONTEXT + 1).min(ops.len());
        let (i0, j0) = pos[start];
        let (i1, j1) = pos[end];
        let section = a[..i0.min(a.len())]
            .iter()
            .rev()
            .find(|l| l.starts_with("- netns:"))
            .map(|l| format!(" {}", l.trim_start_matches("- ")))
            .unwrap_or_default();
        out.push_str(&format!("@@ -{},{} +{},{} @@{section}\n", i0 + 1, i1 - i0, j0 + 1, j1 - j0));
        for (op, &(i, j)) in ops[start..end].iter().zip(&pos[start..end]) {
            match op {
                Op::Same => out.push_str(&format!(" {}\n", a[i])),
                Op::Del => out.push_str(&format!("-{}\n", a[i])),
                Op::Add => out.push_str(&format!("+{}\n", b[j])),
            }
        }
        k += 1;
    }
    out
}

/// The edit script of a longest common subsequence of lines.
fn line_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    if (n + 1).saturating_mul(m + 1) > MAX_LCS_CELLS {
        return std::iter::repeat_n(Op::Del, n).chain(std::iter::repeat_n(Op::Add, m)).collect();
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let mut ops = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same);
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            ops.push(Op::Add);
            j += 1;
        } else {
            ops.push(Op::Del);
            i += 1;
        }
    }
    // Show deletions before additions within a run of changes, as diff(1) does.
    let mut k = 0;
    while k < ops.len() {
        if ops[k] == Op::Same {
            k += 1;
            continue;
        }
        let run_end = ops[k..].iter().position(|o| *o == Op::Same).map_or(ops.len(), |p| k + p);
        ops[k..run_end].sort_by_key(|o| *o == Op::Add);
        k = run_end;
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_only_headers() {
        assert_eq!(diff_text("a\nb\n", "a\nb\n", "x", "y"), "--- x\n+++ y\n");
    }

    #[test]
    fn changes_are_grouped_into_hunks_with_context_and_namespace() {
        let a = "namespaces:\n- netns: host\n  links:\n  - a\n  - b\n  - c\n  - d\n  - e\n  - f\n  - g\n  - h\n  - i\n  - j\n  - k\n  - l\n";
        let b = "namespaces:\n- netns: host\n  links:\n  - a\n  - B\n  - c\n  - d\n  - e\n  - f\n  - g\n  - h\n  - i\n  - j\n  - k\n  - l\n  - m\n";
        let expected = "\
--- before
+++ after
@@ -2,7 +2,7 @@
 - netns: host
   links:
   - a
-  - b
+  - B
   - c
   - d
   - e
@@ -13,3 +13,4 @@ netns: host
   - j
   - k
   - l
+  - m
";
        assert_eq!(diff_text(a, b, "before", "after"), expected);
    }

    #[test]
    fn runs_show_deletions_before_additions() {
        let out = diff_text("x\n1\n2\ny\n", "x\n3\n4\ny\n", "a", "b");
        assert_eq!(out, "--- a\n+++ b\n@@ -1,4 +1,4 @@\n x\n-1\n-2\n+3\n+4\n y\n");
    }
}
