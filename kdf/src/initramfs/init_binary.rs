//! Finding the `kdf-init` binary of the guest's architecture and checking it
//! can be PID 1: a static ELF of that machine (a dynamic one would need a
//! loader the initramfs lacks). `--init` must match; `KDF_INIT` (x86_64) and
//! `KDF_INIT_AARCH64` name each architecture's, and `KDF_INIT` also serves an
//! arm64 guest when it is an aarch64 build.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::arch::Arch;
use crate::elf::{self, Class, Elf, Endian};
use crate::errors::hinted;

fn build_hint(arch: Arch) -> String {
    format!(
        "run scripts/setup.sh, or build it with `cargo build --release -p kdf-init --target {}` \
         and pass --init PATH (or set {})",
        arch.rust_target(),
        arch.init_env()
    )
}

/// Where to look when neither `--init` nor the environment says: next to
/// `kdf` (cargo install, Nix; `kdf-init-aarch64` for arm64), `../lib/kdf/`,
/// and a cargo target directory's musl build for the architecture.
pub fn candidates(exe: &Path, arch: Arch) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else { return Vec::new() };
    let name = arch.init_name();
    let mut out = vec![dir.join(name), dir.join("../lib/kdf").join(name)];
    if let Some(target) = dir.parent() {
        for profile in ["release", "debug"] {
            out.push(target.join(arch.rust_target()).join(profile).join("kdf-init"));
        }
    }
    out
}

/// kdf-init for an `arch` guest: `--init` (which must fit), else the
/// architecture's variable, else `KDF_INIT` where it fits, else
/// [`candidates`].
pub fn locate(explicit: Option<&Path>, arch: Arch) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var(arch.init_env()) {
        return Ok(p);
    }
    let fits = |p: &PathBuf| std::fs::read(p).is_ok_and(|b| unfit(&b, arch).is_none());
    let exe = std::env::current_exe().unwrap_or_default();
    let shared = var("KDF_INIT").filter(|_| arch != Arch::X86_64);
    let found: Vec<PathBuf> = shared
        .into_iter()
        .filter(fits)
        .chain(candidates(&exe, arch).into_iter().filter(|p| p.is_file()))
        .collect();
    // `cargo build --workspace` leaves a dynamic host build next to kdf: take
    // the first that can be /init, else the first found (`read` says why not).
    let fit = found.iter().find(|p| fits(p));
    fit.or(found.first()).cloned().ok_or_else(|| {
        hinted(format!("cannot find {} (the {arch} guest's /init)", arch.init_name()), build_hint(arch))
    })
}

/// The binary's bytes, refused unless it is a static ELF64 for `arch`.
pub fn read(path: &Path, arch: Arch) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| hinted(format!("cannot read kdf-init at {}: {e}", path.display()), build_hint(arch)))?;
    if let Some(why) = unfit(&bytes, arch) {
        return Err(hinted(format!("{} {why}", path.display()), build_hint(arch)));
    }
    Ok(bytes)
}

/// Why an executable cannot be the `arch` guest's /init, if it cannot, said
/// after its path.
fn unfit(bytes: &[u8], arch: Arch) -> Option<String> {
    let elf = match Elf::parse(bytes) {
        Ok(elf) => elf,
        Err(e) => return Some(format!("is not an ELF executable: {e:#}")),
    };
    if elf.class != Class::Elf64 {
        return Some(format!(
            "is a 32-bit ELF; the {arch} guest's /init must be a 64-bit {} one",
            want(arch)
        ));
    }
    if elf.endian != Endian::Little || elf.machine != arch.elf_machine() {
        let machine = elf::machine_name(elf.machine).map_or(format!("machine {}", elf.machine), String::from);
        let order = if elf.endian == Endian::Big { "big-endian " } else { "" };
        return Some(format!(
            "is built for {order}{machine}; the {arch} guest's /init must be {}",
            want(arch)
        ));
    }
    match elf.has_interpreter() {
        Ok(false) => None,
        Ok(true) => Some("is dynamically linked and cannot run as the guest's /init".into()),
        Err(e) => Some(format!("is a damaged ELF file: {e:#}")),
    }
}

/// The ELF machine's name for `arch` (`aarch64` for arm64).
fn want(arch: Arch) -> &'static str {
    elf::machine_name(arch.elf_machine()).unwrap_or(arch.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic() {
        // cargo test binaries link glibc dynamically: a PT_INTERP must be found.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            unfit(&exe, Arch::X86_64).unwrap(),
            "is dynamically linked and cannot run as the guest's /init"
        );
    }

    #[test]
    fn only_a_static_x86_64_elf64_is_fit() {
        use crate::elf::{tests::build, EM_X86_64};
        let unfit = |b: &[u8]| unfit(b, Arch::X86_64);
        let fit = build(Class::Elf64, Endian::Little, EM_X86_64, &[(1, b"code")], &[]);
        assert_eq!(unfit(&fit), None);
        let i386 = build(Class::Elf32, Endian::Little, 3, &[(1, b"code")], &[]);
        assert!(unfit(&i386).unwrap().starts_with("is a 32-bit ELF"));
        let arm = build(Class::Elf64, Endian::Little, 183, &[(1, b"code")], &[]);
        assert_eq!(unfit(&arm).unwrap(), "is built for aarch64; the x86_64 guest's /init must be x86_64");
        let s390 = build(Class::Elf64, Endian::Big, 22, &[(1, b"code")], &[]);
        assert!(unfit(&s390).unwrap().starts_with("is built for big-endian s390;"));
        assert!(unfit(b"#!/bin/sh\n").unwrap().starts_with("is not an ELF executable: "));
        assert!(unfit(b"\x7fELF").unwrap().starts_with("is not an ELF executable: "));
        let cut = unfit(&fit[..100]).unwrap();
        assert!(cut.starts_with("is a damaged ELF file: failed to read the program header table: "), "{cut}");
    }

    #[test]
    fn an_arm64_guest_needs_an_aarch64_init() {
        use crate::elf::{tests::build, EM_AARCH64, EM_X86_64};
        let arm = build(Class::Elf64, Endian::Little, EM_AARCH64, &[(1, b"code")], &[]);
        assert_eq!(unfit(&arm, Arch::Arm64), None);
        let x86 = build(Class::Elf64, Endian::Little, EM_X86_64, &[(1, b"code")], &[]);
        assert_eq!(
            unfit(&x86, Arch::Arm64).unwrap(),
            "is built for x86_64; the arm64 guest's /init must be aarch64"
        );
    }

    #[test]
    fn candidates_cover_install_and_cargo_layouts() {
        let c = candidates(Path::new("/repo/target/release/kdf"), Arch::X86_64);
        assert!(c.contains(&PathBuf::from("/repo/target/release/kdf-init")));
        assert!(c.contains(&PathBuf::from("/repo/target/x86_64-unknown-linux-musl/release/kdf-init")));
        let c = candidates(Path::new("/home/u/.cargo/bin/kdf"), Arch::Arm64);
        assert_eq!(c[0], PathBuf::from("/home/u/.cargo/bin/kdf-init-aarch64"));
        let c = candidates(Path::new("/repo/target/debug/kdf"), Arch::Arm64);
        assert!(c.contains(&PathBuf::from("/repo/target/aarch64-unknown-linux-musl/release/kdf-init")));
    }
}
