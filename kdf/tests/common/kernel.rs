//! Helpers for the tests of `kdf kernel config|build`: the test kernel's
//! source tree and fast-profile build (`KDF_TEST_KERNEL_SRC`,
//! `KDF_TEST_KERNEL_BUILD`, set by `scripts/test.sh`), and configuring into a
//! temporary build directory.

use std::path::{Path, PathBuf};

use super::{kdf, run_with, Out};

pub fn env_dir(name: &str) -> PathBuf {
    let Some(dir) = std::env::var_os(name).filter(|v| !v.is_empty()) else {
        panic!(
            "{name} is not set. These tests need a kernel source tree and kdf's fast-profile build of it: \
             run scripts/test.sh, or export KDF_TEST_KERNEL_SRC=$(scripts/fetch-kernel-source.sh) and \
             KDF_TEST_KERNEL_BUILD=$(scripts/build-test-kernel.sh \"$KDF_TEST_KERNEL_SRC\")"
        )
    };
    let dir = PathBuf::from(dir);
    assert!(dir.is_dir(), "{name}={} is not a directory", dir.display());
    dir
}

pub fn source() -> PathBuf {
    env_dir("KDF_TEST_KERNEL_SRC")
}

pub fn build() -> PathBuf {
    env_dir("KDF_TEST_KERNEL_BUILD")
}

/// The same kernel cross-built for arm64: `KDF_TEST_KERNEL_BUILD_ARM64`, from
/// `scripts/build-test-kernel.sh --arch arm64` (`scripts/test.sh` sets it).
pub fn build_arm64() -> PathBuf {
    let name = "KDF_TEST_KERNEL_BUILD_ARM64";
    assert!(
        std::env::var_os(name).is_some_and(|v| !v.is_empty()),
        "{name} is not set. These tests need kdf's arm64 build of the test kernel: run scripts/test.sh, \
         or export {name}=$(scripts/build-test-kernel.sh --arch arm64 \"$KDF_TEST_KERNEL_SRC\")"
    );
    env_dir(name)
}

/// `kdf kernel config --src SRC -O <temporary> ARGS`, and the build directory.
pub fn configure(args: &[&str]) -> (Out, tempfile::TempDir) {
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = kdf(out_dir.path());
    cmd.args(["kernel", "config", "--src"]).arg(source()).arg("-O").arg(out_dir.path()).args(args);
    (run_with(cmd, None), out_dir)
}

pub fn config_of(build: &Path) -> String {
    std::fs::read_to_string(build.join(".config")).unwrap()
}

/// The options of `.config` text that are on (`y` or `m`).
pub fn enabled(config: &str) -> usize {
    config.lines().filter(|l| l.starts_with("CONFIG_") && (l.ends_with("=y") || l.ends_with("=m"))).count()
}

/// Whether `config` has the line `line`.
pub fn has(config: &str, line: &str) -> bool {
    config.lines().any(|l| l == line)
}
