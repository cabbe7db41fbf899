//! What every arm64 guest in the tests needs, checked or made once per test
//! binary: the workspace's aarch64 kdf-init and kdf's default arm64 root
//! (fetched here, so its first-use notice is on no test's stderr).

use std::path::PathBuf;
use std::sync::OnceLock;

use super::{kdf, run_with, workspace};

/// The default arm64 root's directory, after checking the aarch64 kdf-init.
pub fn ready() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let init = workspace().join("target/aarch64-unknown-linux-musl/release/kdf-init");
        assert!(
            init.is_file(),
            "{} is missing: run scripts/test.sh, or `cargo build --release -p kdf-init --target \
             aarch64-unknown-linux-musl`",
            init.display()
        );
        let mut fetch_root = kdf(&workspace());
        fetch_root.args(["root", "fetch", "--arch", "arm64"]);
        let root = run_with(fetch_root, None);
        assert_eq!(root.status, 0, "kdf root fetch: {}", root.stderr);
        let dir = PathBuf::from(root.stdout_str().trim());
        assert!(dir.join("bin/busybox").is_file(), "{} has no bin/busybox", dir.display());
        dir
    })
}
