//! Loading kernel modules: kdf's own from the initramfs, dependencies first,
//! using the `modules.dep` next to them; the kernel modules a `--module`
//! needs, from the kernel's real modules directory once the host's files are
//! mounted; and the user's `--module` files, loaded in a child process and
//! unloaded after the command.

use std::fs::File;

use kdf_proto::modules_dep::{module_name, ModulesDep};
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::log::Fatal;

fn dir(release: &str) -> String {
    format!("/lib/modules/{release}")
}

/// Loads the modules kdf-init needs before it can reach the host (the virtio
/// transport and console, named by kdf on the kernel command line), then the
/// extra modules listed one per line in `/kdf/preload`.
pub fn load_preload(release: &str) -> Result<(), Fatal> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut names = kdf_proto::cmdline_preload(&cmdline);
    match std::fs::read_to_string(format!("/{}", kdf_proto::PRELOAD_PATH)) {
        Ok(list) => names.extend(list.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string)),
        // Only an initramfs with extra modules has the list.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Fatal(format!("cannot read /{}: {e}", kdf_proto::PRELOAD_PATH))),
    }
    load(release, &names)
}

/// Loads `names` and their dependencies. Names missing from `modules.dep` are
/// taken to be built in; a later step that needs them says what is missing.
pub fn load<S: AsRef<str>>(release: &str, names: &[S]) -> Result<(), Fatal> {
    if names.is_empty() {
        return Ok(());
    }
    let dir = dir(release);
    let dep = match std::fs::read_to_string(format!("{dir}/modules.dep")) {
        Ok(text) => ModulesDep::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Fatal(format!("cannot read {dir}/modules.dep: {e}"))),
    };
    // Each level at once: under TCG a module's load (relocation, its init,
    // probing its devices) is CPU work a second vCPU can share.
    let (levels, _built_in) = dep.load_levels(names);
    for level in not_loaded(levels, is_present) {
        let results: Vec<Result<(), Fatal>> = std::thread::scope(|scope| {
            let loads: Vec<_> = level.iter().map(|path| scope.spawn(|| load_one(&dir, path))).collect();
            loads
                .into_iter()
                .map(|l| l.join().unwrap_or_else(|_| Err(Fatal("a module loader panicked".into()))))
                .collect()
        });
        results.into_iter().collect::<Result<(), Fatal>>()?;
    }
    Ok(())
}

/// `levels` without the modules the kernel already has (`present`), such
/// as the boot's transport modules that the plan's modules depend on too:
/// inserting a loaded module again costs a whole load before the kernel
/// answers EEXIST (virtio_ring: ~28 ms under TCG).
fn not_loaded(levels: Vec<Vec<String>>, present: impl Fn(&str) -> bool) -> Vec<Vec<String>> {
    levels
        .into_iter()
        .map(|level| level.into_iter().filter(|path| !present(&module_name(path))).collect::<Vec<_>>())
        .filter(|level| !level.is_empty())
        .collect()
}

/// Whether the kernel has the module `name`, loaded or built in with parameters.
fn is_present(name: &str) -> bool {
    std::path::Path::new("/sys/module").join(name).exists()
}

/// The module files (paths in `dep`, dependencies first) that give the
/// kernel the modules `names`. A name the kernel already has (`present`: its
/// `/sys/module` entry) or has built in (`builtin`: `modules.builtin`'s
/// paths) needs none; `Err` names the first that is none of these.
pub fn deps_to_load<S: AsRef<str>>(
    names: &[S],
    dep: &ModulesDep,
    builtin: &str,
    present: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let builtin: Vec<String> = builtin.lines().map(module_name).collect();
    let mut load = Vec::new();
    for name in names.iter().map(|n| n.as_ref().replace('-', "_")) {
        if present(&name) || (dep.find(&name).is_none() && builtin.contains(&name)) {
            continue;
        }
        if dep.find(&name).is_none() {
            return Err(name);
        }
        load.push(name);
    }
    Ok(dep.load_order(&load).0)
}

