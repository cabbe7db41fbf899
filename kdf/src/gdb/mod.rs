//! `kdf gdb`: gdb attached to the VM started (`kdf run -d`) from this
//! directory, with the vmlinux, the kernel's gdb scripts, sources, module
//! symbols (`lx-symbols-runtime`) and a breakpoint on panic. Finds the run
//! ([`target`]) and the kernel's files ([`kernel_files`]), writes the init
//! file ([`init`]), waits for the stub ([`stub`]) and becomes gdb.

mod init;
mod kernel_files;
mod stub;
mod target;

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::arch::Arch;
use crate::cache;
use crate::runs::{self, Record};
use crate::tools;

/// What `kdf gdb` was asked (the CLI's plain form).
#[derive(Debug, Clone)]
pub struct Options {
    pub kernel: Option<PathBuf>,
    pub module_dirs: Vec<PathBuf>,
    pub port: Option<u16>,
    pub pid: Option<u32>,
    pub break_on_warn: bool,
    pub wait: Duration,
    pub print_port: bool,
    pub gdb_args: Vec<OsString>,
}

pub fn run(o: &Options) -> Result<i32> {
    let deadline = Instant::now() + o.wait;
    // Found now, used (or its error shown) once the guest's architecture is
    // known; with no gdb at all, said before any run is looked for.
    let host_gdb = match (o.print_port, tools::gdb()) {
        (true, _) => None,
        (false, Err(e)) if tools::gdb_multiarch().is_none() => return Err(e),
        (false, found) => Some(found),
    };
    let target = target::find(runs::live, &runs::this_dir()?, o.pid, o.port, deadline)?;
    let Some(host_gdb) = host_gdb else {
        println!("{}", target.port);
        return Ok(0);
    };
    let vmlinux = kernel_files::vmlinux(o.kernel.as_deref(), target.record.as_ref())?;
    let gdb = match guest_arch(target.record.as_ref(), &vmlinux) {
        Some(arch) if Arch::host() != Some(arch) => tools::gdb_for(arch)?,
        _ => host_gdb?,
    };
    let files = kernel_files::around(&vmlinux)?;
    let init = write(&init_for(o, &target.record, &files, target.port))?;
    // Last: the probe stops the VM, and gdb must follow at once.
    stub::wait(target.port, deadline)?;
    let mut cmd = Command::new(&gdb);
    cmd.arg("-q").arg("-x").arg(format!("/dev/fd/{}", init.as_raw_fd())).args(&o.gdb_args);
    let err = cmd.exec();
    Err(err).with_context(|| format!("failed to start {}", gdb.display()))
}

/// The guest's architecture: the run's record says, else the vmlinux's ELF
/// machine (`--port` without a record).
fn guest_arch(record: Option<&Record>, vmlinux: &Path) -> Option<Arch> {
    if let Some(arch) = record.and_then(|r| r.arch.as_deref()).and_then(Arch::parse) {
        return Some(arch);
    }
    let mut head = [0u8; 64];
    let mut file = File::open(vmlinux).ok()?;
    std::io::Read::read_exact(&mut file, &mut head).ok()?;
    crate::elf::Elf::parse(&head).ok().and_then(|e| Arch::of_elf_machine(e.machine))
}

fn init_for(
    o: &Options,
    record: &Option<Record>,
    files: &kernel_files::KernelFiles,
    port: u16,
) -> init::Init {
    let module_files = record.as_ref().map(|r| r.modules.clone()).unwrap_or_default();
    let mut module_dirs: Vec<PathBuf> =
        module_files.iter().filter_map(|(_, f)| f.parent().map(Path::to_path_buf)).collect();
    module_dirs.extend(o.module_dirs.iter().map(|d| d.canonicalize().unwrap_or_else(|_| d.clone())));
    module_dirs.dedup();
    let title = match record {
        Some(r) => format!("the kdf run from {}: {}", r.cwd.display(), r.describe()),
        None => format!("the gdb stub on 127.0.0.1:{port}"),
    };
    init::Init {
        title,
        vmlinux: files.vmlinux.clone(),
        kernel_scripts: files.scripts.clone(),
        python: PathBuf::new(),
        sources: files.source.iter().cloned().chain(module_dirs.iter().cloned()).collect(),
        module_files,
        module_dirs,
        orders: files.order.iter().cloned().collect(),
        port,
        break_on_warn: o.break_on_warn,
    }
}

/// Writes kdf's Python into the cache (named by its contents) and the init
/// file into an unlinked file that gdb inherits (`-x /dev/fd/N`): nothing is
/// left behind once gdb, which kdf becomes, exits.
fn write(init: &init::Init) -> Result<File> {
    let dir = cache::subdir("gdb")?;
    let python = dir.join(format!("kdf-{}.py", cache::digest([init::PYTHON])));
    if !python.is_file() {
        cache::write_atomic(&python, init::PYTHON.as_bytes())?;
    }
    let text = init::text(&init::Init { python, ..init.clone() });
    let mut file = tempfile::tempfile().context("failed to create a temporary file")?;
    file.write_all(text.as_bytes()).context("failed to write gdb's init file")?;
    // Kept open across exec, for gdb to read.
    fcntl(file.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .context("failed to pass gdb its init file")?;
    Ok(file)
}
