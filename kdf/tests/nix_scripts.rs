//! The Nix builders' shell steps (`build/lib/*.sh`) and the `runvm`/`rungdb`
//! templates (`build/templates/`), run here with local paths where the Nix
//! derivations pass store paths: the example modules built and installed
//! against the test kernel (`KDF_TEST_KERNEL_BUILD`), the kernel config step
//! on its source, the initramfs made by this kdf, the working directory with
//! `modules/`, and `runvm` booting the test kernel. The derivations
//! (`build/*.nix`) run the same scripts and fill the same templates; that
//! they build under Nix only a machine with nixpkgs can show.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;

/// A fresh directory under `target/` (the guest sees it through the root
/// share; a temporary directory under /tmp would be hidden by its tmpfs).
fn scratch(name: &str) -> PathBuf {
    let dir = workspace().join("target/kdf-test-nix").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `bash build/lib/SCRIPT ARGS` in `cwd`.
fn lib_script<A: AsRef<OsStr>>(script: &str, cwd: &Path, args: &[A]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace().join("build/lib").join(script)).args(args).current_dir(cwd);
    cmd
}

fn succeeded(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn release() -> String {
    let file = test_kernel_build().join("include/config/kernel.release");
    std::fs::read_to_string(&file).unwrap().trim().to_string()
}

fn bz_image() -> PathBuf {
    test_kernel_build().join("arch/x86/boot/bzImage")
}

/// Every file under `dir`, relative to it (symlinks not followed).
fn files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// An example module built and installed the way buildCModule does it: its
/// source directory and its `$out`.
struct Module {
    src: PathBuf,
    out: PathBuf,
}

impl Module {
    /// `$out/share/kdf/modules`: passthru.debugModulesDir.
    fn debug_dir(&self) -> PathBuf {
        self.out.join("share/kdf/modules")
    }
}

fn build_and_install(name: &str, example: &str) -> Module {
    let dir = scratch(&format!("module-{name}"));
    let src = dir.join("src");
    std::fs::create_dir(&src).unwrap();
    for entry in std::fs::read_dir(workspace().join("modules").join(example)).unwrap().flatten() {
        std::fs::copy(entry.path(), src.join(entry.file_name())).unwrap();
    }
    let kdir = test_kernel_build();
    let out = dir.join("out");
    let build = lib_script("module-build.sh", &src, &[kdir.as_os_str(), "-s".as_ref()]).output().unwrap();
    succeeded(&format!("module-build.sh for {name}"), build);
    let args = [name.as_ref(), kdir.as_os_str(), out.as_os_str(), "-s".as_ref()];
    let install = lib_script("module-install.sh", &src, &args).output().unwrap();
    succeeded(&format!("module-install.sh for {name}"), install);
    Module { src, out }
}

fn helloworld() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| build_and_install("helloworld", "helloworld"))
}

fn rust_hello() -> &'static Module {
    static M: OnceLock<Module> = OnceLock::new();
    M.get_or_init(|| build_and_install("rust-hello", "rust"))
}

#[test]
fn module_scripts_install_the_example_modules_in_the_derivations_layout() {
    let release = release();
    for (module, ko) in [(helloworld(), "helloworld.ko"), (rust_hello(), "rust_hello.ko")] {
        let expected: BTreeSet<String> =
            [format!("lib/modules/{release}/extra/{ko}"), format!("share/kdf/modules/{ko}")].into();
        assert_eq!(files(&module.out), expected, "{}", module.out.display());
    }
}

