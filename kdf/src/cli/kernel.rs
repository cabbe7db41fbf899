//! `kdf kernel config|build`'s arguments: the tree, the base and the
//! fragments, strictness, make variables.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::arch::Arch;
use crate::kbuild::base::Base;
use crate::kbuild::build;
use crate::kbuild::configure::ConfigOptions;
use crate::kbuild::makevars::{self, MakeVar};
use crate::kbuild::profile::Profile;
use crate::kconfig::fragment::{parse_set, Entry};

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Configure a source tree: a base (allnoconfig, or yours) + kdf's
    /// fragments + yours, then check what landed
    Config(ConfigArgs),
    /// Build a configured tree: image, vmlinux, modules, gdb scripts,
    /// modules_prepare, rust-analyzer (or the targets given)
    Build(BuildArgs),
}

/// The tree a command works on; shared by `config` and `build`.
#[derive(Debug, Clone, Args)]
pub struct TreeArgs {
    /// Kernel source tree (default: the current directory, or the one the
    /// build directory was made from)
    #[arg(long, value_name = "DIR")]
    pub src: Option<PathBuf>,
    /// Build directory, `make O=` (default: SRC/.kdf-build)
    #[arg(short = 'O', long = "build-dir", value_name = "BUILD_DIR")]
    pub build: Option<PathBuf>,
    /// Build with clang and LLVM (`make LLVM=1`) instead of GCC
    #[arg(long)]
    pub llvm: bool,
    /// The kernel's architecture: x86_64 or arm64 (default: the host's;
    /// `kdf kernel build` follows the configured one)
    #[arg(long, value_name = "ARCH", value_parser = super::values::parse_arch)]
    pub arch: Option<Arch>,
    /// The GNU cross tools' prefix, `make CROSS_COMPILE=` (default with
    /// --arch other than the host's: aarch64-linux-gnu- or
    /// x86_64-linux-gnu-; none with --llvm)
    #[arg(long, value_name = "PREFIX")]
    pub cross_compile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Quick to build and boot; debug info, gdb scripts, frame pointers
    Fast,
    /// The full debug set: KASAN, lockdep, UBSAN, ftrace, kgdb (slower)
    Debug,
}

#[derive(Debug, Args)]
#[command(after_help = CONFIG_HELP)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// What to start from: allnoconfig (nothing but what is asked for),
    /// defconfig, tinyconfig, distro[:VERSION] (the running kernel's config,
    /// or /boot/config-VERSION), localmodconfig[:VERSION] (that config with
    /// only the loaded modules), tree (the build directory's .config), or a
    /// config file
    #[arg(long, value_name = "SOURCE", default_value = "allnoconfig", value_parser = parse_base)]
    pub base: Base,
    /// With --base localmodconfig: the modules to keep, as `lsmod` prints
    /// them (default: the ones loaded here)
    #[arg(long, value_name = "FILE")]
    pub lsmod: Option<PathBuf>,
    /// Which set of debugging options
    #[arg(long, value_enum, default_value_t = ProfileArg::Fast)]
    pub profile: ProfileArg,
    /// Rust support (the default)
    #[arg(long, overrides_with = "no_rust")]
    pub rust: bool,
    /// No Rust support
    #[arg(long = "no-rust", overrides_with = "rust")]
    pub no_rust: bool,
    /// What bcc and bpftrace need (BPF syscall, kprobes, BTF, ...)
    #[arg(long)]
    pub bpf: bool,
    /// A Kconfig fragment applied after kdf's (repeatable): a path, or the
    /// name of one of the source's kernel/configs/*.config
    #[arg(long = "fragment", value_name = "FILE")]
    pub fragments: Vec<PathBuf>,
    /// A kselftest target's config, tools/testing/selftests/TARGET/config
    /// (repeatable)
    #[arg(long = "kselftest", value_name = "TARGET")]
    pub kselftests: Vec<String>,
    /// KUnit: CONFIG_KUNIT=y, and the options a .kunitconfig FILE lists
    /// (repeatable; both strict, as kunit.py checks them)
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub kunit: Vec<PathBuf>,
    /// Set an option last (repeatable): CONFIG_X=y|m|n|"string"|NUMBER
    #[arg(long = "set", value_name = "CONFIG_X=VALUE", value_parser = parse_set)]
    pub sets: Vec<Entry>,
    /// Fail when an option of a fragment (kdf's, --fragment, --kselftest)
    /// does not land, as for --set
    #[arg(long)]
    pub strict_fragments: bool,
    /// Print every best-effort option that did not land, and why
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

