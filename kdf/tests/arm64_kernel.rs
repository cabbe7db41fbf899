//! Cross-built arm64 kdf kernels: `kdf kernel config --arch arm64` verified
//! on the test kernel's source, the cross-built test kernel
//! (`KDF_TEST_KERNEL_BUILD_ARM64`, from `scripts/build-test-kernel.sh --arch
//! arm64`) with everything `kdf run` and module builds need, and the example
//! C module built for arm64 against it, as the README says, then booted with
//! that module (`--module`) and the build's Rust sample loaded, under TCG.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::kernel::*;
use common::*;

/// ELF `e_machine` of AArch64 and x86-64.
const EM_AARCH64: u16 = 183;
const EM_X86_64: u16 = 62;

/// The `e_machine` of an ELF file.
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn kdf_kernel_config_arch_arm64_cross_configures_with_every_option_landed() {
    let (out, dir) = configure(&["--arch", "arm64"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("(arm64, allnoconfig, fast profile, Rust, GCC aarch64-linux-gnu-)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("options verified;"), "{}", out.stderr);
    assert!(!out.stderr.contains("did not land"), "{}", out.stderr);
    let config = config_of(dir.path());
    for line in [
        "CONFIG_ARM64=y",
        "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y",
        "CONFIG_PCI_HOST_GENERIC=y",
        "CONFIG_VIRTIO_PCI=y",
        "CONFIG_VIRTIO_MMIO=y",
        "CONFIG_VIRTIO_FS=y",
        "CONFIG_DEBUG_INFO_DWARF5=y",
        "CONFIG_GDB_SCRIPTS=y",
        "CONFIG_RUST=y",
    ] {
        assert!(has(&config, line), "{line} missing from the arm64 config");
    }
    // None of x86's: its serial console and PVH are in x86_64.config only.
    assert!(!config.lines().any(|l| l.starts_with("CONFIG_SERIAL_8250_CONSOLE=")));
    // The toolchain is recorded for `kdf kernel build`.
    let record = std::fs::read_to_string(dir.path().join("kdf-toolchain")).unwrap();
    assert!(has(&record, "ARCH=arm64") && has(&record, "CROSS_COMPILE=aarch64-linux-gnu-"), "{record}");
}

#[test]
fn a_missing_cross_compiler_is_named_before_anything_runs() {
    let (out, dir) = configure(&["--arch", "arm64", "--cross-compile", "/nonexistent/aarch64-linux-gnu-"]);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("needs the cross compiler /nonexistent/aarch64-linux-gnu-gcc"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("gcc-aarch64-linux-gnu"), "{}", out.stderr);
    assert!(!dir.path().join(".config").exists());
}

#[test]
fn the_arm64_build_has_image_vmlinux_modules_and_gdb_scripts() {
    let build = build_arm64();
    for file in [
        "arch/arm64/boot/Image",
        "arch/arm64/boot/Image.gz",
        "vmlinux-gdb.py",
        "scripts/gdb/linux/constants.py",
        "Module.symvers",
        "rust-project.json",
    ] {
        assert!(build.join(file).exists(), "{} lacks {file}", build.display());
    }
    assert_eq!(elf_machine(&build.join("vmlinux")), EM_AARCH64);
    assert_eq!(elf_machine(&build.join("samples/rust/rust_minimal.ko")), EM_AARCH64);
    // Host tools (modpost) stay the host's.
    assert_eq!(elf_machine(&build.join("scripts/mod/modpost")), EM_X86_64);
}

#[test]
fn kdf_kernel_build_without_flags_builds_as_configured_for_arm64() {
    let build = build_arm64();
    let before = std::fs::metadata(build.join("vmlinux")).unwrap().modified().unwrap();
    let mut cmd = kdf(&build);
    cmd.args(["kernel", "build", "-O"]).arg(&build);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // Without ARCH= kbuild would reconfigure the tree for x86 and rebuild it all.
    let after = std::fs::metadata(build.join("vmlinux")).unwrap().modified().unwrap();
    assert_eq!(before, after, "vmlinux was relinked");
    assert_eq!(elf_machine(&build.join("vmlinux")), EM_AARCH64);
}

#[test]
fn another_arch_than_the_configured_one_is_refused() {
    let build = build_arm64();
    let mut cmd = kdf(&build);
    cmd.args(["kernel", "build", "--arch", "x86_64", "-O"]).arg(&build);
    let out = run_with(cmd, None);
    assert_eq!(out.status, 125, "{}", out.stderr);
    assert!(out.stderr.contains("--arch x86_64: the tree is configured for arm64"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf kernel config --arch"), "{}", out.stderr);
}

/// Copies modules/helloworld to a fresh directory under `target/`.
fn helloworld_copy() -> PathBuf {
    let src = workspace().join("modules/helloworld");
    let dir = workspace().join("target/kdf-test-arm64/helloworld");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["helloworld.c", "Kbuild", "Makefile"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    dir
}

/// modules/helloworld built for arm64 against the test kernel (once).
fn helloworld_arm64() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = helloworld_copy();
        let out = Command::new("make")
            .arg("-s")
            .arg(format!("KDIR={}", build_arm64().display()))
            .args(["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "make failed:\n{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

#[test]
fn the_example_module_builds_for_arm64_as_the_readme_says() {
    let dir = helloworld_arm64();
    let module = dir.join("helloworld.ko");
    assert_eq!(elf_machine(&module), EM_AARCH64, "{} is not an arm64 module", module.display());
    let info = Command::new("modinfo").arg("-F").arg("vermagic").arg(&module).output().unwrap();
    let release = std::fs::read_to_string(build_arm64().join("include/config/kernel.release")).unwrap();
    let vermagic = String::from_utf8_lossy(&info.stdout);
    assert!(vermagic.starts_with(&format!("{} ", release.trim())), "vermagic {vermagic:?}");
    assert!(vermagic.contains("aarch64"), "vermagic {vermagic:?}");
}

#[test]
fn the_arm64_kernel_boots_with_the_arm64_module_and_its_rust_sample() {
    let init = workspace().join("target/aarch64-unknown-linux-musl/release/kdf-init");
    assert!(
        init.is_file(),
        "{} is missing: run scripts/test.sh, or `cargo build --release -p kdf-init --target \
         aarch64-unknown-linux-musl`",
        init.display()
    );
    // The default arm64 root, fetched first (its first use prints a notice).
    let mut fetch_root = kdf(&workspace());
    fetch_root.args(["root", "fetch", "--arch", "arm64"]);
    let root = run_with(fetch_root, None);
    assert_eq!(root.status, 0, "kdf root fetch: {}", root.stderr);

    let dir = helloworld_arm64();
    let build = build_arm64();
    let script = "uname -m; echo written > out.txt; dmesg | grep -o 'helloworld: hello from arm64'; \
                  modprobe rust_minimal && dmesg | grep -o 'rust_minimal: Rust minimal sample (init)'";
    let out = run_in(
        dir,
        &[
            "--kernel",
            build.to_str().unwrap(),
            "--module",
            "helloworld.ko who=arm64",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout_str(),
        "aarch64\nhelloworld: hello from arm64\nrust_minimal: Rust minimal sample (init)\n"
    );
    assert_eq!(out.command_stderr(), "");
    assert_eq!(std::fs::read_to_string(dir.join("out.txt")).unwrap(), "written\n");
}
