//! The command line, declared with clap: `--opt=value`, optional values,
//! status 2 on usage errors, shell completions. `kdf kernel`'s arguments
//! are in [`kernel`].

pub mod kernel;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use self::kernel::KernelCommand;
use crate::kernel as kernel_source;
use crate::shares::{parse_virtiofs, ShareSpec};
use crate::status;

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
    /// List this user's running VMs (what `kdf gdb` and `kdf attach` find)
    Ps,
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Build kdf's initramfs (kdf-init plus the kernel's VM modules)
    Initramfs(InitramfsArgs),
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
    /// PCI machine; reliable everywhere
    Q35,
    /// No PCI or firmware: faster, but its TSC calibration can fail on a loaded host (TCG)
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
    /// kdf-init binary (default: next to kdf)
    #[arg(long, value_name = "FILE", env = "KDF_INIT")]
    pub init: Option<PathBuf>,
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
    /// QEMU machine type
    #[arg(long, value_enum, default_value_t = MachineArg::Q35)]
    pub machine: MachineArg,
    /// Force an accelerator (default: KVM where it really boots Linux, else TCG)
    #[arg(long, value_enum)]
    pub accel: Option<AccelArg>,
    /// Start a GDB stub on 127.0.0.1:PORT
    #[arg(short = 'd', long, value_name = "PORT", num_args = 0..=1, default_missing_value = "1234")]
    pub debug: Option<u16>,
    /// Print the QEMU and virtiofsd command lines instead of running them
    #[arg(long)]
    pub dry_run: bool,

    /// Set an environment variable for the command (repeatable)
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = crate::plan::parse_env)]
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
    #[arg(short = 'c', long = "script", value_name = "SCRIPT", conflicts_with = "command")]
    pub script: Option<OsString>,
    /// Give the command a pseudo-terminal
    #[arg(long, value_enum, default_value_t = TtyMode::Auto)]
    pub tty: TtyMode,
    /// Stop the command after SECS (status 124)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// Give up when the guest has not booted after SECS (default: 60 under TCG, 20 under KVM)
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

    /// The command and its arguments, after `--`
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `512`, `512M`, `1G`, `1048576K` -> MiB.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult_kib) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1),
        Some((i, 'M' | 'm')) => (&s[..i], 1024),
        Some((i, 'G' | 'g')) => (&s[..i], 1024 * 1024),
        _ => (s, 1024),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 512M, 2G)"))?;
    let mib = n.saturating_mul(mult_kib) / 1024;
    if !(64..=1024 * 1024).contains(&mib) {
        return Err(format!("{s} is out of range (64M to 1024G)"));
    }
    Ok(mib)
}

/// Seconds, fractions allowed: `30`, `1.5`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("1048576K"), Ok(1024));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("1K").is_err());
        assert!(parse_memory("-5").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
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
        assert_eq!(run(&["-d"]).debug, Some(1234));
        assert_eq!(run(&["--debug=4321"]).debug, Some(4321));
        assert_eq!(run(&["--memory=2G"]).memory, 2048);
    }

    #[test]
    fn the_command_after_dashes_is_taken_whole() {
        let r = run(&["--", "sh", "-c", "echo a; exit 3", "", "--rw"]);
        assert_eq!(r.command, ["sh", "-c", "echo a; exit 3", "", "--rw"]);
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
        let err = Cli::try_parse_from(["kdf", "run", "--root-mode", "rw"]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "--root-mode needs --root");
        let err = Cli::try_parse_from(["kdf", "run", "--forward", "80"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
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
