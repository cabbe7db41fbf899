//! Which fragments a kernel config is made of, in order: `configs/vm.config`,
//! the profile, `rust.config`, `bpf.config`, the user's fragments, `--set`.
//! The files are compiled into kdf, so an installed kdf needs no checkout.

use super::fragment::{Entry, Fragment, Origin, ParseError, Value};

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

/// Every compiled-in fragment.
#[cfg(test)]
pub const ALL: [Builtin; 5] = [VM, FAST, DEBUG, RUST, BPF];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Quick to build and boot, debuggable with gdb.
    Fast,
    /// The full debug set: KASAN, lockdep, UBSAN, ftrace, kgdb.
    Debug,
}

/// What the user asked for, with the user's fragment files already read.
#[derive(Debug, Clone)]
pub struct Request {
    pub profile: Profile,
    pub rust: bool,
    pub bpf: bool,
    /// Built with `LLVM=1` (clang) rather than GCC.
    pub llvm: bool,
    /// `(name for messages, text)`, in command-line order.
    pub fragments: Vec<(String, String)>,
    pub sets: Vec<Entry>,
}

/// The merged request, and notices about what kdf changed in it and why.
#[derive(Debug, Clone)]
pub struct Requested {
    pub fragment: Fragment,
    pub notices: Vec<String>,
}

/// The compiled-in fragments a request uses, in merge order.
pub fn builtins(req: &Request) -> Vec<Builtin> {
    let mut out = vec![VM];
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

/// Merges the request's fragments, later ones winning.
pub fn requested(req: &Request) -> Result<Requested, ParseError> {
    let mut fragment = Fragment::default();
    for b in builtins(req) {
        fragment.merge(Fragment::parse(b.text, b.name)?);
    }
    let notices = reconcile(&mut fragment, req);
    for (name, text) in &req.fragments {
        fragment.merge(Fragment::parse(text, name)?);
    }
    for entry in &req.sets {
        fragment.set(entry.clone());
    }
    Ok(Requested { fragment, notices })
}

/// Settles conflicts between kdf's own fragments; what the user requests
/// afterwards (fragments, `--set`) is left as asked, and verified.
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
    use crate::kbuild::fragment::parse_set;

    fn req(profile: Profile) -> Request {
        Request { profile, rust: true, bpf: false, llvm: false, fragments: Vec::new(), sets: Vec::new() }
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
    fn fragments_merge_in_order_and_set_wins_last() {
        let mut r = req(Profile::Fast);
        r.rust = false;
        r.bpf = true;
        r.fragments.push(("mine.config".into(), "# CONFIG_KPROBES is not set\nCONFIG_PVH=y\n".into()));
        r.sets.push(parse_set("CONFIG_PVH=n").unwrap());
        let names: Vec<_> = builtins(&r).iter().map(|b| b.name).collect();
        assert_eq!(names, ["configs/vm.config", "configs/fast.config", "configs/bpf.config"]);
        let f = requested(&r).unwrap().fragment;
        assert_eq!(f.value("CONFIG_RUST"), &Value::No);
        assert_eq!(f.get("CONFIG_KPROBES").unwrap().origin.to_string(), "mine.config:1");
        assert_eq!(f.value("CONFIG_PVH"), &Value::No);
        assert_eq!(f.get("CONFIG_PVH").unwrap().origin.to_string(), "--set");
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

    #[test]
    fn a_users_explicit_kasan_is_kept_and_left_to_verification() {
        let mut r = req(Profile::Fast);
        r.sets.push(parse_set("CONFIG_KASAN=y").unwrap());
        let out = requested(&r).unwrap();
        assert_eq!(out.fragment.value("CONFIG_KASAN"), &Value::Yes);
        assert!(out.notices.is_empty());
    }

    #[test]
    fn a_broken_user_fragment_is_named() {
        let mut r = req(Profile::Fast);
        r.fragments.push(("mine.config".into(), "PVH=y\n".into()));
        assert_eq!(requested(&r).unwrap_err().origin.to_string(), "mine.config:1");
    }
}
