//! Refusing, before boot, a command that cannot run in a `--root`: not found
//! with the guest's `PATH`, an ELF built for another machine, or an
//! interpreter (an ELF's PT_INTERP loader, a script's `#!`) the root lacks.
//! Booting first would only end in "not found" from the guest's execve.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::elf::{self, Elf};
use crate::shares::view::View;

/// How deep `#!` interpreters may nest (the kernel's BINPRM_MAX_RECURSION).
const MAX_NESTING: usize = 4;

/// Why the command cannot run in the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a path and in no directory of `PATH`, or a path that is not there.
    NotFound { path_var: String },
    /// An ELF for another machine (`e_machine`).
    WrongMachine { file: PathBuf, machine: u16, guest: Arch },
    /// The loader an ELF names, or a script's interpreter, is missing.
    NoInterpreter { file: PathBuf, interpreter: PathBuf },
}

impl Refusal {
    /// The exit status the guest's execve would have led to: 127 for what is
    /// missing (ENOENT), 126 for what cannot execute (ENOEXEC).
    pub fn status(&self) -> i32 {
        match self {
            Refusal::WrongMachine { .. } => 126,
            Refusal::NotFound { .. } | Refusal::NoInterpreter { .. } => 127,
        }
    }

    /// Why, completing "cannot run CMD in --root DIR: ".
    pub fn reason(&self) -> String {
        match self {
            Refusal::NotFound { path_var } => format!("it is not in the root (PATH={path_var})"),
            Refusal::WrongMachine { file, machine, guest } => format!(
                "{} is an ELF for {} and the guest is {guest}",
                file.display(),
                elf::machine_name(*machine).map(String::from).unwrap_or_else(|| format!("machine {machine}"))
            ),
            Refusal::NoInterpreter { file, interpreter } => {
                format!("{} needs {}, which the root lacks", file.display(), interpreter.display())
            }
        }
    }

    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::NotFound { .. } => "install it in the root, or give its path inside the root",
            Refusal::WrongMachine { .. } => "use a root (and command) built for the guest's architecture",
            Refusal::NoInterpreter { .. } => {
                "install its loader or interpreter in the root (its libc, its shell), or use a static binary"
            }
        }
    }
}

/// The guest path of `argv0` as execvp(3) finds it: a name with a `/` is a
/// path (relative to `cwd`), anything else is looked up in `path_var`.
pub fn find(argv0: &[u8], path_var: &[u8], cwd: &Path, view: &View) -> Option<PathBuf> {
    let name = Path::new(OsStr::from_bytes(argv0));
    if argv0.contains(&b'/') {
        let path = cwd.join(name);
        return view.host_path(&path).filter(|h| h.is_file()).map(|_| path);
    }
    path_candidates(name, path_var, cwd)
        .find(|p| view.host_path(p).is_some_and(|h| h.metadata().is_ok_and(|m| runnable(&m))))
}

/// The guest paths execvp(3) tries for a `name` without a `/`, in order:
/// each `PATH` entry, relative ones (and the empty one) from `cwd`.
pub fn path_candidates<'a>(
    name: &'a Path,
    path_var: &'a [u8],
    cwd: &'a Path,
) -> impl Iterator<Item = PathBuf> + 'a {
    path_var.split(|&b| b == b':').map(move |dir| cwd.join(OsStr::from_bytes(dir)).join(name))
}

/// A regular file with an execute bit: what execvp(3) runs rather than skips.
pub fn runnable(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

/// Checks that `argv0` can start in the guest `view` shows.
pub fn check(argv0: &[u8], path_var: &[u8], cwd: &Path, view: &View, guest: Arch) -> Result<(), Refusal> {
    let not_found = || Refusal::NotFound { path_var: String::from_utf8_lossy(path_var).into_owned() };
    let mut file = find(argv0, path_var, cwd, view).ok_or_else(not_found)?;
    for _ in 0..MAX_NESTING {
        // A file kdf cannot read (or a guest tmpfs path) is left to the guest.
        let Some(head) = view.host_path(&file).and_then(|h| read_head(&h)) else { return Ok(()) };
        let interpreter = match interpreter_of(&head, guest) {
            Ok(Some(i)) => cwd.join(OsStr::from_bytes(&i)),
            Ok(None) => return Ok(()),
            Err(machine) => return Err(Refusal::WrongMachine { file, machine, guest }),
        };
        if !view.host_path(&interpreter).is_some_and(|h| h.is_file()) {
            return Err(Refusal::NoInterpreter { file, interpreter });
        }
        file = interpreter;
    }
    Ok(())
}

/// Machines a kernel of `arch` runs: its own, and the 32-bit ones its
/// compat layer takes (IA32 emulation, arm64's AArch32).
fn guest_machines(arch: Arch) -> [u16; 2] {
    const EM_ARM: u16 = 40;
    match arch {
        Arch::X86_64 => [elf::EM_X86_64, elf::EM_386],
        Arch::Arm64 => [elf::EM_AARCH64, EM_ARM],
    }
}

/// What a file needs to start: `Ok(Some(interpreter))` (an ELF's PT_INTERP, a
/// script's `#!`), `Ok(None)` (nothing, or not for kdf to judge), or
/// `Err(machine)`: an ELF for another machine.
pub fn interpreter_of(head: &[u8], arch: Arch) -> Result<Option<Vec<u8>>, u16> {
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let word = line.split(|b| b.is_ascii_whitespace()).find(|w| !w.is_empty());
        return Ok(word.map(<[u8]>::to_vec));
    }
    let Ok(elf) = Elf::parse(head) else { return Ok(None) };
    if !guest_machines(arch).contains(&elf.machine) {
        return Err(elf.machine);
    }
    Ok(elf.interpreter().ok().flatten().filter(|i| !i.is_empty()).map(<[u8]>::to_vec))
}

