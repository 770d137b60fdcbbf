//! The packaging in docs/deploy: the systemd unit is valid and hardened.

use std::process::Command;

use crate::harness::{bin, require_cmd};

/// `systemd-analyze verify` accepts the unit (with ExecStart pointing at the binary under
/// test), and `systemd-analyze security` rates its exposure low.
#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    require_cmd("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy/demiurge.service"),
    )
    .unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/demiurge serve"),
        "{unit}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demiurge.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/demiurge", &bin().display().to_string()),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).to_string();
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&security.stdout).to_string();
    let level: f64 = out
        .lines()
        .find_map(|l| l.split("exposure level for demiurge.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(level <= 2.0, "exposure {level}:\n{out}");
}
