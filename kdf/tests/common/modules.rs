//! Out-of-tree modules built against the test kernel (`KDF_TEST_KERNEL_BUILD`,
//! set by `scripts/test.sh`): `modules/helloworld`, `modules/rust` and the test
//! modules, each copied to its own directory under `target/` first.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::workspace;

/// The test kernel's build directory, checked to hold a vmlinux.
pub fn test_kernel() -> PathBuf {
    let dir = std::env::var_os("KDF_TEST_KERNEL_BUILD").filter(|v| !v.is_empty()).map(PathBuf::from).expect(
        "KDF_TEST_KERNEL_BUILD is not set: run scripts/test.sh, or export it to a kdf kernel build directory",
    );
    assert!(dir.join("vmlinux").is_file(), "{} has no vmlinux", dir.display());
    dir
}

/// Copies `src` to `target/kdf-test-modules/NAME` and builds it against the
/// test kernel; the directory with the `.ko` files. `name` must be unique
/// across test binaries (they run in parallel).
pub fn build(name: &str, src: &Path) -> PathBuf {
    build_against(name, src, &test_kernel())
}

/// Builds the module sources in `src` against the kernel build `kdir`.
pub fn build_against(name: &str, src: &Path, kdir: &Path) -> PathBuf {
    let dir = workspace().join("target/kdf-test-modules").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".c") || name.ends_with(".rs") || name == "Kbuild" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let out = Command::new("make")
        .args(["-s", "-C"])
        .arg(kdir)
        .arg(format!("M={}", dir.display()))
        .arg("modules")
        .output()
        .unwrap();
    assert!(out.status.success(), "building {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// `DIR/NAME.ko`, as a string for a command line.
pub fn ko(dir: &Path, name: &str) -> String {
    dir.join(format!("{name}.ko")).display().to_string()
}

/// Checks `--result`'s JSON at `json` for modules/kunit-example's suite run
/// with `fail=1`: one case passed, one skipped, one failed, from that module.
pub fn assert_kunit_example_failed_once(json: &Path) {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let suites = v["kunit"]["suites"].as_array().unwrap();
    let ours = suites.iter().find(|s| s["name"] == "kdf_kunit_example").expect("the module's suite");
    assert_eq!(
        (ours["passed"].as_u64(), ours["skipped"].as_u64(), ours["failed"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(ours["module"], "kdf_kunit_example");
}