#[test]
fn module_install_without_a_ko_names_the_package_and_the_fix() {
    let dir = scratch("module-empty");
    std::fs::write(dir.join("Kbuild"), "# no obj-m\n").unwrap();
    let kdir = test_kernel_build();
    let out = dir.join("out");
    let out = lib_script("module-install.sh", &dir, &["empty".as_ref(), kdir.as_os_str(), out.as_os_str()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("buildCModule (empty): kbuild built no .ko"), "{stderr}");
    assert!(stderr.contains("does the Kbuild file set obj-m?"), "{stderr}");
}

/// Regression (issue 11, 4): the config derivation's `make` saw the
/// derivation's `src` variable, which kbuild's makefiles use for the
/// directory being built (nixpkgs undefines it for every kernel make).
#[test]
fn kernel_config_script_runs_make_without_src_and_the_options_land() {
    let dir = scratch("kernel-config");
    // A `make` first on PATH that records whether it sees `src`.
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.join("make.log");
    let real_make =
        String::from_utf8(Command::new("sh").args(["-c", "command -v make"]).output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
    std::fs::write(
        bin.join("make"),
        format!("#!/bin/sh\necho \"src=${{src-unset}}\" >> '{}'\nexec '{real_make}' \"$@\"\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("make"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let allconfig = dir.join("allconfig");
    std::fs::write(&allconfig, "CONFIG_MODULES=y\nCONFIG_PRINTK=y\n").unwrap();
    let build = dir.join("build");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let src = test_kernel_src();
    let args = [src.as_os_str(), allconfig.as_os_str(), build.as_os_str(), "-s".as_ref()];
    let out = lib_script("kernel-config.sh", &dir, &args)
        .env("PATH", path)
        .env("src", "/nonexistent/the-derivations-source")
        .output()
        .unwrap();
    succeeded("kernel-config.sh", out);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(!seen.is_empty() && seen.lines().all(|l| l == "src=unset"), "make saw src:\n{seen}");
    let check = Command::new("bash")
        .arg(workspace().join("build/lib/check-config.sh"))
        .args([&allconfig, &build.join(".config")])
        .output()
        .unwrap();
    succeeded("check-config.sh", check);
}

/// `initramfs.sh` with this kdf on PATH, as buildInitramfs runs it.
fn initramfs(name: &str, module_dirs: &[PathBuf]) -> (PathBuf, Output) {
    let dir = scratch(name);
    let archive = dir.join("initrd");
    let kdf_dir = kdf_bin().parent().unwrap().to_path_buf();
    let mut args = vec![bz_image(), kdf_init(), archive.clone()];
    args.extend(module_dirs.iter().cloned());
    let out = lib_script("initramfs.sh", &dir, &args)
        .env("PATH", format!("{}:{}", kdf_dir.display(), std::env::var("PATH").unwrap()))
        .env("XDG_CACHE_HOME", cache_dir())
        .output()
        .unwrap();
    (archive, out)
}

fn cpio_list(archive: &Path) -> String {
    let out = Command::new("cpio").arg("-it").stdin(std::fs::File::open(archive).unwrap()).output().unwrap();
    succeeded("cpio -it", out).stdout.iter().map(|&b| b as char).collect()
}

#[test]
fn initramfs_script_packs_kdf_init_and_each_packages_modules() {
    let dirs = [helloworld().out.join("lib/modules"), rust_hello().out.join("lib/modules")];
    let (archive, out) = initramfs("initramfs-with-modules", &dirs);
    succeeded("initramfs.sh", out);
    let list = cpio_list(&archive);
    let release = release();
    for entry in [
        "init".to_string(),
        format!("lib/modules/{release}/extra/helloworld.ko"),
        format!("lib/modules/{release}/extra/rust_hello.ko"),
    ] {
        assert!(list.lines().any(|l| l == entry), "{entry} not in the archive:\n{list}");
    }

    let (_, out) = initramfs("initramfs-missing", &[PathBuf::from("/nonexistent/pkg/lib/modules")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("buildInitramfs: /nonexistent/pkg/lib/modules does not exist"), "{stderr}");
}

/// Regression (issue 11, 6): two packages with a `.ko` of the same name made
/// runvm's `modules/` symlink step fail; each such file now goes to its
/// package's directory, the others stay flat.
#[test]
fn vm_workdir_script_puts_a_shared_module_name_under_each_package() {
    let dir = scratch("workdir");
    let fixture = [
        ("a", "x.ko"),
        ("a", "y.ko"),
        ("b", "x.ko"),
        ("b", "z.ko.xz"),
        ("c", "sub/w.ko"),
        ("d", "1/v.ko"),
        ("d", "2/v.ko"),
    ];
    for (pkg, file) in fixture {
        let path = dir.join(pkg).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{pkg}/{file}")).unwrap();
    }
    let out = dir.join("out");
    let p = |p: &str| dir.join(p);
    let args = [out.clone(), "hello-1".into(), p("a"), "hello-2".into(), p("b"), "c".into(), p("c")];
    succeeded("vm-workdir.sh", lib_script("vm-workdir.sh", &dir, &args).output().unwrap());
    let expected: BTreeSet<String> =
        ["modules/y.ko", "modules/z.ko.xz", "modules/w.ko", "modules/hello-1/x.ko", "modules/hello-2/x.ko"]
            .map(String::from)
            .into();
    assert_eq!(files(&out), expected);
    for (link, content) in [("modules/hello-2/x.ko", "b/x.ko"), ("modules/w.ko", "c/sub/w.ko")] {
        assert!(out.join(link).is_symlink(), "{link}");
        assert_eq!(std::fs::read_to_string(out.join(link)).unwrap(), content);
    }

    // Within one package a name cannot be split: that is an error naming it.
    let bad = lib_script("vm-workdir.sh", &dir, &[p("out2"), "d".into(), p("d")]).output().unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("buildQemuCmd: d has two module files named v.ko"), "{stderr}");
}

/// A template under `build/templates/` with each `@name@` replaced, as
/// `build/lib/template.nix` fills it; none may be left.
fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(workspace().join("build/templates").join(template)).unwrap();
    for (name, value) in vars {
        let key = format!("@{name}@");
        assert!(text.contains(&key), "{template} has no {key}");
        text = text.replace(&key, value);
    }
    let left = regex::Regex::new("@[A-Za-z][A-Za-z0-9]*@").unwrap();
    assert!(left.find(&text).is_none(), "{template}: a placeholder is left in\n{text}");
    text
}

/// A shell word, quoted as nixpkgs' `lib.escapeShellArg` quotes it.
fn quote(s: impl AsRef<OsStr>) -> String {
    format!("'{}'", s.as_ref().to_string_lossy().replace('\'', "'\\''"))
}

/// The program `writeShellApplication` makes of `text` (nixpkgs'
/// trivial-builders: the shebang, `set -o errexit/nounset/pipefail`, the
/// text), checked with shellcheck as nixpkgs checks it.
fn shell_application(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/bash\nset -o errexit\nset -o nounset\nset -o pipefail\n\n{text}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let check = Command::new("shellcheck")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run shellcheck ({e}): install it (scripts/setup.sh does)"));
    succeeded(&format!("shellcheck {name}"), check);
    path
}

/// runvm as build/qemu-cmd.nix makes it for the flake: the test kernel's
/// bzImage, an initramfs without modules, and a working directory whose
/// `modules/` holds both example modules.
fn runvm(name: &str, preload: bool) -> PathBuf {
    let dir = scratch(name);
    let (initrd, out) = initramfs(&format!("{name}-initramfs"), &[]);
    succeeded("initramfs.sh", out);
    let workdir = dir.join("workdir");
    let (hello, rust) = (helloworld(), rust_hello());
    let args =
        [workdir.clone(), "helloworld".into(), hello.debug_dir(), "rust-hello".into(), rust.debug_dir()];
    succeeded("vm-workdir.sh", lib_script("vm-workdir.sh", &dir, &args).output().unwrap());
    let text = fill(
        "runvm.sh",
        &[
            ("kdf", quote(kdf_bin())),
            ("kernel", quote(bz_image())),
            ("initramfs", quote(&initrd)),
            ("workdir", quote(&workdir)),
            ("preload", preload.to_string()),
        ],
    );
    shell_application(&dir, "runvm", &text)
}

/// `PROGRAM ARGS` (runvm, rungdb) in `cwd`, with the environment kdf gets in tests.
fn wrapper(program: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = in_test_env(Command::new(program), cwd);
    cmd.args(args);
    cmd
}

/// Regression (issue 11, 1): runvm's initramfs loaded both example modules
/// at boot, so the README's `insmod modules/helloworld.ko` failed with "File
/// exists". The shell reads the README's steps from stdin.
#[test]
fn runvm_boots_the_test_kernel_and_insmod_of_the_example_modules_works() {
    let runvm = runvm("runvm", false);
    let cwd = tempfile::tempdir().unwrap();
    let steps = "lsmod | grep -c -e '^helloworld ' -e '^rust_hello ' || true\n\
                 insmod modules/helloworld.ko\n\
                 insmod modules/rust_hello.ko\n\
                 rmmod rust_hello\n\
                 dmesg | grep -e 'helloworld: ' -e 'rust_hello: '\n";
    let out = run_with(wrapper(&runvm, cwd.path(), &[]), Some(steps.as_bytes().to_vec()));
    let stdout = out.stdout_str();
    assert_eq!(out.status, 0, "stdout:\n{stdout}\nstderr:\n{}", out.stderr);
    assert!(stdout.starts_with("0\n"), "a module was loaded at boot:\n{stdout}");
    for line in ["helloworld: hello from kdf", "rust_hello: my numbers are [72, 108, 200]"] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}

#[test]
fn runvm_with_preload_loads_the_modules_before_the_command() {
    let runvm = runvm("runvm-preload", true);
    let cwd = tempfile::tempdir().unwrap();
    let out =
        run_with(wrapper(&runvm, cwd.path(), &["--", "sh", "-c", "lsmod | cut -d' ' -f1 | sort"]), None);
    let stdout = out.stdout_str();
    assert_eq!(out.status, 0, "stdout:\n{stdout}\nstderr:\n{}", out.stderr);
    for module in ["helloworld", "rust_hello"] {
        assert!(stdout.lines().any(|l| l == module), "{module} not loaded:\n{stdout}");
    }
}

/// rungdb as build/gdb-cmd.nix makes it: `kdf gdb` with the kernel's build
/// directory and each module's unstripped directory, and the gdb file with
/// the source directories and lx-symbols-nix.
fn rungdb(name: &str) -> PathBuf {
    let dir = scratch(name);
    let (hello, rust) = (helloworld(), rust_hello());
    let src = test_kernel_src();
    let directories: String = [src.clone(), src.join("build"), hello.src.clone(), rust.src.clone()]
        .iter()
        .map(|d| format!("directory {}\n", d.display()))
        .collect();
    let gdbinit = dir.join("rungdb.gdb");
    std::fs::write(&gdbinit, fill("rungdb.gdb", &[("directories", directories)])).unwrap();
    let module_dirs = [hello.debug_dir(), rust.debug_dir()]
        .iter()
        .map(|d| format!("'--module-dir' {}", quote(d)))
        .collect::<Vec<_>>()
        .join(" ");
    let text = fill(
        "rungdb.sh",
        &[
            ("kdf", quote(kdf_bin())),
            ("kernel", quote(test_kernel_build())),
            ("moduleDirs", module_dirs),
            ("gdbinit", quote(&gdbinit)),
        ],
    );
    shell_application(&dir, "rungdb", &text)
}

#[test]
fn rungdb_is_a_clean_shell_program() {
    // Built (and shellchecked) here; attaching it needs a running VM below.
    assert!(rungdb("rungdb-text").is_file());
}

/// `runvm -d` plus `rungdb -batch`, from the same directory: gdb attaches,
/// and lx-symbols-nix loads the loaded module's symbols, so a variable of
/// it reads from the guest's memory.
#[test]
fn runvm_d_and_rungdb_attach_and_load_a_modules_symbols() {
    use std::io::{BufRead, Write};
    let (runvm, rungdb) = (runvm("runvm-gdb", false), rungdb("rungdb"));
    let cwd = tempfile::tempdir().unwrap();
    let mut vm = wrapper(
        &runvm,
        cwd.path(),
        &["-d", "--", "sh", "-c", "insmod modules/helloworld.ko && echo loaded && read done"],
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = vm.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(LIMIT).expect("runvm -d never loaded the module");
    assert_eq!(line, "loaded\n");

    let gdb = wrapper(
        &rungdb,
        cwd.path(),
        &["-batch", "-ex", "lx-symbols-nix", "-ex", "print 'helloworld.c'::who"],
    )
    .output()
    .unwrap();
    let gdb_out = String::from_utf8_lossy(&gdb.stdout).into_owned();
    vm.stdin.take().unwrap().write_all(b"done\n").unwrap();
    let vm_out = wait(vm);
    assert!(gdb.status.success(), "rungdb failed:\n{gdb_out}\n{}", String::from_utf8_lossy(&gdb.stderr));
    assert!(gdb_out.contains("helloworld.ko"), "lx-symbols-nix loaded nothing:\n{gdb_out}");
    assert!(gdb_out.contains("\"kdf\""), "no module variable read:\n{gdb_out}");
    assert_eq!(vm_out.status, 0, "{}", vm_out.stderr);
}
