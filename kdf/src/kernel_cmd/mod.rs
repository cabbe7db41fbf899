//! `kdf kernel config` and `kdf kernel build`: minimal debug kernels from a
//! source tree, configured from `configs/` (see [`crate::kconfig`]) and built
//! out of tree (`make O=`), ready for `kdf run --kernel BUILD_DIR`.

pub mod build;
pub mod config;
pub mod make;
pub mod toolchain;
pub mod tree;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::kconfig::fragment::{parse_set, Entry};

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Configure a source tree: allnoconfig + kdf's fragments + yours, then
    /// verify that every requested option landed
    Config(ConfigArgs),
    /// Build a configured tree: image, vmlinux, modules, gdb scripts,
    /// modules_prepare, rust-analyzer
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Quick to build and boot; debug info, gdb scripts, frame pointers
    Fast,
    /// The full debug set: KASAN, lockdep, UBSAN, ftrace, kgdb (slower)
    Debug,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
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
    /// Set an option last (repeatable): CONFIG_X=y|m|n|"string"|NUMBER
    #[arg(long = "set", value_name = "CONFIG_X=VALUE", value_parser = parse_set)]
    pub sets: Vec<Entry>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Parallel jobs (default: the number of CPUs)
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
}

pub fn run(cmd: &KernelCommand) -> Result<i32> {
    match cmd {
        KernelCommand::Config(args) => config::run(args),
        KernelCommand::Build(args) => build::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kconfig::fragment::Value;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: KernelCommand,
    }

    fn config(args: &[&str]) -> ConfigArgs {
        match Top::try_parse_from(["kernel", "config"].iter().chain(args)).unwrap().cmd {
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
        let b = match Top::try_parse_from(["kernel", "build", "-O", "/b", "-j", "4", "--llvm"]).unwrap().cmd {
            KernelCommand::Build(b) => b,
            other => panic!("not build: {other:?}"),
        };
        assert_eq!((b.jobs, b.tree.llvm), (Some(4), true));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["kernel", "config", "--set", "KASAN"][..],
            &["kernel", "config", "--profile", "slow"],
            &["kernel", "build", "-j", "0"],
        ] {
            assert_eq!(Top::try_parse_from(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }
}
