//! The command line, declared with clap: `--opt=value`, optional values,
//! status 2 on usage errors, shell completions. `kdf kernel`'s arguments
//! are in [`kernel`], `kdf gdb`'s in [`gdb`], value parsers in `values`.

pub mod gdb;
pub mod kernel;
mod values;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use self::kernel::KernelCommand;
use crate::disks::{parse_disk, DiskSpec};
use crate::kernel as kernel_source;
use crate::shares::{parse_virtiofs, ShareSpec};
use crate::status;
use crate::vm::numa;
use values::{parse_memory, parse_secs};

#[derive(Debug, Parser)]
#[command(
    name = "kdf",
    version,
    about = "The Kernel Development Flake: boot kernels fast, with your files, and debug them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a kernel with the host's files and run a command (or a shell) in it
    #[command(after_help = status::TABLE)]
    Run(Box<RunArgs>),
    /// Build artifacts kdf uses
    #[command(subcommand)]
    Build(BuildCommand),
    /// Configure and build minimal debug kernels from a source tree
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Attach gdb to the VM started with `kdf run -d` from this directory:
    /// vmlinux, sources, the kernel's gdb scripts, module symbols
    Gdb(gdb::GdbArgs),
    /// Run a second command, or a shell, in the VM of a running `kdf run`
    #[command(after_help = ATTACH_HELP)]
    Attach(AttachArgs),
    /// Send a SysRq key to the VM of a running `kdf run` and print what it logged
    Sysrq(SysrqArgs),
    /// List this user's running VMs (what `kdf gdb` and `kdf attach` find)
    Ps,
    /// Write the memory of the VM started from this directory to FILE
    /// (compressed kdump: `crash vmlinux FILE`, `drgn -c FILE -s vmlinux`)
    Dump(DumpArgs),
    /// Talk to the QEMU monitor (QMP) of the VM started from this directory:
    /// one command, or one per line from stdin (an escape hatch for what kdf
    /// does not wrap)
    Qmp(QmpArgs),
    /// Roots for guests of another architecture (`kdf run --arch arm64`)
    #[command(subcommand)]
    Root(RootCommand),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const ATTACH_HELP: &str = "\
The VM is the one `kdf run` started from this directory (or --pid). One
attach session at a time; ending it (exit, Enter ~ ., a signal) never ends
the VM. Exit status: the command's own, 125 when kdf or the VM failed (the
run ended first, the directory is missing in the guest), 126/127 as for
`kdf run`.";

#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Fetch (once) the default root of an architecture: Debian's busybox-static,
    /// plus PKG... with their dependencies (Debian package files, unpacked, never
    /// installed); prints its directory
    Fetch(RootFetchArgs),
}

