//! Finding the `kdf-init` binary and checking it can be PID 1 of any kernel:
//! a static x86_64 ELF (a dynamic one would need a loader the initramfs lacks).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::elf::{self, Class, Elf, Endian, EM_X86_64};
use crate::errors::hinted;

const BUILD_HINT: &str = "run scripts/setup.sh, or build it with `cargo build --release -p kdf-init \
     --target x86_64-unknown-linux-musl` and pass --init PATH (or set KDF_INIT)";

/// Where to look when neither `--init` nor `KDF_INIT` says: next to `kdf`
/// (cargo install, Nix), `../lib/kdf/`, and a cargo target directory's musl build.
pub fn candidates(exe: &Path) -> Vec<PathBuf> {
    let Some(dir) = exe.parent() else { return Vec::new() };
    let mut out = vec![dir.join("kdf-init"), dir.join("../lib/kdf/kdf-init")];
    if let Some(target) = dir.parent() {
        for profile in ["release", "debug"] {
            out.push(target.join("x86_64-unknown-linux-musl").join(profile).join("kdf-init"));
        }
    }
    out
}

pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let found: Vec<PathBuf> = candidates(&exe).into_iter().filter(|p| p.is_file()).collect();
    // `cargo build --workspace` leaves a dynamic host build next to kdf: take
    // the first that can be /init, else the first found (`read` says why not).
    let fit = found.iter().find(|p| std::fs::read(p).is_ok_and(|b| unfit(&b).is_none()));
    fit.or(found.first())
        .cloned()
        .ok_or_else(|| hinted("cannot find kdf-init (the guest's /init)", BUILD_HINT))
}

/// The binary's bytes, refused unless it is a static x86_64 ELF64.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| hinted(format!("cannot read kdf-init at {}: {e}", path.display()), BUILD_HINT))?;
    if let Some(why) = unfit(&bytes) {
        return Err(hinted(format!("{} {why}", path.display()), BUILD_HINT));
    }
    Ok(bytes)
}

/// Why an executable cannot be the guest's /init, if it cannot, said after
/// its path.
fn unfit(bytes: &[u8]) -> Option<String> {
    let elf = match Elf::parse(bytes) {
        Ok(elf) => elf,
        Err(e) => return Some(format!("is not an ELF executable: {e:#}")),
    };
    if elf.class != Class::Elf64 {
        return Some("is a 32-bit ELF; the guest's /init must be a 64-bit x86_64 one".into());
    }
    if elf.endian != Endian::Little || elf.machine != EM_X86_64 {
        let machine = elf::machine_name(elf.machine).map_or(format!("machine {}", elf.machine), String::from);
        let order = if elf.endian == Endian::Big { "big-endian " } else { "" };
        return Some(format!("is built for {order}{machine}; the guest's /init must be x86_64"));
    }
    match elf.has_interpreter() {
        Ok(false) => None,
        Ok(true) => Some("is dynamically linked and cannot run as the guest's /init".into()),
        Err(e) => Some(format!("is a damaged ELF file: {e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic() {
        // cargo test binaries link glibc dynamically: a PT_INTERP must be found.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(unfit(&exe).unwrap(), "is dynamically linked and cannot run as the guest's /init");
    }

    #[test]
    fn only_a_static_x86_64_elf64_is_fit() {
        use crate::elf::tests::build;
        let fit = build(Class::Elf64, Endian::Little, EM_X86_64, &[(1, b"code")], &[]);
        assert_eq!(unfit(&fit), None);
        let i386 = build(Class::Elf32, Endian::Little, 3, &[(1, b"code")], &[]);
        assert!(unfit(&i386).unwrap().starts_with("is a 32-bit ELF"));
        let arm = build(Class::Elf64, Endian::Little, 183, &[(1, b"code")], &[]);
        assert_eq!(unfit(&arm).unwrap(), "is built for aarch64; the guest's /init must be x86_64");
        let s390 = build(Class::Elf64, Endian::Big, 22, &[(1, b"code")], &[]);
        assert!(unfit(&s390).unwrap().starts_with("is built for big-endian s390;"));
        assert!(unfit(b"#!/bin/sh\n").unwrap().starts_with("is not an ELF executable: "));
        assert!(unfit(b"\x7fELF").unwrap().starts_with("is not an ELF executable: "));
        let cut = unfit(&fit[..100]).unwrap();
        assert!(cut.starts_with("is a damaged ELF file: failed to read the program header table: "), "{cut}");
    }

    #[test]
    fn candidates_cover_install_and_cargo_layouts() {
        let c = candidates(Path::new("/repo/target/release/kdf"));
        assert!(c.contains(&PathBuf::from("/repo/target/release/kdf-init")));
        assert!(c.contains(&PathBuf::from("/repo/target/x86_64-unknown-linux-musl/release/kdf-init")));
    }
}
