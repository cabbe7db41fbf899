//! The guest architectures kdf boots (`--arch`): their names, ELF machines,
//! QEMU binaries, kdf-init builds and debuggers, as data.

use std::fmt;

use crate::elf;

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// `--arch`'s spellings: the kernel's (`x86_64`, `arm64`), Debian's
    /// (`amd64`) and the toolchain's (`aarch64`, `x86-64`).
    pub fn parse(word: &str) -> Option<Arch> {
        match word {
            "x86_64" | "x86-64" | "amd64" | "x86" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The machine kdf runs on, where it is one kdf boots.
    pub fn host() -> Option<Arch> {
        Self::parse(std::env::consts::ARCH)
    }

    /// The kernel's name (`ARCH=`), used in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Debian's architecture name (package files, `arch=` in apt sources).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// `e_machine` of this architecture's executables and modules.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => elf::EM_X86_64,
            Arch::Arm64 => elf::EM_AARCH64,
        }
    }

    /// The architecture of an ELF `e_machine`, if kdf boots it.
    pub fn of_elf_machine(machine: u16) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.elf_machine() == machine)
    }

    /// The QEMU system emulator, and the Debian package that has it.
    pub fn qemu(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("qemu-system-x86_64", "qemu-system-x86"),
            Arch::Arm64 => ("qemu-system-aarch64", "qemu-system-arm"),
        }
    }

    /// Rust's musl target, which kdf-init is built for.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// kdf-init's file name where it is installed next to kdf.
    pub fn init_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "kdf-init",
            Arch::Arm64 => "kdf-init-aarch64",
        }
    }

    /// The environment variable naming this architecture's kdf-init.
    pub fn init_env(self) -> &'static str {
        match self {
            Arch::X86_64 => "KDF_INIT",
            Arch::Arm64 => "KDF_INIT_AARCH64",
        }
    }
}

/// What building a kernel for an architecture takes (`kdf kernel config|build
/// --arch`).
impl Arch {
    /// kbuild's `ARCH=` (and `SRCARCH`: the directory under `arch/`). `x86`,
    /// not `x86_64`: it is what kbuild defaults to on an x86 host, and the
    /// `.config` records the value (`include/config/auto.conf.cmd`), so a tree
    /// configured by a plain `make` is not reconfigured when kdf builds it.
    pub fn kbuild(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        }
    }

    /// The CPU as GNU triples name it, and the kselftests' `config.<CPU>`.
    pub fn gnu_cpu(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// `CROSS_COMPILE` when building on another architecture with GCC:
    /// Debian's (and most distributions') cross GCC.
    pub fn cross_prefix(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu-",
            Arch::Arm64 => "aarch64-linux-gnu-",
        }
    }

    /// The Debian package with that cross GCC.
    pub fn cross_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "gcc-x86-64-linux-gnu",
            Arch::Arm64 => "gcc-aarch64-linux-gnu",
        }
    }

    /// The boot image's make target, and where it lands in the build directory.
    pub fn image(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("bzImage", "arch/x86/boot/bzImage"),
            Arch::Arm64 => ("Image.gz", "arch/arm64/boot/Image.gz"),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_names_one_architecture() {
        assert_eq!(Arch::parse("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("arm64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("x86_64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("riscv64"), None);
        for a in Arch::ALL {
            assert_eq!(Arch::parse(a.name()), Some(a));
            assert_eq!(Arch::parse(a.debian()), Some(a));
            assert_eq!(Arch::of_elf_machine(a.elf_machine()), Some(a));
            assert!(a.rust_target().starts_with(&a.qemu().0["qemu-system-".len()..]));
        }
        assert_eq!(Arch::of_elf_machine(3), None, "i386");
        for a in Arch::ALL {
            assert!(a.cross_prefix().starts_with(a.gnu_cpu()), "{a}");
            assert!(a.rust_target().starts_with(a.gnu_cpu()), "{a}");
            assert!(a.image().1.starts_with(&format!("arch/{}/boot/", a.kbuild())), "{a}");
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(Arch::host(), Some(Arch::X86_64));
        }
    }
}
