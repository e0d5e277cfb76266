//! Splitting one kernel's tests across several VMs (`--jobs`): under TCG a guest with one vCPU
//! keeps one host core busy, so on an N-core host N guests finish the suite about N times
//! sooner. Each VM boots the same initramfs and runs the list its `vethlab.shard=` names.
//!
//! The split balances measured time, not test counts: one test can take a third of the suite
//! (`every_spec_version_end_to_end` starts Debian's Go CNI plugins dozens of times). Durations
//! from the last run of that kernel are kept in `durations.tsv` in its run directory; the
//! longest test goes first onto the least-loaded VM (the LPT rule), and each VM runs its tests
//! in catalogue order so that a run stays reproducible.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Weight of a test never measured: the median of the measured ones, else one second.
const UNKNOWN_MS: u64 = 1000;

/// Test durations in milliseconds from an earlier run of one kernel, by `(guest binary, test
/// name)`, and the file they live in.
#[derive(Debug)]
pub(super) struct History {
    path: PathBuf,
    times: BTreeMap<(String, String), u64>,
}

impl History {
    /// The durations saved in a kernel's run directory; a missing or unreadable file is an empty
    /// history (the split is then by count, which is still correct, only less even).
    pub(super) fn load(run_dir: &Path) -> History {
        let path = run_dir.join("durations.tsv");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let mut f = line.splitn(3, '\t');
            if let (Some(ms), Some(bin), Some(name)) = (f.next(), f.next(), f.next())
                && let Ok(ms) = ms.parse()
            {
                map.insert((bin.to_string(), name.to_string()), ms);
            }
        }
        History { path, times: map }
    }

    /// Records what this run measured, keeping older figures for tests it did not run.
    pub(super) fn record<'a>(&mut self, results: impl IntoIterator<Item = (&'a str, &'a str, u64)>) {
        for (bin, name, ms) in results {
            self.times.insert((bin.to_string(), name.to_string()), ms);
        }
    }

    /// Writes the durations back where they were loaded from.
    pub(super) fn save(&self) -> std::io::Result<()> {
        let text: String =
            self.times.iter().map(|((bin, name), ms)| format!("{ms}\t{bin}\t{name}\n")).collect();
        std::fs::write(&self.path, text)
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The expected duration of each test, in order.
    pub(super) fn weights<'a>(&self, tests: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u64> {
        let mut known: Vec<u64> = self.times.values().copied().collect();
        known.sort_unstable();
        let fallback = known.get(known.len() / 2).copied().unwrap_or(UNKNOWN_MS);
        tests
            .into_iter()
            .map(|(bin, name)| {
                self.times.get(&(bin.to_string(), name.to_string())).copied().unwrap_or(fallback)
            })
            .collect()
    }
}

/// Splits tests `0..weights.len()` into at most `vms` non-empty lists (always at least one,
/// possibly empty when there are no tests): longest first onto the least-loaded list, each list
/// then in ascending order.
pub(super) fn assign(weights: &[u64], vms: usize) -> Vec<Vec<usize>> {
    let n = vms.clamp(1, weights.len().max(1));
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Longest first; ties in list order, so the split is deterministic.
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]).then(a.cmp(&b)));
    let mut lists: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
    for i in order {
        let lightest = (0..n).min_by_key(|&s| (lists[s].0, s)).unwrap_or(0);
        lists[lightest].0 += weights[i];
        lists[lightest].1.push(i);
    }
    lists
        .into_iter()
        .map(|(_, mut l)| {
            l.sort_unstable();
            l
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_long_test_gets_a_vm_to_itself() {
        let lists = assign(&[100, 2400, 100, 100, 100, 100], 2);
        assert_eq!(lists, vec![vec![1], vec![0, 2, 3, 4, 5]]);
    }

    #[test]
    fn every_test_lands_exactly_once_in_list_order() {
        let weights: Vec<u64> = (0..48).map(|i| (i * 37 % 11) as u64 * 100 + 50).collect();
        for vms in 1..=5 {
            let lists = assign(&weights, vms);
            assert_eq!(lists.len(), vms);
            let mut all: Vec<usize> = lists.concat();
            assert!(lists.iter().all(|l| l.windows(2).all(|w| w[0] < w[1])), "{lists:?}");
            all.sort_unstable();
            assert_eq!(all, (0..48).collect::<Vec<_>>());
            let loads: Vec<u64> = lists.iter().map(|l| l.iter().map(|&i| weights[i]).sum()).collect();
            let (min, max) = (loads.iter().min().unwrap_or(&0), loads.iter().max().unwrap_or(&0));
            // LPT: the fullest list got its last test while it was the emptiest.
            assert!(max - min <= 1050, "uneven split {loads:?}");
        }
    }

    #[test]
    fn never_more_vms_than_tests_and_always_one() {
        assert_eq!(assign(&[5, 5], 4), vec![vec![0], vec![1]]);
        assert_eq!(assign(&[], 3), vec![Vec::<usize>::new()]);
        assert_eq!(assign(&[7], 0), vec![vec![0]]);
    }

    #[test]
    fn history_round_trip_and_median_for_the_unmeasured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = History::load(dir.path());
        assert!(h.times.is_empty(), "a missing file is an empty history");
        assert_eq!(h.weights([("/tests/a", "t")]), vec![UNKNOWN_MS]);
        h.record([("/tests/a", "x::one", 100), ("/tests/a", "x::two", 300), ("/tests/b", "y", 5000)]);
        h.save().expect("save");
        assert_eq!(h.path(), dir.path().join("durations.tsv"));
        let mut h = History::load(dir.path());
        let w = h.weights([("/tests/a", "x::two"), ("/tests/b", "y"), ("/tests/b", "new")]);
        assert_eq!(w, vec![300, 5000, 300]);
        h.record([("/tests/b", "new", 700)]);
        h.save().expect("save again");
        assert_eq!(History::load(dir.path()).times.len(), 4, "older figures are kept");
    }
}
