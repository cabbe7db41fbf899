//! Resolving `kdf run`'s command line into a [`Prepared`] run: the kernel and
//! the file QEMU boots, the initramfs, the files ([`super::files`]), the
//! network, the command ([`super::command`]), the plan and the accelerator.
//! Everything that probes the host happens here; executing a prepared run
//! only starts processes.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use kdf_proto::{Exec, ModuleFile, Plan, PROTOCOL_VERSION};

use super::hardware::{self, Hardware};
use super::verdict::KunitInterest;
use super::{command, files, guest, sandbox};
use crate::accel::Decision;
use crate::arch::Arch;
use crate::cli::{AccelArg, NetworkArg, RunArgs};
use crate::errors::{hinted, usage, usage_hinted};
use crate::initramfs;
use crate::kernel::choice::Choice;
use crate::kernel::{self, Kernel, Places};
use crate::module;
use crate::plan;
use crate::shares::view::View;
use crate::shares::{self, ShareSpec};
use crate::tools;
use crate::ui::say;
use crate::vm::network::{self, UserNet};
use crate::vm::qemu::{Accel, Machine};
use crate::vm::requirements::{self, Miss, Vm};
use crate::vm::virtiofsd::Sandbox;
use crate::vm::Transport;

/// A run with everything resolved.
#[derive(Debug)]
pub struct Prepared {
    pub kernel: Kernel,
    pub qemu: PathBuf,
    pub initramfs: PathBuf,
    pub accel: Decision,
    pub transport: Transport,
    pub virtiofsd: Option<PathBuf>,
    pub shares: Vec<ShareSpec>,
    /// `--network user`: QEMU's user network and its forwards.
    pub network: Option<UserNet>,
    pub plan: Plan,
    /// argv[0], for messages.
    pub program: String,
    /// `--cmdline` values (kdf's own arguments depend on the accelerator).
    pub cmdline: Vec<String>,
    /// Modules kdf-init loads before it reaches the host (`kdf.preload`).
    pub preload: Vec<String>,
    /// `-d`: the gdb stub.
    pub debug: Option<Debug>,
    /// The kernel's unstripped vmlinux, for `kdf gdb` (with `-d`).
    pub vmlinux: Option<PathBuf>,
    /// The `--module` files: (module name, host file), for `kdf gdb`.
    pub module_files: Vec<(String, PathBuf)>,
    pub machine: Machine,
    /// `-bios` on q35.
    pub firmware: Option<PathBuf>,
    pub cpus: u32,
    pub memory_mib: u64,
    /// `--disk`, `--numa`, `--vmcore`, `--qmp`.
    pub hw: Hardware,
    pub qemu_extra: Vec<OsString>,
    pub tty: bool,
    pub timeout: Option<Duration>,
    /// `--boot-timeout`, else the accelerator's default; none with `-d`
    /// unless given (a person at a debugger takes their time).
    pub boot_timeout: BootTimeout,
    pub console_log: Option<PathBuf>,
    /// `--result`: where the JSON outcome goes.
    pub result: Option<PathBuf>,
    /// `--ktap`: where KUnit's KTAP lines go.
    pub ktap: Option<PathBuf>,
    /// When the KUnit summary is shown.
    pub kunit: KunitInterest,
    pub verbose: bool,
    pub timings: bool,
    /// `--allow-splat` patterns.
    pub allow_splats: Vec<regex::Regex>,
    /// The descriptor limit passed on to virtiofsd.
    pub nofile: u64,
    pub sandbox: Sandbox,
    /// The host's TSC rate, given to TCG guests (`tsc.rs`).
    pub tsc_khz: Option<u32>,
    /// The guest's architecture (the kernel's).
    pub arch: Arch,
}

/// `-d[=PORT]` and `--debug-wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debug {
    /// The port kdf listens on; 0: a free one.
    pub port: u16,
    /// Stop the CPU at its first instruction (`--debug-wait`).
    pub wait: bool,
}

/// How long the guest may take to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTimeout {
    /// The accelerator's default.
    Default,
    Given(Duration),
    Off,
}

impl BootTimeout {
    pub fn of(given: Option<Duration>, debug: bool) -> BootTimeout {
        match (given, debug) {
            (Some(t), _) => BootTimeout::Given(t),
            (None, true) => BootTimeout::Off,
            (None, false) => BootTimeout::Default,
        }
    }
}

