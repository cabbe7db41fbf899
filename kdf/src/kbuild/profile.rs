//! kdf's own fragments, in merge order: `configs/vm.config`, the
//! architecture's (`x86_64.config`, `arm64.config`), the profile,
//! `rust.config`, `bpf.config`, with their conflicts settled. The files are
//! compiled into kdf, so an installed kdf needs no checkout. What the user
//! adds on top (fragments, `--set`) and the base underneath are layers
//! ([`super::layers`]).

use super::fragment::{Entry, Fragment, Origin, ParseError, Value};
use crate::arch::Arch;

/// A fragment compiled into kdf, named by its path in the repository.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub text: &'static str,
}

pub const VM: Builtin =
    Builtin { name: "configs/vm.config", text: include_str!("../../../configs/vm.config") };
pub const FAST: Builtin =
    Builtin { name: "configs/fast.config", text: include_str!("../../../configs/fast.config") };
pub const DEBUG: Builtin =
    Builtin { name: "configs/debug.config", text: include_str!("../../../configs/debug.config") };
pub const RUST: Builtin =
    Builtin { name: "configs/rust.config", text: include_str!("../../../configs/rust.config") };
pub const BPF: Builtin =
    Builtin { name: "configs/bpf.config", text: include_str!("../../../configs/bpf.config") };
pub const X86_64_CONFIG: Builtin =
    Builtin { name: "configs/x86_64.config", text: include_str!("../../../configs/x86_64.config") };
pub const ARM64_CONFIG: Builtin =
    Builtin { name: "configs/arm64.config", text: include_str!("../../../configs/arm64.config") };

/// kdf's fragment for an architecture (applied after vm.config).
pub fn arch_fragment(arch: Arch) -> Builtin {
    match arch {
        Arch::X86_64 => X86_64_CONFIG,
        Arch::Arm64 => ARM64_CONFIG,
    }
}

/// Every compiled-in fragment.
#[cfg(test)]
pub const ALL: [Builtin; 7] = [VM, X86_64_CONFIG, ARM64_CONFIG, FAST, DEBUG, RUST, BPF];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Quick to build and boot, debuggable with gdb.
    Fast,
    /// The full debug set: KASAN, lockdep, UBSAN, ftrace, kgdb.
    Debug,
}

/// Which of kdf's fragments the user chose.
#[derive(Debug, Clone)]
pub struct Request {
    /// The architecture: its fragment goes right after vm.config.
    pub arch: Arch,
    pub profile: Profile,
    pub rust: bool,
    pub bpf: bool,
    /// Built with `LLVM=1` (clang) rather than GCC.
    pub llvm: bool,
}

/// kdf's merged fragments, and notices about what kdf changed in them and why.
#[derive(Debug, Clone)]
pub struct Requested {
    pub fragment: Fragment,
    pub notices: Vec<String>,
}

/// The compiled-in fragments a request uses, in merge order.
pub fn builtins(req: &Request) -> Vec<Builtin> {
    let mut out = vec![VM, arch_fragment(req.arch)];
    out.push(match req.profile {
        Profile::Fast => FAST,
        Profile::Debug => DEBUG,
    });
    if req.rust {
        out.push(RUST);
    }
    if req.bpf {
        out.push(BPF);
    }
    out
}

/// Merges kdf's fragments for the request, later ones winning.
pub fn requested(req: &Request) -> Result<Requested, ParseError> {
    let mut fragment = Fragment::default();
    for b in builtins(req) {
        fragment.merge(Fragment::parse(b.text, b.name)?);
    }
    let notices = reconcile(&mut fragment, req);
    Ok(Requested { fragment, notices })
}

