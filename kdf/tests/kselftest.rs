//! kselftest, the README's recipe: a target built and installed on the host
//! from the test kernel's source (out of tree: `O=` and `INSTALL_PATH=` in the
//! run's directory), run in the guest through the shared working directory
//! by the installed `run_kselftest.sh`, whose TAP comes out on stdout.

mod common;

use std::process::Command;

use common::*;

#[test]
fn a_kselftest_target_built_on_the_host_runs_in_the_guest_and_prints_tap() {
    let dir = tempfile::tempdir().unwrap();
    let selftests = test_kernel_src().join("tools/testing/selftests");
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&selftests)
        .arg("TARGETS=size")
        .arg(format!("O={}/build", dir.path().display()))
        .arg(format!("INSTALL_PATH={}/kselftest", dir.path().display()))
        .arg("install")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building kselftest's size target failed (its install needs rsync: scripts/setup.sh installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let kernel = test_kernel_build();
    let out = run_in(
        dir.path(),
        &["--kernel", kernel.to_str().unwrap(), "--memory", "512M", "--", "./kselftest/run_kselftest.sh"],
    );
    let tap = ok(out);
    assert!(tap.starts_with("TAP version 13\n1..1\n"), "{tap}");
    assert!(tap.contains("\n# ok 1 get runtime memory use\n"), "{tap}");
    assert!(tap.contains("\nok 1 selftests: size: get_size\n"), "{tap}");
    // It ran in the guest: get_size reports the guest's memory, not the host's.
    let total_kib: u64 = tap
        .lines()
        .find_map(|l| l.trim_start_matches(['#', ' ']).strip_prefix("Total:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'Total:' line: {tap}"));
    assert!(total_kib < 512 * 1024, "{total_kib} KiB is more than the guest has");
}