#[derive(Debug, Args)]
pub struct RootFetchArgs {
    /// The root's architecture: arm64 (aarch64) or x86_64
    #[arg(long, value_name = "ARCH", value_parser = values::parse_arch)]
    pub arch: crate::arch::Arch,
    /// Debian packages to add, with their dependencies
    #[arg(value_name = "PKG")]
    pub packages: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Build kdf's initramfs (kdf-init plus the kernel's VM modules)
    Initramfs(InitramfsArgs),
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Where to write the dump
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The VM of this `kdf run` (see `kdf ps`) instead of the one started here
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct QmpArgs {
    /// The VM of this `kdf run` (see `kdf ps`) instead of the one started here
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// A QMP command to run (`query-status`); without one, commands are read
    /// from stdin, one per line (JSON, or NAME [ARGUMENTS-JSON])
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
    /// The command's arguments as a JSON object
    #[arg(value_name = "ARGUMENTS", requires = "command")]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TtyMode {
    /// A pseudo-terminal when stdin and stdout are terminals
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MachineArg {
    /// microvm where the kernel can find its devices there, else q35
    Auto,
    /// PCI machine with firmware: boots any x86 kernel, takes --qemu-arg devices
    Q35,
    /// No PCI or firmware, virtio-mmio devices: the fastest boot
    Microvm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RootModeArg {
    /// Read-only; DIR is never written
    Ro,
    /// Writable in the guest through a tmpfs overlay; DIR never changes
    Overlay,
    /// Writes go to DIR
    Rw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// Only the loopback
    None,
    /// A virtio-net device on QEMU's user-mode network: the guest reaches what the host reaches
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    Kvm,
    Tcg,
}

/// Which kernel: shared by `run` and `build initramfs`.
#[derive(Debug, Clone, Args)]
pub struct KernelArgs {
    /// Kernel to boot: a bzImage/vmlinuz, a vmlinux, or a kernel build directory
    /// [default: inside a kernel source tree, its build; else the newest installed]
    #[arg(short = 'k', long, value_name = "PATH", conflicts_with = "release")]
    pub kernel: Option<PathBuf>,
    /// An installed kernel (/boot/vmlinuz-VERSION), the newest without VERSION;
    /// `nix` or `nix:X.Y` for nixpkgs' linuxPackages[_X_Y]
    #[arg(short = 'r', long, value_name = "VERSION", num_args = 0..=1, default_missing_value = "")]
    pub release: Option<String>,
    /// kdf-init binary for the guest's architecture [default: $KDF_INIT
    /// (x86_64) or $KDF_INIT_AARCH64 (arm64), else next to kdf: kdf-init,
    /// kdf-init-aarch64]
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// The guest's architecture: x86_64 or arm64 (aarch64); the kernel must
    /// be one for it [default: the kernel's]
    #[arg(long, value_name = "ARCH", value_parser = values::parse_arch)]
    pub arch: Option<crate::arch::Arch>,
    /// The kernel's modules: a lib/modules directory holding its release, or the
    /// release's own directory [default: next to the image (an unpacked package),
    /// else /lib/modules/RELEASE, else in --root]
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
}

impl KernelArgs {
    /// What these arguments say about the kernel, for [`kernel_source::choice`].
    pub fn flags(&self, build: bool) -> kernel_source::choice::Flags<'_> {
        kernel_source::choice::Flags {
            kernel: self.kernel.as_deref(),
            release: self.release.as_deref(),
            build,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitramfsArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Where to write the archive
    #[arg(short = 'o', long, value_name = "FILE", default_value = "initramfs.cpio")]
    pub output: PathBuf,
    /// Extra module to include and load at boot (repeatable)
    #[arg(long = "module", value_name = "MODULE.ko")]
    pub modules: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Build the kernel tree around the working directory first (`kdf kernel
    /// build`, configured with kdf's defaults if new), or the build directory
    /// --kernel names; a failed build exits with 125
    #[arg(short = 'b', long, conflicts_with = "release")]
    pub build: bool,
    /// Boot this initramfs instead of kdf's own (e.g. from `kdf build initramfs`)
    #[arg(long, value_name = "FILE")]
    pub initramfs: Option<PathBuf>,

    /// Share a host directory read-write at the same path (repeatable)
    #[arg(long = "rw", value_name = "PATH")]
    pub rw: Vec<PathBuf>,
    /// Share a host directory read-only at the same path (repeatable)
    #[arg(long = "ro", value_name = "PATH")]
    pub ro: Vec<PathBuf>,
    /// Share a directory: `src=PATH[,dst=PATH][,ro|rw][,overlay][,cache=MODE]`,
    /// `\,` for a literal comma (repeatable)
    #[arg(long = "virtiofs", value_name = "SPEC", value_parser = parse_virtiofs)]
    pub virtiofs: Vec<ShareSpec>,
    /// Share files over 9p instead of virtiofs
    #[arg(long = "9p")]
    pub nine_p: bool,
    /// Boot with DIR as the guest's / instead of the host's (another distribution,
    /// a minimal root); the working directory and other shares still appear
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// How the guest may change --root's DIR [default: ro]
    #[arg(long, value_enum, value_name = "MODE", requires = "root")]
    pub root_mode: Option<RootModeArg>,

    /// The guest's network
    #[arg(long, value_enum, value_name = "MODE", default_value_t = NetworkArg::None)]
    pub network: NetworkArg,
    /// Forward 127.0.0.1:HOSTPORT on the host to the guest's GUESTPORT (TCP;
    /// repeatable; needs --network user)
    #[arg(long = "forward", value_name = "HOSTPORT:GUESTPORT", value_parser = crate::vm::network::parse_forward)]
    pub forwards: Vec<crate::vm::network::Forward>,

    /// Load a module before the command: 'FILE.ko [PARAM=VALUE ...]' (repeatable,
    /// loaded in order; dependencies from the kernel's modules)
    #[arg(long = "module", value_name = "FILE.ko [PARAM=VALUE...]", value_parser = crate::module::parse_spec)]
    pub modules: Vec<crate::module::Spec>,
    /// Keep the --module modules loaded after the command
    #[arg(long)]
    pub no_unload: bool,
    /// Accept kernel splats whose lines match REGEX (repeatable; shown with -v)
    #[arg(long = "allow-splat", value_name = "REGEX")]
    pub allow_splats: Vec<String>,
    /// Put these nixpkgs packages' bin directories on PATH (built with `nix build`)
    #[arg(long, value_name = "PKG,...", value_delimiter = ',')]
    pub nix: Vec<String>,

    /// Virtual CPUs
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub cpus: u32,
    /// Guest memory: MiB, or with a K/M/G suffix
    #[arg(short = 'm', long, value_name = "SIZE", default_value = "1G", value_parser = parse_memory)]
    pub memory: u64,
    /// Extra kernel command-line arguments (repeatable)
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub cmdline: Vec<String>,
    /// Extra QEMU argument (repeatable), e.g. --qemu-arg=-device --qemu-arg=virtio-rng-pci
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub qemu_args: Vec<OsString>,
    /// A virtio disk: `FILE[,ro][,format=raw|qcow2]`, or `size=SIZE` for a
    /// temporary sparse scratch disk (repeatable: /dev/vda, /dev/vdb, ... in
    /// order, and /dev/disk/by-id/virtio-NAME after the file's name)
    #[arg(long = "disk", value_name = "SPEC", value_parser = parse_disk)]
    pub disks: Vec<DiskSpec>,
    /// A NUMA node with MEM of the guest's memory and these CPUs (repeatable;
    /// the nodes' memory adds up to -m, every CPU is in one node)
    #[arg(long = "numa", value_name = "MEM[,cpus=A-B]", value_parser = parse_numa_node)]
    pub numa: Vec<numa::Node>,
    /// The distance between two --numa nodes (repeatable; default 20, local 10)
    #[arg(long = "numa-distance", value_name = "SRC,DST=VAL", value_parser = numa::parse_distance)]
    pub numa_distances: Vec<numa::Distance>,
    /// When the guest kernel panics, write its memory to FILE before the VM
    /// ends (compressed kdump, with the kernel's vmcoreinfo: crash, drgn)
    #[arg(long, value_name = "FILE")]
    pub vmcore: Option<PathBuf>,
    /// Serve QEMU's QMP monitor on the Unix socket SOCKET (created, and
    /// removed at the end) for your own QMP clients; `kdf qmp` finds it too
    #[arg(long, value_name = "SOCKET")]
    pub qmp: Option<PathBuf>,
    /// QEMU machine type
    #[arg(long, value_enum, default_value_t = MachineArg::Auto)]
    pub machine: MachineArg,
    /// Force an accelerator (default: KVM where it really boots Linux, else TCG)
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Start a GDB stub on 127.0.0.1 (a free port, printed, unless PORT is
    /// given) for `kdf gdb`; also boots with nokaslr and no boot timeout
    #[arg(short = 'd', long, value_name = "PORT", num_args = 0..=1, require_equals = true)]
    pub debug: Option<Option<u16>>,
    /// Stop the CPU at its first instruction until a debugger continues (implies -d)
    #[arg(long)]
    pub debug_wait: bool,
    /// Print the QEMU and virtiofsd command lines instead of running them
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub command: CommandArgs,
    /// Stop the command after SECS (status 124)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Give up when the guest has not booted after SECS (default: 60 under TCG,
    /// 20 under KVM, none with -d)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub boot_timeout: Option<Duration>,

    /// Run only the KUnit tests matching GLOB (kunit.filter_glob=)
    #[arg(long, value_name = "GLOB")]
    pub kunit_filter: Option<String>,
    /// Write KUnit's KTAP output to FILE (for kunit.py parse and CI tools)
    #[arg(long, value_name = "FILE")]
    pub ktap: Option<PathBuf>,
    /// Write the run's outcome as JSON to FILE (status, timings, modules, splats, KUnit)
    #[arg(long, value_name = "FILE")]
    pub result: Option<PathBuf>,
    /// Keep the kernel console in FILE
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Stream the kernel console to stderr (prefixed) and print timings
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print where the time went
    #[arg(long)]
    pub timings: bool,
}

/// The command and how it runs in the guest: `run`'s and `attach`'s.
#[derive(Debug, Clone, Args)]
pub struct CommandArgs {
    /// Set an environment variable for the command (repeatable)
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(OsString, OsString)>,
    /// Run as the invoking user instead of root
    #[arg(long)]
    pub user: bool,
    /// Start the command in DIR instead of the working directory
    #[arg(long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Do not forward stdin (the command reads /dev/null)
    #[arg(short = 'n', long = "no-stdin")]
    pub no_stdin: bool,
    /// Shell for the interactive session and -c (default: your login shell, else /bin/sh)
    #[arg(short = 's', long, value_name = "PATH")]
    pub shell: Option<PathBuf>,
    /// Run SCRIPT with the shell (`$SHELL -c SCRIPT`)
    #[arg(short = 'c', long = "script", value_name = "SCRIPT", conflicts_with = "argv")]
    pub script: Option<OsString>,
    /// Give the command a pseudo-terminal
    #[arg(long, value_enum, default_value_t = TtyMode::Auto)]
    pub tty: TtyMode,

    /// The command and its arguments, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub argv: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The kdf run to attach to (see `kdf ps`) [default: the one started here]
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    #[command(flatten)]
    pub command: CommandArgs,
}

/// `--numa MEM[,cpus=A-B]`, MEM as for `-m`.
fn parse_numa_node(s: &str) -> Result<numa::Node, String> {
    numa::parse_node(s, parse_memory)
}

#[derive(Debug, Args)]
pub struct SysrqArgs {
    /// The kdf run whose VM gets the key (see `kdf ps`) [default: the one started here]
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// The SysRq key, e.g. `w` (blocked tasks), `t` (all tasks), `m` (memory),
    /// `l` (backtraces), `c` (crash)
    #[arg(value_name = "KEY", value_parser = parse_sysrq_key)]
    pub key: u8,
}

/// `K=V` from `-e`: the first `=` splits, so values may contain `=`.
pub fn parse_env(s: &str) -> Result<(OsString, OsString), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.into(), v.into())),
        _ => Err(format!("expected K=V, got {s:?}")),
    }
}

/// One printable ASCII character, as `/proc/sysrq-trigger` takes it.
pub fn parse_sysrq_key(s: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [key] if key.is_ascii_graphic() => Ok(*key),
        _ => Err(format!("{s:?} is not a SysRq key: give one character, e.g. w, t or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn run(args: &[&str]) -> RunArgs {
        match Cli::try_parse_from(["kdf", "run"].iter().chain(args)).unwrap().command {
            Command::Run(r) => *r,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn optional_values_and_equals_forms() {
        assert_eq!(run(&["-r"]).kernel.release.as_deref(), Some(""));
        assert_eq!(run(&["--release=6.1"]).kernel.release.as_deref(), Some("6.1"));
        assert_eq!(run(&["-d"]).debug, Some(None));
        assert_eq!(run(&["--debug=4321"]).debug, Some(Some(4321)));
        assert_eq!(run(&["-d=4321"]).debug, Some(Some(4321)));
        assert_eq!(run(&[]).debug, None);
        // A bare -d never swallows the next word.
        assert_eq!(run(&["-d", "--", "true"]).command.argv, ["true"]);
        assert_eq!(run(&["--memory=2G"]).memory, 2048);
        let r = run(&[
            "--disk",
            "size=64M",
            "--disk",
            "d.img,ro",
            "--numa",
            "512M,cpus=0",
            "--numa-distance=0,1=20",
        ]);
        assert_eq!(r.disks.len(), 2);
        assert_eq!(r.numa, [numa::Node { memory_mib: 512, cpus: vec![(0, 0)] }]);
        assert_eq!(r.numa_distances.len(), 1);
    }

    #[test]
    fn gdb_takes_its_own_arguments_and_passes_the_rest_to_gdb() {
        let cli = Cli::try_parse_from([
            "kdf",
            "gdb",
            "--module-dir",
            "m",
            "--port",
            "4",
            "--",
            "-batch",
            "-ex",
            "bt",
        ]);
        let Command::Gdb(g) = cli.unwrap().command else { panic!("not gdb") };
        let o = g.options();
        assert_eq!((o.port, o.module_dirs.len(), o.wait), (Some(4), 1, Duration::from_secs(30)));
        assert_eq!(o.gdb_args, ["-batch", "-ex", "bt"]);
    }

    #[test]
    fn the_command_after_dashes_is_taken_whole() {
        let r = run(&["--", "sh", "-c", "echo a; exit 3", "", "--rw"]);
        assert_eq!(r.command.argv, ["sh", "-c", "echo a; exit 3", "", "--rw"]);
    }

    #[test]
    fn attach_takes_the_run_command_options_and_a_pid() {
        let parsed = Cli::try_parse_from([
            "kdf", "attach", "--pid", "42", "-e", "A=b=c", "--tty", "never", "--", "ls",
        ]);
        let Command::Attach(a) = parsed.unwrap().command else { panic!("not attach") };
        assert_eq!(a.pid, Some(42));
        assert_eq!(a.command.env, [("A".into(), "b=c".into())]);
        assert_eq!(a.command.tty, TtyMode::Never);
        assert_eq!(a.command.argv, ["ls"]);
        let Command::Attach(a) = Cli::try_parse_from(["kdf", "attach"]).unwrap().command else { panic!() };
        assert!(a.pid.is_none() && a.command.argv.is_empty(), "a shell in the VM of this directory");
    }

    #[test]
    fn a_sysrq_key_is_one_printable_character() {
        assert_eq!(parse_sysrq_key("w"), Ok(b'w'));
        assert_eq!(parse_sysrq_key("9"), Ok(b'9'));
        assert!(parse_sysrq_key("").is_err());
        assert!(parse_sysrq_key("wt").is_err());
        assert!(parse_sysrq_key(" ").is_err());
        assert!(parse_sysrq_key("\u{e9}").is_err());
        let err = Cli::try_parse_from(["kdf", "sysrq", "ww"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let Command::Sysrq(s) = Cli::try_parse_from(["kdf", "sysrq", "--pid", "7", "t"]).unwrap().command
        else {
            panic!("not sysrq")
        };
        assert_eq!((s.pid, s.key), (Some(7), b't'));
    }

    #[test]
    fn env_values_split_at_the_first_equals() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("noequals").is_err());
    }

    #[test]
    fn conflicts_are_usage_errors() {
        let err = Cli::try_parse_from(["kdf", "run", "--kernel", "x", "--release", "y"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["kdf", "run", "-c", "x", "--", "true"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["kdf", "run", "--cpus", "0"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["kdf", "run", "--build", "--release"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["kdf", "run", "--disk", "size=1G,ro"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["kdf", "run", "--numa", "1G,cpus=x"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["kdf", "run", "--root-mode", "rw"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "--root-mode needs --root");
        let err = Cli::try_parse_from(["kdf", "run", "--forward", "80"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn dump_and_qmp_name_a_run() {
        let cli = Cli::try_parse_from(["kdf", "dump", "core", "--pid", "7"]).unwrap();
        assert!(matches!(cli.command, Command::Dump(DumpArgs { pid: Some(7), .. })));
        let cli = Cli::try_parse_from(["kdf", "qmp", "human-monitor-command", "{}"]).unwrap();
        let Command::Qmp(q) = cli.command else { panic!() };
        assert_eq!(
            (q.command.as_deref(), q.arguments.as_deref()),
            (Some("human-monitor-command"), Some("{}"))
        );
    }

    #[test]
    fn root_and_network_flags() {
        let r =
            run(&["--root", "/srv/r", "--root-mode=overlay", "--network", "user", "--forward", "8080:80"]);
        assert_eq!(r.root.as_deref(), Some(std::path::Path::new("/srv/r")));
        assert_eq!(r.root_mode, Some(RootModeArg::Overlay));
        assert_eq!((r.network, r.forwards.len()), (NetworkArg::User, 1));
        let plain = run(&["--modules-dir", "/x/lib/modules"]);
        assert_eq!((plain.network, plain.root_mode), (NetworkArg::None, None));
        assert_eq!(plain.kernel.modules_dir.as_deref(), Some(std::path::Path::new("/x/lib/modules")));
    }
}
