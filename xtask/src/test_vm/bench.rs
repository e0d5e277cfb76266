//! `cargo xtask test-vm --boots N`: how long the guest takes to become useful, measured over
//! several boots because TCG's speed varies from run to run on a shared machine.
//!
//! Each boot packs the whole suite (the initramfs's size is part of the cost: the kernel unpacks
//! it byte by byte) but runs only its first test, and records QEMU start → `/init`, → modules
//! loaded, → first test started. The figures are printed, not asserted: speed targets live in
//! benchmarks, not in tests.

use std::time::Duration;

use anyhow::{Context, Result};

use super::pool::Prepared;
use super::qemu::{self, Accel, Progress};
use super::report::{Case, CaseVerdict};
use super::{Args, Row, Vm, boot};

/// Boots `p` `--boots` times, one VM at a time; the row holds the medians.
pub(super) fn boot_times(p: &Prepared, accel: Accel, args: &Args) -> Result<Row> {
    let k = &p.kernel;
    let dir = p.dir.join("vm0");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (mut inits, mut readies, mut firsts) = (Vec::new(), Vec::new(), Vec::new());
    // One case per boot: it passes when the guest came up and ran its first test cleanly.
    let mut row = Row::new(&k.label, accel, 1);
    for i in 1..=args.boots {
        println!("xtask:   boot {i}/{}", args.boots);
        let progress = Progress::new(1);
        let vm = Vm {
            image: &p.image,
            initrd: &p.initrd,
            dir: &dir,
            shard: 0,
            tag: "",
            progress: &progress,
            max_tests: Some(1),
            run_command: false,
        };
        let out = boot(&vm, accel, args)?;
        row.total += out.total;
        let first_passed = out.results.first().is_some_and(|r| r.status == "pass");
        let clean = out.done && first_passed && out.exit == Some(qemu::EXIT_PASS);
        let verdict = if clean {
            CaseVerdict::Pass
        } else {
            CaseVerdict::Fail(format!("the first test did not pass cleanly (see {})", dir.display()))
        };
        let seconds = out.total.as_secs_f64();
        row.cases.push(Case {
            area: "boot-time benchmark".into(),
            name: format!("boot {i}"),
            verdict,
            seconds,
        });
        if !clean {
            row.problems.extend(out.problems);
            continue;
        }
        inits.extend(out.boot);
        readies.extend(out.modules_ready);
        firsts.extend(out.first_test);
    }
    println!("xtask:   boot times over {} boot(s) of {} ({}):", row.passed(), k.label, accel.name());
    for (what, samples) in
        [("/init started", &mut inits), ("modules loaded", &mut readies), ("first test started", &mut firsts)]
    {
        if let Some((min, median, max)) = spread(samples) {
            println!("xtask:     {what:<20} min {min:.2}s  median {median:.2}s  max {max:.2}s");
        }
    }
    row.boot = spread(&mut inits).map(|s| Duration::from_secs_f64(s.1));
    row.first = spread(&mut firsts).map(|s| Duration::from_secs_f64(s.1));
    Ok(row)
}

/// Min, median and max in seconds; None without samples.
fn spread(samples: &mut [Duration]) -> Option<(f64, f64, f64)> {
    samples.sort();
    let secs = |d: &Duration| d.as_secs_f64();
    let n = samples.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => secs(&samples[n / 2]),
        _ => (secs(&samples[n / 2 - 1]) + secs(&samples[n / 2])) / 2.0,
    };
    Some((secs(&samples[0]), median, secs(&samples[n - 1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_samples() {
        let ms = Duration::from_millis;
        assert_eq!(spread(&mut []), None);
        assert_eq!(spread(&mut [ms(3000), ms(1000), ms(2000)]), Some((1.0, 2.0, 3.0)));
        assert_eq!(spread(&mut [ms(4000), ms(1000), ms(2000), ms(3000)]), Some((1.0, 2.5, 4.0)));
    }
}