impl ConfigArgs {
    /// The request as `kbuild` takes it.
    pub fn options(&self) -> ConfigOptions {
        ConfigOptions {
            src: self.tree.src.clone(),
            build: self.tree.build.clone(),
            arch: self.tree.arch,
            cross_compile: self.tree.cross_compile.clone(),
            llvm: self.tree.llvm,
            base: self.base.clone(),
            lsmod: self.lsmod.clone(),
            profile: match self.profile {
                ProfileArg::Fast => Profile::Fast,
                ProfileArg::Debug => Profile::Debug,
            },
            rust: !self.no_rust,
            bpf: self.bpf,
            fragments: self.fragments.clone(),
            kselftests: self.kselftests.clone(),
            kunit: self.kunit.clone(),
            sets: self.sets.clone(),
            strict_fragments: self.strict_fragments,
            verbose: self.verbose,
        }
    }
}

impl BuildArgs {
    /// How `kbuild` builds for these arguments.
    pub fn options(&self) -> build::Options<'_> {
        build::Options {
            jobs: self.jobs,
            llvm: self.tree.llvm,
            arch: self.tree.arch,
            cross_compile: self.tree.cross_compile.as_deref(),
            vars: &self.vars,
            reset_vars: self.reset_vars,
            ccache: self.ccache,
            targets: &self.targets,
        }
    }
}

const CONFIG_HELP: &str = "\
Strict and best effort: what a kdf VM needs to boot and every --set must land
as asked, or the config fails with the Kconfig lines that decide each miss.
Everything else (the base, kdf's profile, --fragment, --kselftest) is best
effort: what did not land is counted, explained in BUILD_DIR/kdf-config-report.txt
(-v prints it), and the config goes on. --strict-fragments makes fragments strict.";

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Parallel jobs (default: the number of CPUs)
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Compile through ccache, with a fixed KBUILD_BUILD_TIMESTAMP so that
    /// rebuilds hit its cache (recorded like the make variables)
    #[arg(long)]
    pub ccache: bool,
    /// Forget the make variables recorded by earlier builds (and --ccache)
    #[arg(long)]
    pub reset_vars: bool,
    /// Make targets instead of kdf's set: a directory (drivers/virtio/), an
    /// object, a module
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Make variables, after `--`: W=1 C=1 CC="ccache gcc" KCFLAGS=...;
    /// recorded in the build directory, so later builds use them too
    #[arg(last = true, value_name = "VAR=VALUE", value_parser = makevars::parse)]
    pub vars: Vec<MakeVar>,
}

