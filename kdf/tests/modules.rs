//! The module loop on real VMs (TCG): `--module` with parameters, load
//! failures (123), kernel splats (122), `--allow-splat`, KUnit suites,
//! refusing a module built for another kernel, and a distro module's
//! dependencies. The modules (`modules/helloworld`, `modules/kunit-example`,
//! `modules/rust` and the test modules in `tests/modules/`) are built against
//! the test kernel (`KDF_TEST_KERNEL_BUILD`, set by `scripts/test.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::modules::{
    build as build_modules, build_against as build_modules_against, ko as module, test_kernel,
};
use common::*;

fn hello() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_modules("helloworld", &workspace().join("modules/helloworld")))
}

fn faulty() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_modules("faulty", &workspace().join("kdf/tests/modules")))
}

fn kunit() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_modules("kunit-example", &workspace().join("modules/kunit-example")))
}

/// `kdf run --kernel <test kernel> ARGS` in a temporary directory.
fn run_kernel(args: &[&str]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let kernel = test_kernel();
    let mut all = vec!["--kernel", kernel.to_str().unwrap()];
    all.extend_from_slice(args);
    run_in(dir.path(), &all)
}

#[test]
fn a_module_loads_with_its_parameter_and_unloads_after_the_command() {
    let spec = format!("{} who=tester", module(hello(), "helloworld"));
    let out = run_kernel(&[
        "--module",
        &spec,
        "--",
        "sh",
        "-c",
        "cat /sys/module/helloworld/parameters/who; dmesg | grep -c 'hello from tester'",
    ]);
    assert_eq!(ok(out), "tester\n1\n");
}

#[test]
fn a_clean_run_of_the_test_kernel_says_nothing_on_stderr() {
    let out = run_kernel(&["--", "true"]);
    assert_eq!((out.status, out.stderr.as_str()), (0, ""));
}

#[test]
fn a_module_whose_init_fails_ends_with_123_and_the_reason() {
    let out = run_kernel(&["--module", &module(faulty(), "kdf_einval"), "--", "echo", "ran"]);
    assert_eq!(out.status, 123, "{}", out.stderr);
    assert_eq!(out.stdout_str(), "", "the command does not run");
    assert!(out.stderr.contains("kdf: cannot load module kdf_einval: Invalid argument"), "{}", out.stderr);
    assert!(out.stderr.contains("[kernel] kdf_einval: refusing to load"), "{}", out.stderr);
}

