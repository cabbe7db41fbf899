//! The `virtiofsd` command line for one share, a pure function of its spec.
//! kdf creates the listening socket itself and passes it with `--fd`, so there
//! is never a wait for a socket file to appear.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// virtiofsd's cache policies (the Rust virtiofsd spells them this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Auto,
    Always,
    Metadata,
    Never,
}

impl CacheMode {
    pub const ALL: [CacheMode; 4] =
        [CacheMode::Auto, CacheMode::Always, CacheMode::Metadata, CacheMode::Never];

    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Auto => "auto",
            CacheMode::Always => "always",
            CacheMode::Metadata => "metadata",
            CacheMode::Never => "never",
        }
    }
}

impl std::str::FromStr for CacheMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        CacheMode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = CacheMode::ALL.iter().map(|m| m.name()).collect();
            format!("unknown cache mode {s:?} ({})", names.join(", "))
        })
    }
}

/// virtiofsd's isolation of itself from the rest of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    /// Mount + pid namespaces (needs root or unprivileged user namespaces,
    /// and a root directory that is a mount point).
    Namespace,
    /// chroot(2) into the shared directory (root only).
    Chroot,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtiofsd {
    pub binary: PathBuf,
    /// The listening socket, inherited by virtiofsd.
    pub fd: RawFd,
    pub shared_dir: PathBuf,
    pub readonly: bool,
    pub cache: CacheMode,
    pub sandbox: Sandbox,
    /// Open-file limit to ask for: kdf passes its hard limit, because virtiofsd
    /// holds a descriptor per inode the guest knows and its default (1,000,000)
    /// fails where the hard limit is lower.
    pub nofile: u64,
}

pub fn argv(v: &Virtiofsd) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        v.binary.clone().into(),
        "--fd".into(),
        v.fd.to_string().into(),
        "--shared-dir".into(),
        v.shared_dir.clone().into(),
        "--sandbox".into(),
        match v.sandbox {
            Sandbox::Namespace => "namespace",
            Sandbox::Chroot => "chroot",
            Sandbox::None => "none",
        }
        .into(),
        "--cache".into(),
        v.cache.name().into(),
        "--rlimit-nofile".into(),
        v.nofile.to_string().into(),
        "--log-level".into(),
        "error".into(),
        // Submounts of the share (e.g. /boot, /home on the host) get their own
        // st_dev in the guest, so inode numbers never collide.
        "--announce-submounts".into(),
    ];
    if v.readonly {
        out.push("--readonly".into());
    }
    if v.sandbox != Sandbox::Namespace {
        // File handles need the mount the shared directory is on in
        // /proc/self/mountinfo; in a chroot whose root is no mount point it is
        // not there ("Failed to find mount root for mount ID"). O_PATH
        // descriptors need nothing of the sort.
        out.push("--inode-file-handles=never".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_share_is_readonly_on_the_host_side() {
        let v = Virtiofsd {
            binary: "virtiofsd".into(),
            fd: 7,
            shared_dir: "/".into(),
            readonly: true,
            cache: CacheMode::Auto,
            sandbox: Sandbox::None,
            nofile: 20000,
        };
        let a: Vec<String> = argv(&v).iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(a[..7], ["virtiofsd", "--fd", "7", "--shared-dir", "/", "--sandbox", "none"]);
        assert!(a.contains(&"--readonly".to_string()));
        assert!(a.windows(2).any(|w| w == ["--rlimit-nofile", "20000"]));
        assert!(!a.iter().any(|s| s == "--tag"), "QEMU 7.1-8.0 crash on --tag");
    }

    #[test]
    fn writable_share_omits_readonly_and_names_the_cache_mode() {
        let v = Virtiofsd {
            binary: "virtiofsd".into(),
            fd: 3,
            shared_dir: "/home/u/src".into(),
            readonly: false,
            cache: CacheMode::Never,
            sandbox: Sandbox::Namespace,
            nofile: 1024,
        };
        let a: Vec<String> = argv(&v).iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(!a.contains(&"--readonly".to_string()));
        assert!(a.windows(2).any(|w| w == ["--cache", "never"]));
        assert!(a.windows(2).any(|w| w == ["--sandbox", "namespace"]));
    }

    #[test]
    fn outside_the_namespace_sandbox_no_file_handles_are_used() {
        let mut v = Virtiofsd {
            binary: "virtiofsd".into(),
            fd: 3,
            shared_dir: "/".into(),
            readonly: true,
            cache: CacheMode::Auto,
            sandbox: Sandbox::Chroot,
            nofile: 1024,
        };
        let has = |v: &Virtiofsd| argv(v).iter().any(|a| a == "--inode-file-handles=never");
        assert!(has(&v));
        v.sandbox = Sandbox::Namespace;
        assert!(!has(&v));
    }
}
