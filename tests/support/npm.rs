//! Node packages for tests that run a real JavaScript client or server: a folder under tests/
//! with its package.json and committed package-lock.json, installed on first use.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// tests/`name`, a package folder.
pub fn package_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

/// `npm ci` in `dir` from its committed lockfile, once per checkout (tests run in parallel, in
/// several processes: a lock folder makes one of them install while the others wait).
pub fn install(dir: &Path) {
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join(".installing");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if installed.exists() {
            return;
        }
        match std::fs::create_dir(&lock) {
            Ok(()) => break,
            Err(_) => {
                assert!(Instant::now() < deadline, "waited 300 s for another npm ci");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(dir)
        .status();
    let _ = std::fs::remove_dir(&lock);
    assert!(
        status.expect("run npm").success(),
        "npm ci failed in {}",
        dir.display()
    );
}
