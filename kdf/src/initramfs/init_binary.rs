//! Finding the `kdf-init` binary and checking it can be PID 1 of any kernel:
//! a static x86_64 ELF (a dynamic one would need a loader the initramfs lacks).

use std::path::{Path, PathBuf};

use anyhow::Result;

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
    candidates(&exe)
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| hinted("cannot find kdf-init (the guest's /init)", BUILD_HINT))
}

/// The binary's bytes, refused unless it is a static ELF.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| hinted(format!("cannot read kdf-init at {}: {e}", path.display()), BUILD_HINT))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(hinted(format!("{} is not an ELF executable", path.display()), BUILD_HINT));
    }
    if has_interpreter(&bytes) {
        return Err(hinted(
            format!("{} is dynamically linked and cannot run as the guest's /init", path.display()),
            BUILD_HINT,
        ));
    }
    Ok(bytes)
}

/// Whether an ELF64 has a PT_INTERP program header (needs a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    let get = |at: usize, n: usize| elf.get(at..at + n);
    let (Some(phoff), Some(entsize), Some(num)) = (get(0x20, 8), get(0x36, 2), get(0x38, 2)) else {
        return false;
    };
    let phoff = u64::from_le_bytes(phoff.try_into().unwrap()) as usize;
    let entsize = u16::from_le_bytes(entsize.try_into().unwrap()) as usize;
    let num = u16::from_le_bytes(num.try_into().unwrap()) as usize;
    (0..num).any(|i| get(phoff + i * entsize, 4) == Some(&3u32.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_dynamic() {
        // cargo test binaries link glibc dynamically: a PT_INTERP must be found.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&exe));
        assert!(!has_interpreter(b"\x7fELF"));
    }

    #[test]
    fn candidates_cover_install_and_cargo_layouts() {
        let c = candidates(Path::new("/repo/target/release/kdf"));
        assert!(c.contains(&PathBuf::from("/repo/target/release/kdf-init")));
        assert!(c.contains(&PathBuf::from("/repo/target/x86_64-unknown-linux-musl/release/kdf-init")));
    }
}
