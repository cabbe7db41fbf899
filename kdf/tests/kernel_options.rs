//! What a user brings to `kdf kernel config|build`: a base config (distro,
//! defconfig, tinyconfig, localmodconfig), the kernel's own fragments and
//! kselftest configs (best effort, or strict), `--set` (strict), make
//! variables and ccache. Configuration only, on the test kernel's source,
//! except two partial builds (one object; `kernel/time/` twice for ccache).
//!
//! Like `kernel.rs`, they need `KDF_TEST_KERNEL_SRC` (`scripts/test.sh`
//! sets it); the distro tests need an installed distro kernel's config in
//! /boot (Debian: `linux-image-amd64`).

mod common;

use std::path::Path;
use std::process::Command;

use common::kernel::*;
use common::*;

fn report_of(build: &Path) -> String {
    std::fs::read_to_string(build.join("kdf-config-report.txt")).unwrap()
}

/// The `CONFIG_X=y` lines of `configs/vm.config`: what a kdf VM needs.
fn vm_needs() -> Vec<String> {
    let vm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vm.config");
    let text = std::fs::read_to_string(vm).unwrap();
    text.lines().filter(|l| l.starts_with("CONFIG_") && l.ends_with("=y")).map(String::from).collect()
}

fn assert_vm_needs(config: &str) {
    for line in vm_needs() {
        assert!(has(config, &line), "{line} (configs/vm.config) is not in the result");
    }
}

/// The newest installed distro kernel's version, from /boot/config-VERSION.
fn installed_distro_kernel() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("config-").map(String::from))
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /boot/config-*: install a distro kernel (Debian: apt install linux-image-amd64)")
}

