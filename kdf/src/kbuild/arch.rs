//! The architecture a kernel is built for and the toolchain that builds it:
//! `--arch`, `--cross-compile`, `--llvm` resolved into the make variables
//! every `make` of a tree gets (`ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-`,
//! or `LLVM=1`), and recorded in the build directory (`kdf-toolchain`) so
//! that `kdf kernel build` without flags builds as the tree was configured.

use std::path::Path;

use crate::arch::Arch;
use crate::kconfig::fragment::{Fragment, Value};

/// The option of the serial console a kdf VM of `arch` boots with (ttyS0
/// on x86's 8250, ttyAMA0 on virt's PL011).
pub fn console_option(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "CONFIG_SERIAL_8250_CONSOLE",
        Arch::Arm64 => "CONFIG_SERIAL_AMBA_PL011_CONSOLE",
    }
}

/// The architecture a `.config` was made for, if it is one kdf knows.
pub fn of_config(config: &Fragment) -> Option<Arch> {
    if *config.value("CONFIG_ARM64") == Value::Yes {
        Some(Arch::Arm64)
    } else if *config.value("CONFIG_X86_64") == Value::Yes {
        Some(Arch::X86_64)
    } else {
        None
    }
}

/// The architecture to build for when none is given or configured: the
/// host's, x86_64 on a host kdf does not boot.
pub fn host() -> Arch {
    Arch::host().unwrap_or(Arch::X86_64)
}

/// How a tree is compiled: for which architecture, with which compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    pub arch: Arch,
    /// `CROSS_COMPILE=`: the GNU tools' prefix, none for the host's own.
    pub cross_compile: Option<String>,
    /// `LLVM=1`: clang, ld.lld and the LLVM binutils (which cross-compile
    /// by `ARCH` alone).
    pub llvm: bool,
}

impl Toolchain {
    /// The host's own GCC: what kdf built with before `--arch`.
    #[cfg(test)]
    pub fn native() -> Toolchain {
        Toolchain { arch: host(), cross_compile: None, llvm: false }
    }

    /// `--arch`, `--cross-compile` and `--llvm` resolved for a host: the
    /// prefix defaults to the architecture's usual cross GCC when it is not
    /// the host's and the compiler is GCC.
    pub fn resolve(arch: Option<Arch>, cross_compile: Option<&str>, llvm: bool, host: Arch) -> Toolchain {
        let arch = arch.unwrap_or(host);
        let cross_compile = match cross_compile {
            Some(p) => Some(p.to_string()).filter(|p| !p.is_empty()),
            None if arch != host && !llvm => Some(arch.cross_prefix().to_string()),
            None => None,
        };
        Toolchain { arch, cross_compile, llvm }
    }

    /// The make variables: `ARCH=...`, then `CROSS_COMPILE=...` and
    /// `LLVM=1` where they apply.
    pub fn make_vars(&self) -> Vec<String> {
        let mut out = vec![format!("ARCH={}", self.arch.kbuild())];
        if let Some(prefix) = &self.cross_compile {
            out.push(format!("CROSS_COMPILE={prefix}"));
        }
        if self.llvm {
            out.push("LLVM=1".into());
        }
        out
    }

    /// The C compiler kbuild runs (what ccache goes in front of).
    pub fn cc(&self) -> String {
        if self.llvm {
            "clang".into()
        } else {
            format!("{}gcc", self.cross_compile.as_deref().unwrap_or(""))
        }
    }

    /// The record kept in the build directory ([`FILE`]).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# How `kdf kernel config` set this build directory up; `kdf kernel build`\n\
             # passes the same to make (kdf kernel config --arch/--cross-compile/--llvm\n\
             # changes it).\n",
        );
        for var in self.make_vars() {
            out.push_str(&var);
            out.push('\n');
        }
        out
    }

    /// Reads a record back; an unknown line or architecture is named.
    pub fn parse_record(text: &str) -> Result<Toolchain, String> {
        let mut out = Toolchain { arch: host(), cross_compile: None, llvm: false };
        let mut arch = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("line {}: {line:?} is not ARCH=, CROSS_COMPILE= or LLVM=1", i + 1);
            match line.split_once('=').ok_or_else(bad)? {
                ("ARCH", a) => {
                    arch = Some(
                        Arch::parse(a)
                            .ok_or_else(|| format!("line {}: unknown architecture {a:?}", i + 1))?,
                    )
                }
                ("CROSS_COMPILE", p) => out.cross_compile = Some(p.to_string()).filter(|p| !p.is_empty()),
                ("LLVM", "1") => out.llvm = true,
                _ => return Err(bad()),
            }
        }
        out.arch = arch.ok_or("no ARCH= line")?;
        Ok(out)
    }
}

