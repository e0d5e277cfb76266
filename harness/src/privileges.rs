//! Run-time privilege gate for tests: skip loudly on a developer box, fail under CI.

use std::io::Write;

/// Returns `true` if the test may run (we are root). Otherwise prints why it is skipped, records
/// the skip in `$VETHLAB_SKIP_LOG` (read by `cargo xtask test` for its summary), and returns
/// `false` — unless `CI` is set, where a skipped privileged test is a failure.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let reason = "needs root (network namespaces); run `cargo xtask test`, which provides them";
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {reason}; CI is set, so skipping is a failure");
    }
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(path) = std::env::var_os("VETHLAB_SKIP_LOG") {
        let line = format!("{test}\t{reason}\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record skip in {}: {e}", std::path::Path::new(&path).display());
        }
    }
    false
}

/// `require_root` named after the calling test function.
#[macro_export]
macro_rules! require_root {
    () => {{
        fn f() {}
        let name = std::any::type_name_of_val(&f);
        $crate::privileges::require_root(name.strip_suffix("::f").unwrap_or(name))
    }};
}
