//! Loading kernel modules: from the initramfs or the kernel's module
//! directory, dependencies first, using the `modules.dep` next to them; and
//! the user's `--module` files, loaded in a child process and unloaded after
//! the command.

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
    for level in levels {
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

fn load_one(dir: &str, path: &str) -> Result<(), Fatal> {
    insert(&format!("{dir}/{path}"))
        .map_err(|e| Fatal(format!("module {} ({path}) failed to load: {e}", module_name(path))))
}

fn insert(path: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
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