pub fn prepare(args: &RunArgs, choice: &Choice) -> Result<Prepared> {
    let given_root = files::root(args)?;
    let places = Places {
        modules_dir: args.kernel.modules_dir.clone(),
        root: given_root.as_ref().map(|r| r.dir.clone()),
    };
    let kernel = kernel::resolve(&choice.source, &places).map_err(|e| match &choice.hint {
        // No installed kernel either: the tree's own build is the way out.
        Some(_) => hinted(format!("{e:#}"), "build the kernel tree you are in and boot it: kdf run --build"),
        None => e,
    })?;
    let arch = guest::arch(args.kernel.arch, &kernel)?;
    let foreign = Arch::host() != Some(arch);
    // The host's `/` runs only on its own architecture: another one's guest
    // gets kdf's default root for it.
    let root = match given_root {
        Some(r) => Some(r),
        None if foreign => {
            Some(files::Root { dir: crate::root::default::dir(arch)?, mode: crate::root::Mode::Ro })
        }
        None => None,
    };
    let qemu = tools::qemu(arch)?;
    let (transport, virtiofsd) = transport(args, &kernel);
    // The probe forks a child and waits for it (2-6 ms): only a run with
    // virtiofsd needs its answer, and it runs beside the rest of the plan.
    let verbose = args.verbose;
    let sandbox = virtiofsd.is_some().then(|| std::thread::spawn(move || sandbox::choose(verbose)));
    let machine = guest::machine(arch, args.machine, kernel.config.as_ref(), !args.qemu_args.is_empty())?;
    let cwd = files::working_dir()?;
    let modules = module::prepare(&args.modules, kernel.release.as_deref(), arch)?;
    let network = network(args)?;
    let nix_bins: Vec<PathBuf> = if args.nix.is_empty() {
        Vec::new()
    } else {
        let installables: Vec<String> = args.nix.iter().map(|p| format!("nixpkgs#{p}")).collect();
        crate::nix::build(&installables)?.into_iter().map(|p| p.join("bin")).collect()
    };
    let binds: &[&str] = if network.is_some() { &[kdf_proto::RESOLV_CONF] } else { &[] };
    let staged = modules.as_ref().map(|(dir, _)| dir.as_path());
    // The host's PATH and shell directories a guest tmpfs would hide (NixOS's
    // /run/current-system); a --root brings its own.
    let command_dirs = match &root {
        None => command::host_dirs(&args.command, &nix_bins),
        Some(_) => Vec::new(),
    };
    let shares = files::share_list(args, &kernel, &cwd, staged, root.as_ref(), binds, &command_dirs)?;
    let hw = hardware::resolve(args, &kernel, &cwd)?;
    let vm = Vm {
        network: network.is_some(),
        disks: !hw.disks.is_empty(),
        numa: !hw.numa.nodes.is_empty(),
        ..Vm::plain(machine, transport, shares.iter().any(|s| s.overlay))
    };
    check_kernel(&kernel, &vm)?;
    let workdir = match &args.command.chdir {
        Some(dir) => cwd.join(dir),
        None => cwd.clone(),
    };
    let root_dir = root.as_ref().map(|r| r.dir.as_path());
    let command = command::prepare(&args.command, &View::new(&shares), root_dir, &workdir, &nix_bins, arch)?;
    let exec = Exec {
        argv: command.argv,
        program: command.exec_path,
        env: command.env,
        cwd: workdir.as_os_str().as_bytes().to_vec(),
        user: plan::user(args.command.user),
        tty: plan::tty_size(args.command.tty),
        stdin: !args.command.no_stdin,
    };
    let tty = exec.tty.is_some();
    let accel = guest::accel(
        foreign,
        args.accel.map(|a| match a {
            AccelArg::Kvm => Accel::Kvm,
            AccelArg::Tcg => Accel::Tcg,
        }),
    )?;
    let initramfs = initramfs_for(args, &kernel)?;
    let kunit = KunitInterest {
        asked: args.ktap.is_some() || args.kunit_filter.is_some(),
        modules: modules.iter().flat_map(|(_, m)| m).map(|m| m.name.clone()).collect(),
    };
    let plan = Plan {
        version: PROTOCOL_VERSION,
        command: exec,
        shares: shares::to_proto(&shares, transport),
        modules: requirements::plan_modules(&vm),
        hostname: "kdf".into(),
        clock_ns: 0,
        user_modules: modules
            .iter()
            .flat_map(|(_, all)| all.iter().map(move |m| (m, all)))
            .map(|(m, all)| ModuleFile {
                name: m.name.clone(),
                path: module::guest_path(m).into_bytes(),
                params: m.params.clone(),
                depends: module::kernel_deps(m, all),
            })
            .collect(),
        unload: !args.no_unload,
        kmsg: true,
        network: network.as_ref().map(|_| network::guest_config()),
    };
    let debug = match (args.debug, args.debug_wait) {
        (None, false) => None,
        (port, wait) => Some(Debug { port: port.flatten().unwrap_or(0), wait }),
    };
    let module_files = modules
        .iter()
        .flat_map(|(_, m)| m)
        .map(|m| (m.name.clone(), m.source.canonicalize().unwrap_or_else(|_| cwd.join(&m.source))))
        .collect();
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard.min(1 << 20))
        .unwrap_or(1024);
    Ok(Prepared {
        cmdline: [hardware::kernel_args(&hw, &kernel), kernel_args(args, &kernel)].concat(),
        hw,
        preload: requirements::boot_modules(&vm),
        debug,
        vmlinux: debug.and_then(|_| kernel::vmlinux::find(&kernel.image, kernel.release.as_deref())),
        module_files,
        firmware: firmware(&kernel),
        kernel,
        qemu,
        initramfs,
        accel,
        transport,
        virtiofsd,
        shares,
        network,
        plan,
        program: command.program,
        machine,
        cpus: args.cpus,
        memory_mib: args.memory,
        qemu_extra: args.qemu_args.clone(),
        tty,
        timeout: args.timeout,
        boot_timeout: BootTimeout::of(args.boot_timeout, debug.is_some()),
        console_log: args.console_log.clone(),
        result: args.result.clone(),
        ktap: args.ktap.clone(),
        kunit,
        verbose: args.verbose,
        timings: args.timings,
        nofile,
        // A probe that panicked (it does not) leaves virtiofsd unsandboxed.
        sandbox: sandbox.map_or(Sandbox::None, |probe| probe.join().unwrap_or(Sandbox::None)),
        tsc_khz: if arch == Arch::X86_64 { crate::tsc::host_khz() } else { None },
        arch,
        allow_splats: args
            .allow_splats
            .iter()
            .map(|r| regex::Regex::new(r).map_err(|e| usage(format!("--allow-splat {r:?}: {e}"))))
            .collect::<Result<_>>()?,
    })
}

