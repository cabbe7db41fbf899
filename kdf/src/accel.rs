//! Choosing KVM or TCG. `/dev/kvm` opening is not proof that KVM boots Linux
//! (on some machines QEMU stops the guest with "KVM internal error" and waits
//! forever), so KVM stays tentative until a guest has booted under it; the
//! verdict is cached per host kernel and CPU.

use std::path::PathBuf;

use anyhow::Result;

use crate::cache;
use crate::errors::hinted;
use crate::vm::qemu::Accel;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub accel: Accel,
    /// KVM not yet seen to boot Linux here: fall back to TCG if it fails.
    pub tentative: bool,
    /// TCG after KVM failed in this run: recorded once a guest boots under it.
    pub fallback: bool,
    /// Why kdf chose TCG, for `-v`.
    pub notice: Option<String>,
}

/// The QEMU stderr lines that mean KVM cannot run this guest: its KVM error
/// reports, and assertions in its KVM code (seen here: "failed to set MSR
/// 0x10a", then `kvm.c: kvm_buf_set_msrs: Assertion ... failed` and SIGABRT).
pub fn is_kvm_failure(line: &str) -> bool {
    line.contains("KVM internal error")
        || line.contains("failed to initialize kvm")
        || line.contains("KVM_RUN failed")
        || line.contains("failed to set MSR")
        || line.contains("/kvm/kvm.c:")
}

fn verdict_path() -> Result<PathBuf> {
    let release =
        nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .unwrap_or_default()
        .to_string();
    Ok(cache::subdir("accel")?.join(cache::digest([release, cpu])))
}

/// The KVM device: `KDF_KVM_DEVICE` (for tests), else /dev/kvm.
fn kvm_device() -> PathBuf {
    std::env::var_os("KDF_KVM_DEVICE").map(PathBuf::from).unwrap_or_else(|| "/dev/kvm".into())
}

fn kvm_openable() -> Result<(), String> {
    let device = kvm_device();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&device)
        .map(drop)
        .map_err(|e| format!("{}: {e}", device.display()))
}

pub fn decide(forced: Option<Accel>) -> Result<Decision> {
    match forced {
        Some(Accel::Tcg) => {
            return Ok(Decision { accel: Accel::Tcg, tentative: false, fallback: false, notice: None })
        }
        Some(Accel::Kvm) => {
            kvm_openable().map_err(|e| {
                hinted(
                    format!("--accel kvm: KVM is not usable ({e})"),
                    "add yourself to the kvm group, or drop --accel kvm",
                )
            })?;
            return Ok(Decision { accel: Accel::Kvm, tentative: false, fallback: false, notice: None });
        }
        None => {}
    }
    if let Err(why) = kvm_openable() {
        let notice = format!("KVM is not available ({why}); using TCG (slower)");
        return Ok(Decision { accel: Accel::Tcg, tentative: false, fallback: false, notice: Some(notice) });
    }
    let verdict = std::fs::read_to_string(verdict_path()?).unwrap_or_default();
    Ok(match verdict.trim() {
        "kvm" => Decision { accel: Accel::Kvm, tentative: false, fallback: false, notice: None },
        "tcg" => Decision { accel: Accel::Tcg, tentative: false, fallback: false, notice: None },
        _ => Decision { accel: Accel::Kvm, tentative: true, fallback: false, notice: None },
    })
}

/// Remembers what works on this machine.
pub fn record(accel: Accel) -> Result<()> {
    let word = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg",
    };
    cache::write_atomic(&verdict_path()?, word.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_qemu_kvm_failures() {
        assert!(is_kvm_failure("KVM internal error. Suberror: 1"));
        assert!(is_kvm_failure("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69"));
        assert!(is_kvm_failure(
            "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == n' failed."
        ));
        assert!(!is_kvm_failure("qemu-system-x86_64: warning: host doesn't support requested feature"));
    }
}