#[test]
fn a_distro_base_gets_what_a_vm_needs_and_a_report_of_what_did_not_land() {
    // The running kernel's config: /boot/config-$(uname -r), else /proc/config.gz.
    let (out, dir) = configure(&["--base", "distro"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("(distro, fast profile, Rust, GCC)"), "{}", out.stderr);
    assert!(out.stderr.contains("best-effort options landed"), "{}", out.stderr);
    assert_vm_needs(&config_of(dir.path()));
    assert!(report_of(dir.path()).starts_with("# kdf kernel config: best-effort options"));
}

#[test]
fn an_older_distro_kernels_config_lands_best_effort_with_every_miss_explained() {
    let version = installed_distro_kernel();
    let (out, dir) = configure(&["--base", &format!("distro:{version}")]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let base = format!("from the base /boot/config-{version} did not land");
    assert!(out.stderr.contains(&base), "{}", out.stderr);
    assert!(out.stderr.contains("unknown to this kernel"), "{}", out.stderr);
    assert!(out.stderr.contains("why, option by option: "), "{}", out.stderr);
    let config = config_of(dir.path());
    assert_vm_needs(&config);
    // The distro's own choices stay where kdf has none: modules, and many of them.
    assert!(config.lines().filter(|l| l.ends_with("=m")).count() > 1000);
    let report = report_of(dir.path());
    assert!(report.contains(&format!("\n## the base /boot/config-{version}: ")), "{report}");
    assert!(report.contains("no Kconfig file of this source tree defines"), "{report}");
    assert!(report.contains("    defined at "), "misses with a definition are explained: {report}");
}

#[test]
fn kvm_guest_on_defconfig_lands_best_effort_and_strict_fragments_make_its_misses_errors() {
    let (out, dir) = configure(&["--base", "defconfig", "--fragment", "kvm_guest", "--no-rust"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("options from --fragment kvm_guest did not land"), "{}", out.stderr);
    let report = report_of(dir.path());
    assert!(report.contains("CONFIG_S390_GUEST: requested y ("), "{report}");
    let config = config_of(dir.path());
    assert!(has(&config, "CONFIG_VIRTIO_BLK=y") && has(&config, "CONFIG_KVM_GUEST=y"));
    assert_vm_needs(&config);

    let (out, _dir) =
        configure(&["--base", "defconfig", "--fragment", "kvm_guest", "--no-rust", "--strict-fragments"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("requested option"), "{}", out.stderr);
    assert!(out.stderr.contains("CONFIG_S390_GUEST: requested y"), "{}", out.stderr);
    assert!(out.stderr.contains("no Kconfig file of this source tree defines S390_GUEST"), "{}", out.stderr);
}

#[test]
fn localmodconfig_keeps_the_listed_modules_and_is_smaller_than_the_distro_config() {
    let version = installed_distro_kernel();
    let lsmod = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        lsmod.path(),
        "Module                  Size  Used by\next4 1007616 1\nmbcache 16384 1 ext4\njbd2 167936 1 ext4\n\
         e1000e 327680 0\n",
    )
    .unwrap();
    let base = format!("localmodconfig:{version}");
    let (out, dir) = configure(&["--base", &base, "--lsmod", lsmod.path().to_str().unwrap()]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let config = config_of(dir.path());
    assert_vm_needs(&config);
    let distro = std::fs::read_to_string(format!("/boot/config-{version}")).unwrap();
    assert!(
        enabled(&config) * 2 < enabled(&distro),
        "localmodconfig has {} options on, the distro config {}",
        enabled(&config),
        enabled(&distro)
    );
    assert!(has(&config, "CONFIG_E1000E=m"), "e1000e was loaded, so it stays");
    // ext4 stays too; kdf's fast profile builds it in (kdf run --disk).
    assert!(
        has(&config, "CONFIG_EXT4_FS=m") || has(&config, "CONFIG_EXT4_FS=y"),
        "ext4 was loaded, so it stays"
    );
    assert!(!has(&config, "CONFIG_BTRFS_FS=m"), "btrfs was not loaded");
}

#[test]
fn a_set_that_cannot_land_on_a_base_still_fails() {
    // tinyconfig turns BUG off, and DEBUG_BUGVERBOSE depends on it.
    let (out, _dir) = configure(&["--base", "tinyconfig", "--no-rust", "--set", "CONFIG_DEBUG_BUGVERBOSE=y"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("CONFIG_DEBUG_BUGVERBOSE: requested y (--set), got n"), "{}", out.stderr);
    assert!(out.stderr.contains("depends on BUG && "), "{}", out.stderr);
}

#[test]
fn kselftest_configs_land_or_are_reported() {
    let (out, dir) = configure(&["--no-rust", "--kselftest", "ipc", "--kselftest", "livepatch", "-v"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let config = config_of(dir.path());
    assert!(has(&config, "CONFIG_CHECKPOINT_RESTORE=y"), "the ipc selftests' option landed");
    // LIVEPATCH needs dynamic ftrace, which the fast profile leaves out: reported, with why (-v).
    assert!(out.stderr.contains("1 of 2 options from --kselftest livepatch did not land"), "{}", out.stderr);
    assert!(out.stderr.contains("CONFIG_LIVEPATCH: requested y ("), "{}", out.stderr);
    assert!(out.stderr.contains("depends on DYNAMIC_FTRACE_WITH_REGS"), "{}", out.stderr);
}

fn kernel_build(dir: &Path, args: &[&str], ccache: &Path) -> Out {
    let mut cmd = kdf(dir);
    cmd.env("CCACHE_DIR", ccache).args(["kernel", "build", "-O"]).arg(dir).args(args);
    run_with(cmd, None)
}

fn cmd_file(build: &Path, object: &str) -> String {
    let (dir, file) = object.rsplit_once('/').unwrap();
    std::fs::read_to_string(build.join(dir).join(format!(".{file}.cmd"))).unwrap()
}

#[test]
fn make_variables_reach_the_compilers_command_line_and_are_recorded_for_the_next_build() {
    let (out, dir) = configure(&["--no-rust"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let (b, cache) = (dir.path(), tempfile::tempdir().unwrap());
    let object = "init/version.o";

    let out = kernel_build(b, &[object, "--", "W=1"], cache.path());
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("kdf-make-vars): W=1\n"), "{}", out.stderr);
    assert!(std::fs::read_to_string(b.join("kdf-make-vars")).unwrap().lines().any(|l| l == "W=1"));
    assert!(cmd_file(b, object).contains("-DKBUILD_EXTRA_WARN1"), "W=1 defines KBUILD_EXTRA_WARN1");

    // One more variable: the recorded W=1 stays.
    let out = kernel_build(b, &[object, "--", "KCFLAGS=-DKDF_TEST_VAR=1"], cache.path());
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("W=1 KCFLAGS=-DKDF_TEST_VAR=1\n"), "{}", out.stderr);
    let cmd = cmd_file(b, object);
    assert!(cmd.contains("-DKBUILD_EXTRA_WARN1") && cmd.contains("-DKDF_TEST_VAR=1"), "{cmd}");

    let out = kernel_build(b, &[object, "--reset-vars"], cache.path());
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("make variables"), "{}", out.stderr);
    assert!(!b.join("kdf-make-vars").exists());
    assert!(!cmd_file(b, object).contains("-DKBUILD_EXTRA_WARN1"), "rebuilt without W=1");
}

#[test]
fn a_ccache_build_after_make_clean_hits_the_cache() {
    let (out, dir) = configure(&["--no-rust"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let (b, cache) = (dir.path(), tempfile::tempdir().unwrap());
    // A directory, not the whole kernel: two builds of it fit in a test.
    let out = kernel_build(b, &["--ccache", "kernel/time/"], cache.path());
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("CC=\"ccache gcc\" KBUILD_BUILD_TIMESTAMP="), "{}", out.stderr);
    assert!(out.stderr.contains("kdf: ccache: "), "{}", out.stderr);

    let clean = Command::new("make")
        .args(["-s", "-C"])
        .arg(source())
        .arg(format!("O={}", b.display()))
        .arg("clean")
        .output()
        .unwrap();
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert!(!b.join("kernel/time/timer.o").exists());

    // Without --ccache: the recorded variables keep it.
    let out = kernel_build(b, &["kernel/time/"], cache.path());
    assert_eq!(out.status, 0, "{}", out.stderr);
    let line = out.stderr.lines().find(|l| l.starts_with("kdf: ccache: ")).unwrap_or_default().to_string();
    let count = |word: &str| -> u64 {
        let before = line.split(&format!(" {word}")).next().unwrap_or_default();
        before.rsplit(' ').next().unwrap_or_default().trim_end_matches(',').parse().unwrap_or(0)
    };
    let (hits, misses) = (count("hits"), count("misses"));
    assert!(hits > 10 && hits >= 9 * misses, "{line:?}\n{}", out.stderr);
}
