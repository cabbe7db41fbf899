//! `kdf run`: resolve the command line into a [`Prepared`] run (kernel,
//! initramfs, shares, plan, accelerator), then print it (`--dry-run`) or
//! execute it ([`session`]).

mod channel;
mod console;
mod session;
mod stdin;
mod terminal;
mod timings;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use kdf_proto::{Plan, ToHost, User, Winsize, PROTOCOL_VERSION};

use crate::cli::{AccelArg, MachineArg, RunArgs, TtyMode};
use crate::errors::hinted;
use crate::initramfs;
use crate::kernel::{self, config, Kernel};
use crate::plan;
use crate::shares::{self, ShareSpec, Transport};
use crate::vm::accel::{self, Decision};
use crate::vm::qemu::{self, Accel, Machine, ShareDevice, VmSpec};
use crate::vm::virtiofsd::{CacheMode, Sandbox, Virtiofsd};

/// What the main loop hears from the threads of a run.
#[derive(Debug)]
pub enum Event {
    Guest(ToHost),
    /// The channel ended (QEMU is gone) or broke.
    Closed(Option<String>),
    /// QEMU said KVM cannot run the guest.
    KvmFailure(String),
    /// The user typed the kill escape.
    Escape,
}

/// A run with everything resolved; executing it only starts processes.
#[derive(Debug)]
pub struct Prepared {
    pub kernel: Kernel,
    pub qemu: PathBuf,
    pub initramfs: PathBuf,
    pub accel: Decision,
    pub transport: Transport,
    pub virtiofsd: Option<PathBuf>,
    pub shares: Vec<ShareSpec>,
    pub plan: Plan,
    /// argv[0], for messages.
    pub program: String,
    /// `--cmdline` values (kdf's own arguments depend on the accelerator).
    pub cmdline: Vec<String>,
    pub debug: bool,
    pub machine: Machine,
    pub cpus: u32,
    pub memory_mib: u64,
    pub gdb_port: Option<u16>,
    pub qemu_extra: Vec<OsString>,
    pub tty: bool,
    pub timeout: Option<Duration>,
    pub boot_timeout: Option<Duration>,
    pub console_log: Option<PathBuf>,
    pub verbose: bool,
    pub timings: bool,
    /// The descriptor limit passed on to virtiofsd.
    pub nofile: u64,
    pub sandbox: Sandbox,
}

static RAW: AtomicBool = AtomicBool::new(false);

fn set_raw(raw: bool) {
    RAW.store(raw, Ordering::SeqCst);
}

/// One line on stderr; `\r\n` while the terminal is raw.
fn write_stderr_line(line: &str) {
    let end = if RAW.load(Ordering::SeqCst) { "\r\n" } else { "\n" };
    let _ = write!(std::io::stderr().lock(), "{line}{end}");
}

/// A `kdf:` line on stderr.
pub fn say(msg: &str) {
    write_stderr_line(&format!("kdf: {msg}"));
}

pub fn run(args: &RunArgs, started: Instant) -> Result<i32> {
    let p = prepare(args)?;
    if args.dry_run {
        print_dry_run(&p);
        return Ok(0);
    }
    session::execute(&p, started)
}