/// Loads the kernel modules a `--module` needs (`names`, from its
/// `.modinfo`), with their dependencies, from `/lib/modules/<release>`: by
/// now the kernel's whole modules directory (the initramfs holds only kdf's).
pub fn load_deps(release: &str, names: &[String]) -> Result<(), ModuleError> {
    if names.is_empty() {
        return Ok(());
    }
    let dir = dir(release);
    let fail = |error: String, log| Err(ModuleError { error, log });
    let read = |file: &str| match std::fs::read_to_string(format!("{dir}/{file}")) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("cannot read {dir}/{file}: {e}")),
    };
    let (dep, builtin) = match (read("modules.dep"), read("modules.builtin")) {
        (Ok(dep), Ok(builtin)) => (ModulesDep::parse(&dep), builtin),
        (Err(e), _) | (_, Err(e)) => return fail(e, Vec::new()),
    };
    let paths = match deps_to_load(names, &dep, &builtin, is_present) {
        Ok(paths) => paths,
        Err(name) => {
            return fail(
                format!(
                    "it needs the kernel module {name}, which is neither built in nor in {dir}/modules.dep"
                ),
                Vec::new(),
            )
        }
    };
    let log = LogSince::now();
    for path in paths {
        if let Err(e) = insert(&format!("{dir}/{path}")) {
            let name = module_name(&path);
            return fail(
                format!("it needs the kernel module {name}, which failed to load ({dir}/{path}): {e}"),
                log.lines(),
            );
        }
    }
    Ok(())
}

fn load_one(dir: &str, path: &str) -> Result<(), Fatal> {
    insert(&format!("{dir}/{path}"))
        .map_err(|e| Fatal(format!("module {} ({path}) failed to load: {e}", module_name(path))))
}

/// `finit_module`'s MODULE_INIT_COMPRESSED_FILE (Linux 5.17, with
/// CONFIG_MODULE_DECOMPRESS): the kernel decompresses the file itself. A
/// distribution's modules directory may hold `.ko.xz`/`.ko.zst` files.
const COMPRESSED_FILE: u32 = 4;

fn insert(path: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let flags = match [".xz", ".zst", ".gz"].iter().any(|s| path.ends_with(s)) {
        true => ModuleInitFlags::from_bits_retain(COMPRESSED_FILE),
        false => ModuleInitFlags::empty(),
    };
    match finit_module(&file, c"", flags) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.desc().to_string()),
    }
}

/// Why a `--module` could not be loaded or unloaded, with the kernel's lines.
#[derive(Debug)]
pub struct ModuleError {
    pub error: String,
    pub log: Vec<String>,
}

/// The kernel's log records written from now on, text only.
struct LogSince(Option<File>);

impl LogSince {
    fn now() -> LogSince {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok();
        // SEEK_END on /dev/kmsg skips to the next record to be written.
        let file = file.filter(|f| {
            use std::os::fd::AsRawFd;
            nix::unistd::lseek(f.as_raw_fd(), 0, nix::unistd::Whence::SeekEnd).is_ok()
        });
        LogSince(file)
    }

    fn lines(self) -> Vec<String> {
        use std::io::Read;
        let Some(mut file) = self.0 else { return Vec::new() };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match file.read(&mut buf) {
                Ok(n) if crate::kmsg::is_kernel_record(&buf[..n]) => {
                    let record = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let text = record.split_once(';').map_or(record.as_str(), |(_, t)| t);
                    out.push(text.lines().next().unwrap_or_default().to_string());
                }
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(_) => return out,
            }
        }
    }
}

/// Loads a `--module` file with its parameters, in a child process: an Oops
/// in the module's init kills that process, where in PID 1 it would panic the
/// guest.
pub fn load_user(module: &kdf_proto::ModuleFile) -> Result<(), ModuleError> {
    use std::os::unix::ffi::OsStrExt;
    let fail = |error: String, log| Err(ModuleError { error, log });
    let Ok(path) = std::ffi::CString::new(std::ffi::OsStr::from_bytes(&module.path).as_bytes()) else {
        return fail("the path holds a NUL byte".into(), Vec::new());
    };
    let Ok(params) = std::ffi::CString::new(module.params.as_str()) else {
        return fail("the parameters hold a NUL byte".into(), Vec::new());
    };
    let log = LogSince::now();
    // SAFETY: the child makes only async-signal-safe system calls (open,
    // finit_module, _exit) on strings built before the fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // SAFETY: plain system calls on valid C strings; _exit never returns.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    libc::_exit(*libc::__errno_location());
                }
                if libc::syscall(libc::SYS_finit_module, fd, params.as_ptr(), 0) < 0 {
                    libc::_exit(*libc::__errno_location());
                }
                libc::_exit(0)
            }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            use nix::sys::wait::{waitpid, WaitStatus};
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(WaitStatus::Exited(_, errno)) => {
                    fail(Errno::from_raw(errno).desc().to_string(), log.lines())
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => fail(
                    format!("the loading process was killed ({sig}): the module's init crashed"),
                    log.lines(),
                ),
                other => fail(format!("unexpected wait status {other:?}"), log.lines()),
            }
        }
        Err(e) => fail(format!("cannot fork: {e}"), Vec::new()),
    }
}