#[test]
fn a_warning_in_a_modules_init_fails_the_run_with_its_trace() {
    let out = run_kernel(&["--module", &module(faulty(), "kdf_warn"), "--", "echo", "ran"]);
    assert_eq!(out.status, 122, "{}", out.stderr);
    assert_eq!(out.stdout_str(), "ran\n", "the command ran");
    assert!(out.stderr.contains("kdf: kernel splat: WARNING:"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf_warn_init"), "the trace names the function: {}", out.stderr);
    assert!(out.stderr.contains("[kernel] ---[ end trace"), "{}", out.stderr);
    // Accepted when it is a known one.
    let out = run_kernel(&[
        "--module",
        &module(faulty(), "kdf_warn"),
        "--allow-splat",
        "kdf_warn_init",
        "--",
        "true",
    ]);
    assert_eq!((out.status, out.stderr.as_str()), (0, ""));
}

#[test]
fn a_null_dereference_in_a_modules_init_leaves_the_guest_alive_and_fails_with_122() {
    let out = run_kernel(&["--module", &module(faulty(), "kdf_oops"), "--", "echo", "ran"]);
    assert_eq!(out.status, 122, "{}", out.stderr);
    assert!(out.stderr.contains("kdf: cannot load module kdf_oops"), "{}", out.stderr);
    assert!(out.stderr.contains("BUG: kernel NULL pointer dereference"), "{}", out.stderr);
    assert!(out.stderr.contains("kdf_oops_init"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("kdf: kernel splat: ").count(), 1, "reported once: {}", out.stderr);
}

#[test]
fn userspace_writing_bug_to_the_kernel_log_is_no_splat() {
    let out = run_kernel(&["--", "sh", "-c", "echo 'BUG: not the kernel' > /dev/kmsg"]);
    assert_eq!((out.status, out.stderr.as_str()), (0, ""));
}

#[test]
fn a_module_built_for_another_kernel_is_refused_before_boot() {
    // The test kernel's module, offered to the host's installed kernel.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("result.json");
    let out = run_in(
        dir.path(),
        &["--result", json.to_str().unwrap(), "--module", &module(hello(), "helloworld"), "--", "true"],
    );
    assert_eq!(out.status, 123, "{}", out.stderr);
    assert!(out.stderr.contains("helloworld.ko was built for 7."), "{}", out.stderr);
    assert!(out.stderr.contains(", the kernel is "), "{}", out.stderr);
    assert!(out.took.as_secs() < 10, "refused before any boot: {:?}", out.took);
    // CI still gets its result file.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        (v["status"].as_i64(), v["meaning"].as_str()),
        (Some(123), Some("a --module did not load or unload"))
    );
    assert!(v["error"].as_str().unwrap().contains("helloworld.ko was built for 7."), "{v}");
    assert!(v["command_status"].is_null(), "{v}");
}

fn result(args: &[&str]) -> (Out, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let mut all = vec!["--result", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_kernel(&all);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("no result file ({e}): {}", out.stderr));
    (out, serde_json::from_str(&text).unwrap())
}

#[test]
fn result_json_names_the_splat_and_the_modules() {
    let (out, v) = result(&["--module", &module(faulty(), "kdf_warn"), "--", "true"]);
    assert_eq!(out.status, 122);
    assert_eq!((v["status"].as_i64(), v["command_status"].as_i64()), (Some(122), Some(0)));
    assert_eq!(v["meaning"], "the kernel logged a splat");
    assert!(v["kernel_release"].as_str().unwrap().starts_with("7."), "{v}");
    assert_eq!(v["modules"][0]["name"], "kdf_warn");
    assert_eq!(v["modules"][0]["loaded"], true);
    assert!(v["splats"][0]["title"].as_str().unwrap().starts_with("WARNING:"), "{v}");
    assert!(v["splats"][0]["lines"].as_array().unwrap().len() > 3);

    let (out, v) = result(&["--module", &module(faulty(), "kdf_einval"), "--", "true"]);
    assert_eq!(out.status, 123);
    assert!(v["command_status"].is_null(), "the command did not run: {v}");
    assert_eq!(v["modules"][0]["loaded"], false);
    assert_eq!(v["modules"][0]["error"], "load: Invalid argument");
}

// The test kernel has KUnit (scripts/build-test-kernel.sh: CONFIG_KUNIT=y,
// the example suite as a module), so its suites run when a module loads.

#[test]
fn a_kunit_suite_in_a_module_is_counted_and_a_failing_case_gives_121() {
    // modules/kunit-example, as the README's recipe runs it.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("result.json");
    let m = module(kunit(), "kdf_kunit_example");
    let failing = format!("{m} fail=1");
    let out = run_kernel(&["--result", json.to_str().unwrap(), "--module", &failing, "--", "true"]);
    assert_eq!(out.status, 121, "{}", out.stderr);
    // The summary counts every suite that ran (a Rust kernel's own run at boot).
    assert!(out.stderr.contains(" passed, 1 skipped, 1 failed"), "{}", out.stderr);
    common::modules::assert_kunit_example_failed_once(&json);
    // Without fail=1 it passes, and its summary is still shown: its suite ran.
    let out = run_kernel(&["--module", &m, "--", "true"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains(" passed, 1 skipped, 0 failed"), "{}", out.stderr);
    let only = "kdf_kunit_example.kdf_kunit_example_passes";
    let out = run_kernel(&["--kunit-filter", only, "--module", &failing, "--", "true"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("kdf: KUnit: 1 tests, 1 passed, 0 skipped, 0 failed"), "{}", out.stderr);
}

#[test]
fn the_kunit_example_suite_passes_and_its_ktap_parses_with_kunit_py() {
    let dir = tempfile::tempdir().unwrap();
    let ktap = dir.path().join("example.ktap");
    let out = run_kernel(&["--ktap", ktap.to_str().unwrap(), "--", "modprobe", "kunit-example-test"]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("kdf: KUnit: "), "{}", out.stderr);
    let src = std::env::var_os("KDF_TEST_KERNEL_SRC").expect("KDF_TEST_KERNEL_SRC (scripts/test.sh sets it)");
    let kunit_py = Path::new(&src).join("tools/testing/kunit/kunit.py");
    let parsed = Command::new("python3").arg(kunit_py).arg("parse").arg(&ktap).output().unwrap();
    let said = String::from_utf8_lossy(&parsed.stdout);
    // kdf and the kernel's parser count the same cases.
    let ours = out.stderr.lines().find_map(|l| l.strip_prefix("kdf: KUnit: ")).unwrap().to_string();
    let number = |text: &str, after: &str| -> u64 {
        let at = text.find(after).unwrap_or_else(|| panic!("no {after:?} in {text}")) + after.len();
        text[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
    };
    assert_eq!(number(&said, "Ran "), number(&ours, ""), "tests: {said} / {ours}");
    assert_eq!(number(&said, "passed: "), number(&ours, "tests, "), "passed: {said} / {ours}");
    assert!(!said.contains("failed:") || said.contains("failed: 0"), "{said}");
}

#[test]
fn a_clean_boot_of_a_kernel_with_kunit_says_nothing_about_its_passing_builtin_suites() {
    let out = run_kernel(&["--", "true"]);
    assert_eq!((out.status, out.stderr.as_str()), (0, ""), "stderr is the command's");
    let out = run_kernel(&["-v", "--", "true"]);
    assert!(out.stderr.contains("kdf: KUnit: "), "-v shows them: {}", out.stderr);
}

/// The newest installed kernel: the one `kdf run` boots by default.
fn newest_installed_release() -> String {
    std::fs::read_dir("/boot")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("vmlinuz-").map(str::to_string))
        .max_by(|a, b| {
            let key = |s: &str| {
                s.split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            };
            key(a).cmp(&key(b))
        })
        .expect("an installed kernel in /boot (scripts/setup.sh installs one)")
}

#[test]
fn helloworld_built_against_the_distro_kernels_headers_loads_in_that_kernel() {
    let release = newest_installed_release();
    let headers = PathBuf::from(format!("/lib/modules/{release}/build"));
    assert!(headers.is_dir(), "no headers for {release}: scripts/setup.sh installs linux-headers-{release}");
    let dir = build_modules_against("helloworld-distro", &workspace().join("modules/helloworld"), &headers);
    let spec = format!("{} who=debian", module(&dir, "helloworld"));
    let tmp = tempfile::tempdir().unwrap();
    let out = run_in(
        tmp.path(),
        &["--module", &spec, "--", "sh", "-c", "uname -r; dmesg | grep -c 'helloworld: hello from debian'"],
    );
    assert_eq!(ok(out), format!("{release}\n1\n"), "its own line, not the taint line");
}

#[test]
fn the_rust_module_loads_and_prints_its_values_when_removed() {
    let dir = build_modules("rust", &workspace().join("modules/rust"));
    let out = run_kernel(&[
        "--module",
        &module(&dir, "rust_hello"),
        "--",
        "sh",
        "-c",
        "rmmod rust_hello && dmesg | grep rust_hello",
    ]);
    let text = ok(out);
    assert!(text.contains("[72, 108, 200]"), "{text}");
}

/// The module file of `name` in the distro kernel's modules.dep, and the
/// names of the modules it depends on.
fn distro_module(release: &str, name: &str) -> (PathBuf, Vec<String>) {
    let dir = PathBuf::from(format!("/lib/modules/{release}"));
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    let base = |p: &str| p.rsplit('/').next().unwrap().split(".ko").next().unwrap().replace('-', "_");
    let (path, deps) = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(p, _)| base(p) == name)
        .unwrap_or_else(|| panic!("{name} is not a module of {release}"));
    (dir.join(path), deps.split_whitespace().map(base).collect())
}

// Regression: a --module's kernel dependencies were looked up in the
// initramfs, which holds only kdf's own modules; those missing there were
// taken to be built in, and the module failed with "Unknown symbol" (123).
#[test]
fn a_distro_module_loads_after_its_dependencies_from_the_kernels_modules_directory() {
    let release = newest_installed_release();
    // udf needs crc-itu-t and cdrom: neither is a module kdf's VM loads.
    let (udf, deps) = distro_module(&release, "udf");
    assert_eq!(deps, ["crc_itu_t", "cdrom"], "{release}'s udf changed: pick another module");
    let tmp = tempfile::tempdir().unwrap();
    let absent = "for m in crc_itu_t cdrom udf; do test ! -e /sys/module/$m || echo $m; done";
    assert_eq!(ok(run_in(tmp.path(), &["--", "sh", "-c", absent])), "", "loaded without --module");
    let out = run_in(
        tmp.path(),
        &[
            "--module",
            udf.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "grep -w udf /proc/filesystems; ls -d /sys/module/crc_itu_t /sys/module/cdrom",
        ],
    );
    assert_eq!(ok(out), "\tudf\n/sys/module/cdrom\n/sys/module/crc_itu_t\n");
}