/// The start of a file: enough for its `#!` line or ELF program headers
/// (which sit right after the ELF header in every linker's output).
fn read_head(path: &Path) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    std::fs::File::open(path).ok()?.take(1 << 20).read_to_end(&mut head).ok()?;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::build;
    use crate::elf::{Class, Endian};
    use crate::shares::ShareSpec;

    const PT_INTERP: u32 = 3;

    fn write(root: &Path, path: &str, bytes: &[u8], mode: u32) {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A root with a static shell, a dynamic program and its loader, a
    /// dynamic program without one, an aarch64 program and scripts.
    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let x86 = |interp: &[u8]| {
            let segs: Vec<(u32, &[u8])> = if interp.is_empty() { vec![] } else { vec![(PT_INTERP, interp)] };
            build(Class::Elf64, Endian::Little, elf::EM_X86_64, &segs, &[])
        };
        write(r, "bin/busybox", &x86(b""), 0o755);
        std::os::unix::fs::symlink("/bin/busybox", r.join("bin/sh")).unwrap();
        write(r, "lib/ld.so", &x86(b""), 0o755);
        write(r, "usr/bin/dyn", &x86(b"/lib/ld.so\0"), 0o755);
        write(r, "usr/bin/noloader", &x86(b"/lib64/ld-linux-x86-64.so.2\0"), 0o755);
        write(r, "usr/bin/arm", &build(Class::Elf64, Endian::Little, 183, &[], &[]), 0o755);
        write(r, "usr/bin/script", b"#!/bin/sh -e\necho hi\n", 0o755);
        write(r, "usr/bin/bashscript", b"#! /bin/bash\necho hi\n", 0o755);
        write(r, "usr/bin/data", b"not executable", 0o644);
        dir
    }

    fn run(dir: &Path, argv0: &str) -> Result<(), Refusal> {
        let shares = [ShareSpec { guest: "/".into(), ..ShareSpec::same_path(dir.to_path_buf(), true) }];
        let view = View::new(&shares);
        check(argv0.as_bytes(), b"/usr/local/bin:/usr/bin:/bin", Path::new("/"), &view, Arch::X86_64)
    }

    #[test]
    fn commands_the_root_can_run_pass() {
        let dir = root();
        for ok in ["sh", "/bin/sh", "busybox", "dyn", "script", "/usr/bin/dyn"] {
            assert_eq!(run(dir.path(), ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn missing_foreign_and_loaderless_commands_are_refused() {
        let dir = root();
        let nf = run(dir.path(), "bash").unwrap_err();
        assert!(matches!(nf, Refusal::NotFound { .. }) && nf.status() == 127, "{nf:?}");
        assert!(nf.reason().contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{}", nf.reason());
        assert!(matches!(run(dir.path(), "/bin/bash"), Err(Refusal::NotFound { .. })));
        assert!(matches!(run(dir.path(), "data"), Err(Refusal::NotFound { .. })), "not executable");
        let arm = run(dir.path(), "arm").unwrap_err();
        assert_eq!(arm.status(), 126);
        assert!(arm.reason().contains("/usr/bin/arm is an ELF for aarch64"), "{}", arm.reason());
        let loader = run(dir.path(), "noloader").unwrap_err();
        assert_eq!(
            loader,
            Refusal::NoInterpreter {
                file: "/usr/bin/noloader".into(),
                interpreter: "/lib64/ld-linux-x86-64.so.2".into()
            }
        );
        let script = run(dir.path(), "bashscript").unwrap_err();
        assert!(
            matches!(script, Refusal::NoInterpreter { ref interpreter, .. } if interpreter == Path::new("/bin/bash"))
        );
    }

    #[test]
    fn interpreters_of_scripts_and_elves() {
        assert_eq!(interpreter_of(b"#!/bin/sh -e\n", Arch::X86_64), Ok(Some(b"/bin/sh".to_vec())));
        assert_eq!(interpreter_of(b"#!\n", Arch::X86_64), Ok(None));
        assert_eq!(interpreter_of(b"plain text", Arch::X86_64), Ok(None));
        let arm = build(Class::Elf64, Endian::Little, 183, &[], &[]);
        assert_eq!(interpreter_of(&arm, Arch::X86_64), Err(183));
        assert_eq!(interpreter_of(&arm, Arch::Arm64), Ok(None), "a static aarch64 binary");
        let x86 = build(Class::Elf64, Endian::Little, elf::EM_X86_64, &[], &[]);
        assert_eq!(interpreter_of(&x86, Arch::Arm64), Err(elf::EM_X86_64));
        let i386 =
            build(Class::Elf32, Endian::Little, elf::EM_386, &[(PT_INTERP, b"/lib/ld-linux.so.2\0")], &[]);
        assert_eq!(interpreter_of(&i386, Arch::X86_64), Ok(Some(b"/lib/ld-linux.so.2".to_vec())));
    }
}