/// Unloads a `--module`; one the command already removed is no error.
pub fn unload_user(name: &str) -> Result<(), ModuleError> {
    let log = LogSince::now();
    let Ok(cname) = std::ffi::CString::new(name) else { return Ok(()) };
    match nix::kmod::delete_module(&cname, nix::kmod::DeleteModuleFlags::O_NONBLOCK) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(ModuleError { error: e.desc().to_string(), log: log.lines() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines of the Debian 6.1 kernel's modules.dep.
    const DEP: &str = "\
kernel/fs/udf/udf.ko: kernel/lib/crc-itu-t.ko kernel/drivers/cdrom/cdrom.ko
kernel/lib/crc-itu-t.ko:
kernel/drivers/cdrom/cdrom.ko:
kernel/fs/fuse/fuse.ko:
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko.xz
kernel/lib/libcrc32c.ko.xz:
";
    const BUILTIN: &str = "kernel/lib/crc32.ko\nkernel/fs/ext4/ext4.ko\n";

    fn nothing_loaded(_: &str) -> bool {
        false
    }

    #[test]
    fn a_dependency_loads_with_its_own_dependencies_first() {
        let dep = ModulesDep::parse(DEP);
        assert_eq!(
            deps_to_load(&["crc-itu-t", "cdrom"], &dep, BUILTIN, nothing_loaded).unwrap(),
            ["kernel/lib/crc-itu-t.ko", "kernel/drivers/cdrom/cdrom.ko"]
        );
        assert_eq!(
            deps_to_load(&["xfs"], &dep, BUILTIN, nothing_loaded).unwrap(),
            ["kernel/lib/libcrc32c.ko.xz", "kernel/fs/xfs/xfs.ko"]
        );
    }

    #[test]
    fn loaded_and_built_in_dependencies_need_no_file() {
        let dep = ModulesDep::parse(DEP);
        let loaded = |n: &str| n == "fuse" || n == "crc_itu_t";
        assert_eq!(
            deps_to_load(&["fuse", "crc32", "ext4", "crc-itu-t", "cdrom"], &dep, BUILTIN, loaded).unwrap(),
            ["kernel/drivers/cdrom/cdrom.ko"]
        );
        assert!(deps_to_load::<&str>(&[], &dep, "", nothing_loaded).unwrap().is_empty());
    }

    #[test]
    fn a_dependency_that_is_nowhere_is_named() {
        let dep = ModulesDep::parse(DEP);
        assert_eq!(deps_to_load(&["cdrom", "no-such"], &dep, BUILTIN, nothing_loaded), Err("no_such".into()));
        // Without a modules directory only what the kernel has will do.
        let none = ModulesDep::default();
        assert_eq!(deps_to_load(&["cdrom"], &none, "", nothing_loaded), Err("cdrom".into()));
        assert!(deps_to_load(&["cdrom"], &none, "", |n| n == "cdrom").unwrap().is_empty());
    }

    #[test]
    fn modules_the_kernel_has_are_not_loaded_again() {
        let dep = ModulesDep::parse(DEP);
        let (levels, _) = dep.load_levels(&["udf", "xfs"]);
        let loaded = |n: &str| n == "crc_itu_t" || n == "libcrc32c";
        assert_eq!(
            not_loaded(levels.clone(), loaded),
            [
                vec!["kernel/drivers/cdrom/cdrom.ko".to_string()],
                vec!["kernel/fs/udf/udf.ko".into(), "kernel/fs/xfs/xfs.ko".into()]
            ]
        );
        // A level left empty goes: the next one starts at once.
        assert_eq!(not_loaded(levels, |n| n != "udf"), [vec!["kernel/fs/udf/udf.ko".to_string()]]);
    }
}
