//! `kdf kernel config` and `kdf kernel build` on a real source tree, and
//! booting the result with `kdf run --kernel BUILD_DIR` (under TCG).
//!
//! They need a kernel source tree and the fast-profile build of it:
//! `KDF_TEST_KERNEL_SRC` (from `scripts/fetch-kernel-source.sh`) and
//! `KDF_TEST_KERNEL_BUILD` (from `scripts/build-test-kernel.sh`);
//! `scripts/test.sh` sets both. Unset, the tests fail and say so.

mod common;

use std::process::Command;

use common::kernel::*;
use common::*;

/// `kdf run --accel tcg --kernel BUILD -- sh -c SCRIPT`, stdout on success.
fn boot(script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let build = build();
    let out = run_in(
        dir.path(),
        &["--accel", "tcg", "--kernel", build.to_str().unwrap(), "--", "sh", "-c", script],
    );
    ok(out)
}

#[test]
fn the_debug_profile_configures_with_every_option_landed() {
    let (out, dir) = configure(&["--profile", "debug"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // Every option of kdf's fragments landed, though only the VM's needs are strict.
    assert!(out.stderr.contains("options verified;"), "{}", out.stderr);
    assert!(!out.stderr.contains("did not land"), "{}", out.stderr);
    let config = config_of(dir.path());
    for line in [
        "CONFIG_PROVE_LOCKING=y",
        "CONFIG_LOCK_STAT=y",
        "CONFIG_UBSAN=y",
        "CONFIG_FTRACE=y",
        "CONFIG_IRQSOFF_TRACER=y",
        "CONFIG_KGDB=y",
        "CONFIG_EARLY_PRINTK=y",
        "CONFIG_UNWINDER_FRAME_POINTER=y",
        "CONFIG_DEBUG_INFO_DWARF5=y",
        "CONFIG_GDB_SCRIPTS=y",
        "CONFIG_RUST=y",
    ] {
        assert!(config.lines().any(|l| l == line), "{line} missing from the debug profile");
    }
    // Rust with GCC excludes KASAN; kdf says so instead of dropping it silently.
    assert!(out.stderr.contains("KASAN is left out"), "{}", out.stderr);
}

#[test]
fn every_option_of_kdfs_fragments_landed_in_the_test_kernel() {
    // The profile is best effort, so a fragment option whose menu is off only
    // shows in the report; the test kernel is where kdf's own choices must hold.
    let report = std::fs::read_to_string(build().join("kdf-config-report.txt")).unwrap();
    let head = report.lines().take(4).collect::<Vec<_>>().join("\n");
    let landed = landed_counts(&head);
    assert!(landed.is_some_and(|(got, of)| got == of), "{report}");
}

/// `N of M landed.` from the report's head.
fn landed_counts(head: &str) -> Option<(u32, u32)> {
    let tail = &head[..head.find(" landed.")?];
    let (got, of) = tail.rsplit_once(" of ")?;
    Some((got.rsplit(' ').next()?.parse().ok()?, of.parse().ok()?))
}

#[test]
fn the_debug_profile_without_rust_has_kasan() {
    let (out, dir) = configure(&["--profile", "debug", "--no-rust"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let config = config_of(dir.path());
    assert!(config.lines().any(|l| l == "CONFIG_KASAN=y"));
    assert!(!config.lines().any(|l| l == "CONFIG_RUST=y"));
}

#[test]
fn bpf_configures_with_every_option_verified() {
    let (out, dir) = configure(&["--bpf"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("did not land"), "{}", out.stderr);
    let config = config_of(dir.path());
    for line in
        ["CONFIG_BPF_SYSCALL=y", "CONFIG_KPROBES=y", "CONFIG_KALLSYMS_ALL=y", "CONFIG_DEBUG_INFO_BTF=y"]
    {
        assert!(config.lines().any(|l| l == line), "{line} missing with --bpf");
    }
}

#[test]
fn an_option_with_an_unmet_dependency_is_an_error_naming_it() {
    // NET_ACT_BPF depends on NET_CLS_ACT, which nothing requests.
    let (out, _dir) =
        configure(&["--no-rust", "--set", "CONFIG_NET_SCHED=y", "--set", "CONFIG_NET_ACT_BPF=y"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("1 requested option did not land"), "{}", out.stderr);
    assert!(out.stderr.contains("CONFIG_NET_ACT_BPF: requested y (--set), got n"), "{}", out.stderr);
    assert!(out.stderr.contains("depends on NET_CLS_ACT  (NET_CLS_ACT=n)"), "{}", out.stderr);
}

#[test]
fn a_misspelt_option_is_an_error() {
    let (out, _dir) = configure(&["--no-rust", "--set", "VIRTIO_FSS=y"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("no Kconfig file of this source tree defines VIRTIO_FSS"), "{}", out.stderr);
}

#[test]
fn the_build_has_what_gdb_modules_and_rust_analyzer_need() {
    let build = build();
    for file in [
        "vmlinux",
        "arch/x86/boot/bzImage",
        "vmlinux-gdb.py",
        "scripts/gdb/linux/constants.py",
        "Module.symvers",
        "scripts/mod/modpost",
        "rust-project.json",
        "samples/rust/rust_minimal.ko",
    ] {
        assert!(build.join(file).exists(), "{} lacks {file}", build.display());
    }
    // O= kept the source tree clean.
    assert!(!source().join(".config").exists());
}

#[test]
fn a_rebuild_with_nothing_changed_is_quick_and_does_not_relink_vmlinux() {
    let build = build();
    let before = std::fs::metadata(build.join("vmlinux")).unwrap().modified().unwrap();
    let mut cmd = kdf(&build);
    cmd.args(["kernel", "build", "-O"]).arg(&build);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.took < std::time::Duration::from_secs(60), "a no-op rebuild took {:?}", out.took);
    let after = std::fs::metadata(build.join("vmlinux")).unwrap().modified().unwrap();
    assert_eq!(before, after, "vmlinux was relinked");
}

#[test]
fn the_fast_kernel_boots_with_rust_debug_info_gdb_scripts_and_virtiofs() {
    let config = boot("zcat /proc/config.gz");
    for line in [
        "CONFIG_RUST=y",
        "CONFIG_DEBUG_INFO=y",
        "CONFIG_DEBUG_INFO_DWARF5=y",
        "CONFIG_GDB_SCRIPTS=y",
        "CONFIG_FUSE_FS=y",
        "CONFIG_VIRTIO_FS=y",
        "CONFIG_PVH=y",
        "# CONFIG_KASAN is not set",
    ] {
        assert!(config.lines().any(|l| l == line), "{line} missing from the guest's /proc/config.gz");
    }
}

#[test]
fn uname_r_in_the_guest_is_the_builds_kernelrelease() {
    let build = build();
    let out = Command::new("make")
        .args(["-s", "-C"])
        .arg(source())
        .arg(format!("O={}", build.display()))
        .arg("kernelrelease")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let release = String::from_utf8(out.stdout).unwrap();
    assert_eq!(boot("uname -r"), release);
}

#[test]
fn the_builds_rust_module_loads_and_unloads_in_the_guest() {
    let out = boot("modprobe rust_minimal && rmmod rust_minimal && dmesg | grep -o 'Rust minimal sample.*'");
    assert!(out.contains("Rust minimal sample (init)"), "{out}");
    assert!(out.contains("Rust minimal sample (exit)"), "{out}");
}