/// The record's name in the build directory.
pub const FILE: &str = "kdf-toolchain";

/// The toolchain a build directory of `arch` was configured with: its record
/// ([`FILE`]), else what the architecture implies on this host (a tree kdf
/// did not configure).
pub fn of_build_dir(dir: &Path, arch: Arch) -> Toolchain {
    std::fs::read_to_string(dir.join(FILE))
        .ok()
        .and_then(|text| Toolchain::parse_record(&text).ok())
        .filter(|t| t.arch == arch)
        .unwrap_or_else(|| Toolchain::resolve(Some(arch), None, false, host()))
}

/// What `kdf kernel build` asked and what the tree holds.
#[derive(Debug, Clone, Default)]
pub struct BuildAsk<'a> {
    /// The build directory's record, if it has one (older kdf wrote none).
    pub recorded: Option<Toolchain>,
    /// The architecture of its `.config`.
    pub configured: Option<Arch>,
    /// Its `.config` was made with clang (`CONFIG_CC_IS_CLANG`).
    pub configured_llvm: bool,
    /// `--arch`, `--cross-compile`.
    pub arch: Option<Arch>,
    pub cross_compile: Option<&'a str>,
}

/// The toolchain to build a configured tree with: the recorded one (or, for
/// a tree without a record, the one its `.config` implies), with a given
/// `--cross-compile` prefix instead. A `--arch` other than the configured
/// one is refused (kbuild would reconfigure the tree for it silently): the
/// error says what the tree is configured for.
pub fn for_build(ask: &BuildAsk, host: Arch) -> Result<Toolchain, String> {
    let configured = ask.configured.or(ask.recorded.as_ref().map(|t| t.arch)).unwrap_or(host);
    if let Some(asked) = ask.arch.filter(|a| *a != configured) {
        return Err(format!("--arch {asked}: the tree is configured for {configured}"));
    }
    let mut out = match &ask.recorded {
        Some(t) if t.arch == configured => t.clone(),
        _ => Toolchain::resolve(Some(configured), None, ask.configured_llvm, host),
    };
    out.llvm = ask.configured_llvm;
    if let Some(prefix) = ask.cross_compile {
        out.cross_compile = Some(prefix.to_string()).filter(|p| !p.is_empty());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_architecture_gets_the_usual_cross_gcc_unless_told_or_llvm() {
        let arm = Toolchain::resolve(Some(Arch::Arm64), None, false, Arch::X86_64);
        assert_eq!(arm.make_vars(), ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"]);
        assert_eq!(arm.cc(), "aarch64-linux-gnu-gcc");
        let own = Toolchain::resolve(
            Some(Arch::Arm64),
            Some("/opt/gcc/bin/aarch64-none-linux-gnu-"),
            false,
            Arch::X86_64,
        );
        assert_eq!(own.make_vars()[1], "CROSS_COMPILE=/opt/gcc/bin/aarch64-none-linux-gnu-");
        let llvm = Toolchain::resolve(Some(Arch::Arm64), None, true, Arch::X86_64);
        assert_eq!(llvm.make_vars(), ["ARCH=arm64", "LLVM=1"]);
        assert_eq!(llvm.cc(), "clang");
        let native = Toolchain::resolve(None, None, false, Arch::X86_64);
        assert_eq!(native.make_vars(), ["ARCH=x86"]);
        assert_eq!(native.cc(), "gcc");
        // On an arm64 host, arm64 is native and x86_64 the cross build.
        assert_eq!(Toolchain::resolve(None, None, false, Arch::Arm64).make_vars(), ["ARCH=arm64"]);
        let x86 = Toolchain::resolve(Some(Arch::X86_64), None, false, Arch::Arm64);
        assert_eq!(x86.cross_compile.as_deref(), Some("x86_64-linux-gnu-"));
        // An empty prefix is the host's own tools.
        assert_eq!(Toolchain::resolve(Some(Arch::Arm64), Some(""), false, Arch::Arm64).cross_compile, None);
    }

    #[test]
    fn the_record_reads_back() {
        for t in [
            Toolchain::resolve(Some(Arch::Arm64), None, false, Arch::X86_64),
            Toolchain::resolve(Some(Arch::Arm64), None, true, Arch::X86_64),
            Toolchain::resolve(Some(Arch::X86_64), None, false, Arch::X86_64),
        ] {
            assert_eq!(Toolchain::parse_record(&t.render()), Ok(t.clone()), "{}", t.render());
        }
        assert!(Toolchain::parse_record("ARCH=arm64\nCC=gcc\n").unwrap_err().starts_with("line 2: "));
        assert!(Toolchain::parse_record("ARCH=mips\n").unwrap_err().contains("unknown architecture"));
        assert_eq!(Toolchain::parse_record("# nothing\n"), Err("no ARCH= line".into()));
    }

    #[test]
    fn a_build_uses_the_recorded_toolchain_or_the_configs() {
        let arm = Toolchain::resolve(Some(Arch::Arm64), None, false, Arch::X86_64);
        let ask =
            BuildAsk { recorded: Some(arm.clone()), configured: Some(Arch::Arm64), ..BuildAsk::default() };
        assert_eq!(for_build(&ask, Arch::X86_64), Ok(arm.clone()));
        // No record (a tree configured before --arch, or by hand): from the config.
        let bare = BuildAsk { configured: Some(Arch::Arm64), ..BuildAsk::default() };
        assert_eq!(for_build(&bare, Arch::X86_64), Ok(arm.clone()));
        let x86 = BuildAsk { configured: Some(Arch::X86_64), configured_llvm: true, ..BuildAsk::default() };
        assert_eq!(for_build(&x86, Arch::X86_64).unwrap().make_vars(), ["ARCH=x86", "LLVM=1"]);
        // --cross-compile replaces the prefix; --arch must agree.
        let own =
            BuildAsk { cross_compile: Some("aarch64-none-elf-"), arch: Some(Arch::Arm64), ..ask.clone() };
        assert_eq!(for_build(&own, Arch::X86_64).unwrap().cc(), "aarch64-none-elf-gcc");
        let wrong = BuildAsk { arch: Some(Arch::X86_64), ..ask };
        assert_eq!(
            for_build(&wrong, Arch::X86_64),
            Err("--arch x86_64: the tree is configured for arm64".into())
        );
    }

    #[test]
    fn a_build_dirs_toolchain_is_its_record_or_its_architectures() {
        let dir = tempfile::tempdir().unwrap();
        let implied = of_build_dir(dir.path(), Arch::Arm64);
        assert_eq!(implied, Toolchain::resolve(Some(Arch::Arm64), None, false, host()));
        let own = Toolchain::resolve(
            Some(Arch::Arm64),
            Some("/opt/x/aarch64-none-linux-gnu-"),
            false,
            Arch::X86_64,
        );
        std::fs::write(dir.path().join(FILE), own.render()).unwrap();
        assert_eq!(of_build_dir(dir.path(), Arch::Arm64), own);
        // A record for another architecture than the kernel's is stale.
        assert_eq!(of_build_dir(dir.path(), Arch::X86_64).arch, Arch::X86_64);
    }

    #[test]
    fn the_architecture_of_a_config_is_read_from_it() {
        let config = |text: &str| Fragment::parse(text, ".config").unwrap();
        assert_eq!(of_config(&config("CONFIG_ARM64=y\nCONFIG_64BIT=y\n")), Some(Arch::Arm64));
        assert_eq!(of_config(&config("CONFIG_X86_64=y\nCONFIG_X86=y\n")), Some(Arch::X86_64));
        assert_eq!(of_config(&config("CONFIG_RISCV=y\n")), None);
    }
}