/// Settles conflicts between kdf's own fragments; what the user requests
/// on top (fragments, `--set`) is left as asked, and verified.
fn reconcile(fragment: &mut Fragment, req: &Request) -> Vec<String> {
    let mut notices = Vec::new();
    // init/Kconfig: RUST depends on `!KASAN || CC_IS_CLANG`.
    if req.rust && !req.llvm && *fragment.value("CONFIG_KASAN") == Value::Yes {
        for name in ["CONFIG_KASAN", "CONFIG_KASAN_GENERIC"] {
            if fragment.get(name).is_some() {
                let origin = Origin { source: "kdf (Rust with GCC excludes KASAN)".into(), line: 0 };
                fragment.set(Entry { name: name.into(), value: Value::No, origin });
            }
        }
        notices.push(
            "KASAN is left out: with GCC it excludes Rust (RUST depends on !KASAN || CC_IS_CLANG); \
             build with --llvm for both, or --no-rust for KASAN"
                .into(),
        );
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(profile: Profile) -> Request {
        Request { arch: Arch::X86_64, profile, rust: true, bpf: false, llvm: false }
    }

    #[test]
    fn every_builtin_fragment_parses() {
        for b in ALL {
            Fragment::parse(b.text, b.name).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn the_fast_profile_has_what_the_issue_asks_for() {
        let f = requested(&req(Profile::Fast)).unwrap().fragment;
        for on in [
            "CONFIG_PVH",
            "CONFIG_RUST",
            "CONFIG_DEBUG_INFO_DWARF5",
            "CONFIG_GDB_SCRIPTS",
            "CONFIG_IKCONFIG_PROC",
            "CONFIG_FRAME_POINTER",
            "CONFIG_VIRTIO_FS",
            "CONFIG_SERIAL_8250_CONSOLE",
        ] {
            assert_eq!(f.value(on), &Value::Yes, "{on}");
        }
        for off in
            ["CONFIG_KASAN", "CONFIG_PROVE_LOCKING", "CONFIG_UBSAN", "CONFIG_FTRACE", "CONFIG_BPF_SYSCALL"]
        {
            assert_eq!(f.value(off), &Value::No, "{off}");
        }
    }

    #[test]
    fn each_architectures_fragment_has_its_console() {
        for arch in [Arch::X86_64, Arch::Arm64] {
            let b = arch_fragment(arch);
            let f = Fragment::parse(b.text, b.name).unwrap();
            assert_eq!(f.value(crate::kbuild::arch::console_option(arch)), &Value::Yes, "{arch}");
            assert!(b.name.contains(&arch.to_string()));
        }
    }

    #[test]
    fn arm64_has_its_console_and_pci_host_and_none_of_x86s_options() {
        let mut r = req(Profile::Fast);
        r.arch = Arch::Arm64;
        let out = requested(&r).unwrap();
        assert!(out.notices.is_empty(), "{:?}", out.notices);
        let f = out.fragment;
        for on in [
            "CONFIG_SERIAL_AMBA_PL011_CONSOLE",
            "CONFIG_PCI_HOST_GENERIC",
            "CONFIG_VIRTIO_MMIO",
            "CONFIG_RUST",
        ] {
            assert_eq!(f.value(on), &Value::Yes, "{on}");
        }
        let x86 = Fragment::parse(X86_64_CONFIG.text, X86_64_CONFIG.name).unwrap();
        for e in x86.entries() {
            assert!(f.get(&e.name).is_none(), "{} is x86's", e.name);
        }
        // And x86 has none of arm64's.
        let arm = Fragment::parse(ARM64_CONFIG.text, ARM64_CONFIG.name).unwrap();
        let x = requested(&req(Profile::Debug)).unwrap().fragment;
        assert!(arm.entries().iter().all(|e| x.get(&e.name).is_none()));
    }

    #[test]
    fn builtins_merge_in_order() {
        let mut r = req(Profile::Fast);
        r.rust = false;
        r.bpf = true;
        let names: Vec<_> = builtins(&r).iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            ["configs/vm.config", "configs/x86_64.config", "configs/fast.config", "configs/bpf.config"]
        );
        let f = requested(&r).unwrap().fragment;
        assert_eq!(f.value("CONFIG_RUST"), &Value::No);
        // bpf.config comes after fast.config and turns FTRACE back on.
        assert_eq!(f.value("CONFIG_FTRACE"), &Value::Yes);
        assert_eq!(f.get("CONFIG_FTRACE").unwrap().origin.source, "configs/bpf.config");
    }

    #[test]
    fn rust_with_gcc_leaves_kasan_out_of_the_debug_profile_and_says_so() {
        let out = requested(&req(Profile::Debug)).unwrap();
        assert_eq!(out.fragment.value("CONFIG_KASAN"), &Value::No);
        assert_eq!(out.fragment.value("CONFIG_RUST"), &Value::Yes);
        assert!(out.notices[0].contains("KASAN is left out"), "{:?}", out.notices);

        let mut clang = req(Profile::Debug);
        clang.llvm = true;
        let out = requested(&clang).unwrap();
        assert_eq!(out.fragment.value("CONFIG_KASAN"), &Value::Yes);
        assert!(out.notices.is_empty());

        let mut no_rust = req(Profile::Debug);
        no_rust.rust = false;
        assert_eq!(requested(&no_rust).unwrap().fragment.value("CONFIG_KASAN"), &Value::Yes);
    }
}