/// Finds a program on PATH or in the extra directories.
pub fn which(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn kernel_source(args: &crate::cli::KernelArgs) -> kernel::Source {
    match (&args.kernel, &args.release) {
        (Some(path), _) => kernel::Source::Path(path.clone()),
        (None, Some(r)) => kernel::Source::from_release(r),
        (None, None) => kernel::Source::Release(None),
    }
}

/// Resolves the kernel named by `--kernel`/`--release` (default: the newest installed).
pub fn resolve_kernel(args: &crate::cli::KernelArgs) -> Result<Kernel> {
    kernel::resolve(&kernel_source(args))
}

/// virtiofsd if installed, else 9p (with a notice), or 9p when asked.
fn transport(args: &RunArgs, kernel: &Kernel) -> (Transport, Option<PathBuf>) {
    let virtiofsd = std::env::var_os("KDF_VIRTIOFSD")
        .map(PathBuf::from)
        // Not /usr/lib/qemu/virtiofsd: QEMU's old C daemon takes other flags.
        .or_else(|| which("virtiofsd", &["/usr/libexec"]));
    if args.nine_p {
        return (Transport::NineP, None);
    }
    // Fall back to 9p for a kernel without virtiofs only if it has 9p; else
    // keep virtiofs so the check names the missing option.
    let only_9p =
        kernel.config.as_ref().is_some_and(|c| !c.enabled("CONFIG_VIRTIO_FS") && c.enabled("CONFIG_9P_FS"));
    match virtiofsd {
        Some(v) if !only_9p => (Transport::Virtiofs, Some(v)),
        Some(_) => {
            say("the kernel lacks CONFIG_VIRTIO_FS; sharing files over 9p");
            (Transport::NineP, None)
        }
        None => {
            say("virtiofsd not found; sharing files over 9p (slower). Install virtiofsd: scripts/setup.sh");
            (Transport::NineP, None)
        }
    }
}

/// q35 unless `--machine microvm` (no PCI, no firmware: ~0.2 s faster under
/// TCG). microvm is opt-in: without an HPET or ACPI PM timer the kernel
/// calibrates its TSC against the PIT alone, and on a loaded host that failed
/// and the guest hung in 4 of 4 parallel boots (Debian 6.1, TCG). Its devices
/// are found through ACPI when the kernel has it, else through the
/// `virtio_mmio.device=` arguments QEMU adds (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
fn machine(choice: MachineArg, kernel: &Kernel) -> Machine {
    let acpi = kernel.config.as_ref().is_some_and(|c| c.builtin("CONFIG_ACPI"));
    match choice {
        MachineArg::Q35 => Machine::Q35,
        MachineArg::Microvm => Machine::Microvm { acpi },
    }
}

/// Options the kernel must have for this run, named before anything starts.
fn check_kernel(kernel: &Kernel, transport: Transport, machine: Machine) -> Result<()> {
    let Some(config) = &kernel.config else { return Ok(()) };
    let bus = match machine {
        Machine::Q35 => ("CONFIG_VIRTIO_PCI", "no virtio devices on q35"),
        Machine::Microvm { .. } => ("CONFIG_VIRTIO_MMIO", "no virtio devices on microvm"),
    };
    let files: &[(&str, &str)] = match transport {
        Transport::Virtiofs => &[(
            "CONFIG_VIRTIO_FS",
            "it cannot mount the host's files; nor has it CONFIG_9P_FS for the 9p fallback",
        )],
        Transport::NineP => {
            &[("CONFIG_9P_FS", "no 9p filesystem"), ("CONFIG_NET_9P_VIRTIO", "no 9p transport over virtio")]
        }
    };
    let needed: Vec<(&str, &str)> = std::iter::once(bus).chain(files.iter().copied()).collect();
    if let Some((name, why)) = config::missing(config, &needed) {
        return Err(hinted(
            format!("the kernel {} lacks {name} ({why})", kernel.image.display()),
            format!("rebuild it with {name}=y (kdf kernel config adds every option kdf needs)"),
        ));
    }
    let modular = [bus.0, "CONFIG_VIRTIO_CONSOLE", "CONFIG_VIRTIO_FS", "CONFIG_9P_FS"]
        .into_iter()
        .find(|o| config.module(o));
    if let (Some(option), None) = (modular, &kernel.modules_dir) {
        return Err(hinted(
            format!("the kernel has {option}=m but kdf cannot find its modules"),
            "install its modules under /lib/modules/<release>, or pass its build directory with --kernel",
        ));
    }
    Ok(())
}

/// The working directory, refused where it cannot be shared.
fn working_dir() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| {
        hinted(
            format!("cannot use the current directory: {e}"),
            "it may have been deleted; cd to an existing directory",
        )
    })?;
    let cwd = shares::check_host_dir(&cwd, "the working directory")?;
    if nix::unistd::access(&cwd, nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK).is_err() {
        return Err(hinted(
            format!("cannot share the working directory {}: it is not readable", cwd.display()),
            "cd to a directory you can read",
        ));
    }
    Ok(cwd)
}

fn share_list(args: &RunArgs, kernel: &Kernel, cwd: &Path) -> Result<Vec<ShareSpec>> {
    let mut rest = Vec::new();
    if cwd != Path::new("/") {
        rest.push(ShareSpec::same_path(cwd.to_path_buf(), false));
    }
    if let Some(modules) = &kernel.guest_modules {
        let target = shares::check_host_dir(Path::new("/lib/modules"), "/lib/modules")?;
        let host = shares::check_host_dir(modules, "the kernel's modules")?;
        rest.push(ShareSpec { host, guest: target, readonly: true, overlay: false, cache: CacheMode::Auto });
    }
    for (paths, readonly, what) in [(&args.rw, false, "--rw"), (&args.ro, true, "--ro")] {
        for p in paths {
            rest.push(ShareSpec::same_path(shares::check_host_dir(p, what)?, readonly));
        }
    }
    for v in &args.virtiofs {
        let host = shares::check_host_dir(&v.host, "--virtiofs")?;
        let guest = if v.guest == v.host { host.clone() } else { v.guest.clone() };
        rest.push(ShareSpec { host, guest, ..v.clone() });
    }
    Ok(shares::order(ShareSpec::same_path("/".into(), true), rest))
}