/// `--base SOURCE`.
pub fn parse_base(s: &str) -> Result<Base, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::kconfig::fragment::Value;

    #[derive(Debug, Parser)]
    struct KernelTop {
        #[command(subcommand)]
        cmd: KernelCommand,
    }

    fn config(args: &[&str]) -> ConfigArgs {
        match KernelTop::try_parse_from(["kernel", "config"].iter().chain(args)).unwrap().cmd {
            KernelCommand::Config(c) => c,
            other => panic!("not config: {other:?}"),
        }
    }

    #[test]
    fn rust_is_on_unless_turned_off_and_the_last_flag_wins() {
        assert!(!config(&[]).no_rust);
        assert!(config(&["--no-rust"]).no_rust);
        assert!(!config(&["--no-rust", "--rust"]).no_rust);
        assert!(config(&["--rust", "--no-rust"]).no_rust);
    }

    #[test]
    fn the_issue_s_command_lines_parse() {
        let c = config(&[
            "--src",
            "/s",
            "-O",
            "/b",
            "--profile",
            "debug",
            "--bpf",
            "--fragment",
            "a.config",
            "--fragment",
            "kvm_guest",
            "--set",
            "CONFIG_KASAN=n",
            "--set",
            "LOCALVERSION=\"-dev\"",
        ]);
        assert_eq!(c.tree.src.as_deref(), Some(std::path::Path::new("/s")));
        assert_eq!(c.tree.build.as_deref(), Some(std::path::Path::new("/b")));
        assert_eq!(c.profile, ProfileArg::Debug);
        assert!(c.bpf);
        assert_eq!(c.fragments.len(), 2);
        assert_eq!(c.sets[0].value, Value::No);
        assert_eq!(c.sets[1].value, Value::Str("-dev".into()));
        let b = match KernelTop::try_parse_from(["kernel", "build", "-O", "/b", "-j", "4", "--llvm"])
            .unwrap()
            .cmd
        {
            KernelCommand::Build(b) => b,
            other => panic!("not build: {other:?}"),
        };
        assert_eq!((b.jobs, b.tree.llvm), (Some(4), true));
    }

    fn build(args: &[&str]) -> BuildArgs {
        match KernelTop::try_parse_from(["kernel", "build"].iter().chain(args)).unwrap().cmd {
            KernelCommand::Build(b) => b,
            other => panic!("not build: {other:?}"),
        }
    }

    #[test]
    fn bases_selftests_and_strictness_parse() {
        let c = config(&["--base", "distro:6.1.0-27-amd64", "--kselftest", "net", "--kselftest", "bpf"]);
        assert_eq!(c.base, Base::Distro(Some("6.1.0-27-amd64".into())));
        assert_eq!(c.kselftests, ["net", "bpf"]);
        assert!(!c.strict_fragments && !c.verbose);
        let c = config(&["--base=localmodconfig", "--lsmod", "mods.txt", "--strict-fragments", "-v"]);
        assert_eq!(
            (c.base, c.lsmod.is_some(), c.strict_fragments, c.verbose),
            (Base::LocalMod(None), true, true, true)
        );
        assert_eq!(config(&[]).base, Base::AllNo);
    }

    #[test]
    fn make_variables_go_after_dashes_and_targets_before() {
        let b = build(&["-O", "/b", "--ccache", "lib/", "--", "W=1", "CC=ccache gcc", "LOCALVERSION="]);
        assert!(b.ccache && !b.reset_vars);
        assert_eq!(b.targets, ["lib/"]);
        let vars: Vec<String> = b.vars.iter().map(|v| v.to_string()).collect();
        assert_eq!(vars, ["W=1", "CC=ccache gcc", "LOCALVERSION="]);
        let b = build(&["--reset-vars"]);
        assert!(b.reset_vars && b.targets.is_empty() && b.vars.is_empty());
    }

    #[test]
    fn arch_and_cross_compile_parse_for_config_and_build() {
        let c = config(&["--arch", "aarch64", "--cross-compile", "aarch64-none-linux-gnu-"]);
        let o = c.options();
        assert_eq!(
            (o.arch, o.cross_compile.as_deref()),
            (Some(Arch::Arm64), Some("aarch64-none-linux-gnu-"))
        );
        let b = build(&["--arch", "arm64", "--llvm"]);
        assert_eq!((b.options().arch, b.options().llvm), (Some(Arch::Arm64), true));
        assert_eq!(config(&[]).options().arch, None, "the host's");
        let err = KernelTop::try_parse_from(["kernel", "config", "--arch", "mips"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not an architecture kdf boots (x86_64, arm64)"), "{err}");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["kernel", "config", "--set", "KASAN"][..],
            &["kernel", "config", "--profile", "slow"],
            &["kernel", "build", "-j", "0"],
            &["kernel", "build", "--", "clean"],
            &["kernel", "build", "--", "O=/x"],
            &["kernel", "config", "--base", "distro:"],
        ] {
            assert_eq!(KernelTop::try_parse_from(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn kdf_kernel_config_without_options_is_kbuilds_default() {
        assert_eq!(config(&[]).options(), ConfigOptions::default(), "what kdf run --build configures with");
    }
}