/// virtiofsd if installed, else 9p (with a notice), or 9p when asked.
fn transport(args: &RunArgs, kernel: &Kernel) -> (Transport, Option<PathBuf>) {
    if args.nine_p {
        return (Transport::NineP, None);
    }
    let virtiofsd = tools::virtiofsd();
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

/// The options this run needs (the requirement table), named before anything starts.
fn check_kernel(kernel: &Kernel, vm: &Vm) -> Result<()> {
    let Some(config) = &kernel.config else { return Ok(()) };
    match requirements::check(config, vm, kernel.modules_dir.is_some()) {
        Ok(()) => Ok(()),
        Err(Miss::Lacks(r)) if r.strict => Err(hinted(
            format!("the kernel {} lacks {} ({})", kernel.image.display(), r.option, r.why),
            format!("rebuild it with {}=y (kdf kernel config adds every option kdf needs)", r.option),
        )),
        Err(Miss::Lacks(r)) => Err(hinted(
            format!("the kernel {} lacks {} ({})", kernel.image.display(), r.option, r.why),
            format!(
                "rebuild it with `kdf kernel config --set {}=y` (it names what that depends on), \
                 or boot a kernel that has it (e.g. your distribution's: --release)",
                r.option
            ),
        )),
        Err(Miss::NoModules(r)) => Err(hinted(
            format!("the kernel has {}=m but kdf cannot find its modules", r.option),
            "install its modules under /lib/modules/<release>, unpack them next to the image \
             (<image dir>/../lib/modules/<release>, indexed with `depmod -b <that root> <release>`), \
             pass them with --modules-dir, or pass the kernel's build directory with --kernel",
        )),
    }
}

/// kdf's kernel arguments for this run, then the user's `--cmdline` (later
/// ones win): KUnit runs at boot when the kernel has it.
fn kernel_args(args: &RunArgs, kernel: &Kernel) -> Vec<String> {
    let kunit = kernel.config.as_ref().is_some_and(|c| c.enabled("CONFIG_KUNIT"));
    let mut out = Vec::new();
    if kunit {
        out.extend(["kunit.enable=1".to_string(), "kunit.autorun=1".to_string()]);
    }
    if let Some(glob) = &args.kunit_filter {
        out.push(format!("kunit.filter_glob={glob}"));
    }
    out.extend(args.cmdline.iter().cloned());
    out
}

/// qboot boots faster than SeaBIOS (about 0.1-0.3 s under TCG), but leaves
/// interrupt routing to ACPI: a kernel without CONFIG_ACPI never sees its
/// virtio devices. Use it only when the kernel's config says ACPI is there.
fn firmware(kernel: &Kernel) -> Option<PathBuf> {
    let qboot = PathBuf::from("/usr/share/qemu/qboot.rom");
    let acpi = kernel.config.as_ref().is_some_and(|c| c.builtin("CONFIG_ACPI"));
    (acpi && qboot.is_file()).then_some(qboot)
}

/// `--network` and `--forward`, checked.
fn network(args: &RunArgs) -> Result<Option<UserNet>> {
    match args.network {
        NetworkArg::None if !args.forwards.is_empty() => {
            Err(usage_hinted("--forward needs a network", "add --network user"))
        }
        NetworkArg::None => Ok(None),
        NetworkArg::User => {
            network::check_forwards(&args.forwards).map_err(|e| usage(format!("--forward: {e}")))?;
            Ok(Some(UserNet { forwards: args.forwards.clone() }))
        }
    }
}

fn initramfs_for(args: &RunArgs, kernel: &Kernel) -> Result<PathBuf> {
    if let Some(path) = &args.initramfs {
        let head = std::fs::read(path).map_err(|e| {
            hinted(format!("cannot read --initramfs {}: {e}", path.display()), "check the path")
        })?;
        if let Err(why) = initramfs::check_archive(&head) {
            return Err(hinted(
                format!("cannot boot --initramfs {}: {why}", path.display()),
                "build one with this kdf: `kdf build initramfs -o FILE`",
            ));
        }
        return Ok(path.clone());
    }
    let init = initramfs::init_binary::locate(args.kernel.init.as_deref(), kernel.arch)?;
    initramfs::cached(kernel, &init)
}
