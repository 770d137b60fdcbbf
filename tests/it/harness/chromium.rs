//! Headless Chromium (Debian's `chromium`, driven by npm `playwright-core` from a script in
//! `tests/peers`), and where the tests keep its screenshots.

use std::path::PathBuf;

use super::peers::peers_dir;
use super::{INSTALL_HINT, require_cmd};

/// `tests/artifacts/<name>`, created: screenshots and other files a test keeps.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/artifacts")
        .join(name);
    std::fs::create_dir_all(&d).expect("artifacts dir");
    d
}

/// Fails the test with the install step when Chromium or playwright-core is missing.
pub fn require_browser() {
    require_cmd("node", "nodejs");
    require_cmd("chromium", "chromium");
    assert!(
        peers_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/peers: {INSTALL_HINT}"
    );
}