fn user(args: &RunArgs) -> Option<User> {
    args.user.then(|| User {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        groups: nix::unistd::getgroups().unwrap_or_default().iter().map(|g| g.as_raw()).collect(),
    })
}

fn shell(args: &RunArgs) -> PathBuf {
    args.shell.clone().unwrap_or_else(|| {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let uid = if args.user { nix::unistd::getuid().as_raw() } else { 0 };
        plan::passwd_shell(&passwd, uid).filter(|s| s.exists()).unwrap_or_else(|| "/bin/sh".into())
    })
}

fn tty_size(args: &RunArgs) -> Option<Winsize> {
    let tty = match args.tty {
        TtyMode::Always => true,
        TtyMode::Never => false,
        TtyMode::Auto => std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    };
    tty.then(|| terminal::size().unwrap_or(Winsize { rows: 24, cols: 80 }))
}

fn initramfs_for(args: &RunArgs, kernel: &Kernel) -> Result<PathBuf> {
    if let Some(path) = &args.initramfs {
        let head = std::fs::read(path).map_err(|e| {
            hinted(format!("cannot read --initramfs {}: {e}", path.display()), "check the path")
        })?;
        if !head.starts_with(b"070701") && !head.starts_with(b"070702") {
            return Err(hinted(
                format!("--initramfs {} is not an uncompressed newc cpio archive", path.display()),
                "build one with `kdf build initramfs -o FILE`",
            ));
        }
        return Ok(path.clone());
    }
    let init = initramfs::init_binary::locate(args.kernel.init.as_deref())?;
    initramfs::cached(kernel, &init)
}

fn guest_modules(transport: Transport, shares: &[ShareSpec]) -> Vec<String> {
    let mut m: Vec<String> = match transport {
        Transport::Virtiofs => vec!["virtiofs".into()],
        Transport::NineP => vec!["9pnet_virtio".into(), "9p".into()],
    };
    if shares.iter().any(|s| s.overlay) {
        m.push("overlay".into());
    }
    m.push("configfs".into());
    m
}

pub fn prepare(args: &RunArgs) -> Result<Prepared> {
    let kernel = resolve_kernel(&args.kernel)?;
    let qemu = std::env::var_os("KDF_QEMU")
        .map(PathBuf::from)
        .or_else(|| which("qemu-system-x86_64", &[]))
        .ok_or_else(|| {
        hinted(
            "QEMU is not installed (qemu-system-x86_64 not found on PATH)",
            "sudo apt install qemu-system-x86",
        )
    })?;
    let (transport, virtiofsd) = transport(args, &kernel);
    let machine = machine(args.machine, &kernel);
    check_kernel(&kernel, transport, machine)?;
    let cwd = working_dir()?;
    let shares = share_list(args, &kernel, &cwd)?;
    let workdir = match &args.chdir {
        Some(dir) => cwd.join(dir),
        None => cwd.clone(),
    };
    let nix_bins: Vec<PathBuf> = if args.nix.is_empty() {
        Vec::new()
    } else {
        let installables: Vec<String> = args.nix.iter().map(|p| format!("nixpkgs#{p}")).collect();
        crate::nix::build(&installables)?.into_iter().map(|p| p.join("bin")).collect()
    };
    let argv = plan::argv(&args.command, args.script.as_deref(), &shell(args));
    let program = String::from_utf8_lossy(&argv[0]).into_owned();
    let tty = tty_size(args);
    let accel = accel::decide(args.accel.map(|a| match a {
        AccelArg::Kvm => Accel::Kvm,
        AccelArg::Tcg => Accel::Tcg,
    }))?;
    let initramfs = initramfs_for(args, &kernel)?;
    use std::os::unix::ffi::OsStrExt;
    let plan = Plan {
        version: PROTOCOL_VERSION,
        argv,
        env: plan::environment(|k| std::env::var_os(k), &nix_bins, &args.env),
        cwd: workdir.as_os_str().as_bytes().to_vec(),
        user: user(args),
        shares: shares::to_proto(&shares, transport),
        modules: guest_modules(transport, &shares),
        hostname: "kdf".into(),
        clock_ns: 0,
        tty,
        stdin: !args.no_stdin,
    };
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard.min(1 << 20))
        .unwrap_or(1024);
    Ok(Prepared {
        cmdline: args.cmdline.clone(),
        debug: args.debug.is_some(),
        kernel,
        qemu,
        initramfs,
        accel,
        transport,
        virtiofsd,
        shares,
        plan,
        program,
        machine,
        cpus: args.cpus,
        memory_mib: args.memory,
        gdb_port: args.debug,
        qemu_extra: args.qemu_args.clone(),
        tty: tty.is_some(),
        timeout: args.timeout,
        boot_timeout: args.boot_timeout,
        console_log: args.console_log.clone(),
        verbose: args.verbose,
        timings: args.timings,
        nofile,
        sandbox: sandbox(args.verbose),
    })
}

