//! Cross-built arm64 kdf kernels: `kdf kernel config --arch arm64` verified
//! on the test kernel's source, the cross-built test kernel
//! (`KDF_TEST_KERNEL_BUILD_ARM64`, from `scripts/build-test-kernel.sh --arch
//! arm64`) with everything `kdf run` and module builds need, and the example
//! C module built for arm64 against it, as the README says, then booted with
//! that module (`--module`) and the build's Rust sample loaded, under TCG;
//! and the promise that arm64 guests get what x86_64 ones do, on that kernel:
//! exact output over virtiofs and 9p, a splat (122), KUnit (121), `--timeout`
//! (124), and `kdf gdb` (gdb-multiarch) stopping in a module's `__init`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::debug::*;
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

/// modules/NAME copied to a fresh directory under `target/` and built for
/// arm64 against the test kernel, as the README says.
fn module_arm64(name: &str) -> PathBuf {
    let src = workspace().join("modules").join(name);
    let dir = workspace().join("target/kdf-test-arm64").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".c") || file == "Kbuild" || file == "Makefile" {
            std::fs::copy(entry.path(), dir.join(&file)).unwrap();
        }
    }
    let out = Command::new("make")
        .arg("-s")
        .arg(format!("KDIR={}", build_arm64().display()))
        .args(["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "make in {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// modules/helloworld built for arm64 (once).
fn helloworld_arm64() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| module_arm64("helloworld"))
}

/// modules/kunit-example built for arm64 (once).
fn kunit_arm64() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| module_arm64("kunit-example"))
}

/// `kdf run --kernel <arm64 test kernel> ARGS` in `cwd`.
fn run_arm64(cwd: &Path, args: &[&str]) -> Out {
    common::arm64::ready();
    let build = build_arm64();
    let mut all = vec!["--kernel", build.to_str().unwrap()];
    all.extend_from_slice(args);
    run_in(cwd, &all)
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
    let dir = helloworld_arm64();
    let script = "uname -m; echo written > out.txt; dmesg | grep -o 'helloworld: hello from arm64'; \
                  modprobe rust_minimal && dmesg | grep -o 'rust_minimal: Rust minimal sample (init)'";
    let out = run_arm64(dir, &["--module", "helloworld.ko who=arm64", "--", "sh", "-c", script]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout_str(),
        "aarch64\nhelloworld: hello from arm64\nrust_minimal: Rust minimal sample (init)\n"
    );
    assert_eq!(out.command_stderr(), "");
    assert_eq!(std::fs::read_to_string(dir.join("out.txt")).unwrap(), "written\n");
}

/// `DIR/NAME.ko`, as a string for a command line.
fn ko(dir: &Path, name: &str) -> String {
    dir.join(format!("{name}.ko")).display().to_string()
}

#[test]
fn a_warning_in_the_arm64_modules_init_fails_the_run_with_122_and_its_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!("{} warn=1", ko(helloworld_arm64(), "helloworld"));
    let out = run_arm64(tmp.path(), &["--module", &spec, "--", "echo", "ran"]);
    assert_eq!(out.status, 122, "{}", out.stderr);
    assert_eq!(out.stdout_str(), "ran\n", "the command ran");
    assert!(out.stderr.contains("kdf: kernel splat: WARNING: helloworld.c:"), "{}", out.stderr);
    assert!(out.stderr.contains("[kernel] Call trace:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("[kernel]  helloworld_init+"),
        "the trace names the function: {}",
        out.stderr
    );
    assert!(out.stderr.contains("[kernel] ---[ end trace"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("kdf: kernel splat: ").count(), 1, "reported once: {}", out.stderr);
}

#[test]
fn the_kunit_example_suite_runs_in_the_arm64_kernel_and_a_failing_case_gives_121() {
    let tmp = tempfile::tempdir().unwrap();
    let m = ko(kunit_arm64(), "kdf_kunit_example");
    assert_eq!(elf_machine(Path::new(&m)), EM_AARCH64);
    let out = run_arm64(tmp.path(), &["--module", &m, "--", "true"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    // The kernel's own Rust suites ran at boot too; the summary counts them all.
    assert!(out.stderr.contains(" passed, 1 skipped, 0 failed"), "{}", out.stderr);

    let json = tmp.path().join("result.json");
    let failing = format!("{m} fail=1");
    let out =
        run_arm64(tmp.path(), &["--result", json.to_str().unwrap(), "--module", &failing, "--", "true"]);
    assert_eq!(out.status, 121, "{}", out.stderr);
    assert!(out.stderr.contains(" passed, 1 skipped, 1 failed"), "{}", out.stderr);
    common::modules::assert_kunit_example_failed_once(&json);
}

#[test]
fn a_command_past_its_timeout_in_an_arm64_guest_ends_with_124() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_arm64(tmp.path(), &["--timeout", "2", "--", "sh", "-c", "sleep 600; echo after"]);
    assert_eq!(out.status, 124, "{}", out.stderr);
    assert_eq!(out.stdout_str(), "", "the command was stopped");
    assert_eq!(out.command_stderr(), "kdf: the command timed out after 2s\n");
    // Generous: the VM is killed 2 s after the command's SIGTERM.
    assert!(out.took.as_secs() < 60, "took {:?}", out.took);
}

#[test]
fn both_shares_give_exact_output_and_status_and_land_writes_on_the_host() {
    // virtiofs is the default; --9p asks for 9p.
    for (flags, fs) in [(&[][..], "virtiofs"), (&["--9p"][..], "9p")] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("in.txt"), "from the host\n").unwrap();
        let script = "grep \" $PWD \" /proc/mounts | cut -d' ' -f3; cat in.txt; \
                      printf 'no newline' >&2; echo written > out.txt; exit 7";
        let args: Vec<&str> = flags.iter().copied().chain(["--", "sh", "-c", script]).collect();
        let out = run_arm64(tmp.path(), &args);
        assert_eq!(out.status, 7, "{fs}: {}", out.stderr);
        assert_eq!(out.stdout_str(), format!("{fs}\nfrom the host\n"), "{fs}");
        assert_eq!(out.command_stderr(), "no newline", "{fs}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("out.txt")).unwrap(), "written\n", "{fs}");
    }
}

#[test]
fn gdb_multiarch_stops_in_the_arm64_modules_init_at_its_source_line() {
    let hello = helloworld_arm64();
    common::arm64::ready();
    let tmp = tempfile::tempdir().unwrap();
    let build = build_arm64();
    let module = ko(hello, "helloworld");
    let run = Running::start(
        tmp.path(),
        &[
            "--arch",
            "arm64",
            "--kernel",
            build.to_str().unwrap(),
            "-d",
            "--debug-wait",
            "--module",
            &module,
            "--",
            "true",
        ],
    );
    // No port, no kernel: both from the run's record.
    let text = stops_in_helloworld_init(tmp.path(), run, hello, "show architecture");
    assert!(text.contains("(currently \"aarch64\")"), "gdb-multiarch debugs aarch64: {text}");
}