/// virtiofsd sandboxes itself in namespaces where the host allows: as root,
/// or where unprivileged user namespaces work (probed by creating one).
fn sandbox(verbose: bool) -> Sandbox {
    if nix::unistd::getuid().is_root() {
        return Sandbox::Namespace;
    }
    let mut probe = std::process::Command::new("true");
    // SAFETY: unshare(2) is async-signal-safe; it runs in the forked child only.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut probe, || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(std::io::Error::from)
        });
    }
    match probe.status() {
        Ok(s) if s.success() => Sandbox::Namespace,
        _ => {
            if verbose {
                say("user namespaces are not available: virtiofsd runs without a sandbox");
            }
            Sandbox::None
        }
    }
}

pub fn virtiofsd_spec(p: &Prepared, binary: &Path, fd: RawFd, share: &ShareSpec) -> Virtiofsd {
    Virtiofsd {
        binary: binary.to_path_buf(),
        fd,
        shared_dir: share.host.clone(),
        // An overlay share is never written on the host.
        readonly: share.readonly || share.overlay,
        cache: share.cache,
        sandbox: p.sandbox,
        nofile: p.nofile,
    }
}

pub fn vm_spec(
    p: &Prepared,
    accel: Accel,
    console_fd: RawFd,
    channel_fd: RawFd,
    sockets: &[PathBuf],
) -> VmSpec {
    let shares = match p.transport {
        Transport::Virtiofs => sockets
            .iter()
            .enumerate()
            .map(|(i, s)| ShareDevice::Virtiofs { tag: format!("kdf{i}"), socket: s.clone() })
            .collect(),
        Transport::NineP => p
            .shares
            .iter()
            .enumerate()
            .map(|(i, s)| ShareDevice::NineP {
                tag: format!("kdf{i}"),
                path: s.host.clone(),
                readonly: s.readonly || s.overlay,
            })
            .collect(),
    };
    VmSpec {
        qemu: p.qemu.clone(),
        accel,
        cpus: p.cpus,
        memory_mib: p.memory_mib,
        machine: p.machine,
        firmware: if p.machine == Machine::Q35 { firmware(&p.kernel) } else { None },
        kernel: p.kernel.boot.clone(),
        initramfs: p.initramfs.clone(),
        cmdline: qemu::cmdline(p.verbose, p.debug, accel, p.machine, &p.cmdline),
        console_fd,
        channel_fd,
        shares,
        gdb_port: p.gdb_port,
        extra: p.qemu_extra.clone(),
    }
}

/// qboot boots faster than SeaBIOS (about 0.1-0.3 s under TCG), but leaves
/// interrupt routing to ACPI: a kernel without CONFIG_ACPI never sees its
/// virtio devices. Use it only when the kernel's config says ACPI is there.
fn firmware(kernel: &Kernel) -> Option<PathBuf> {
    let qboot = PathBuf::from("/usr/share/qemu/qboot.rom");
    let acpi = kernel.config.as_ref().is_some_and(|c| c.builtin("CONFIG_ACPI"));
    (acpi && qboot.is_file()).then_some(qboot)
}

/// Shell-quotes one argument for display.
fn quote(arg: &std::ffi::OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn print_dry_run(p: &Prepared) {
    let (console_fd, channel_fd) = (3, 4);
    let sockets: Vec<PathBuf> =
        (0..p.shares.len()).map(|i| PathBuf::from(format!("$RUNTIME_DIR/fs{i}.sock"))).collect();
    let mut out = std::io::stdout().lock();
    if p.transport == Transport::Virtiofs {
        if let Some(binary) = &p.virtiofsd {
            for (i, share) in p.shares.iter().enumerate() {
                let spec = virtiofsd_spec(p, binary, 5 + i as RawFd, share);
                let line: Vec<String> = crate::vm::virtiofsd::argv(&spec).iter().map(|a| quote(a)).collect();
                let _ = writeln!(
                    out,
                    "# virtiofsd for {} (listening on {})",
                    share.host.display(),
                    sockets[i].display()
                );
                let _ = writeln!(out, "{}", line.join(" "));
            }
        }
    }
    let spec = vm_spec(p, p.accel.accel, console_fd, channel_fd, &sockets);
    let line: Vec<String> = qemu::argv(&spec).iter().map(|a| quote(a)).collect();
    let _ = writeln!(out, "# QEMU (fd {console_fd}: console, fd {channel_fd}: kdf channel)");
    let _ = writeln!(out, "{}", line.join(" "));
}
