//! Every mount kdf-init makes: the early kernel filesystems, the switch to the
//! root share (the host's `/` or a `--root`, read-only, writable, or under a
//! tmpfs overlay that holds what it lacks), the guest's own filesystems (a
//! const table), then the host's shares in the order kdf chose.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kdf_proto::{Plan, Share};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::log::{say, Fatal};

/// A filesystem the guest always gets.
#[derive(Debug)]
struct SystemMount {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
    data: &'static str,
    /// Optional ones (debugging filesystems a kernel may lack) only warn.
    required: bool,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// Mounted in the initramfs before anything else, then moved under the new root.
const EARLY: &[SystemMount] = &[
    SystemMount {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
        required: true,
    },
    SystemMount { fstype: "proc", target: "/proc", flags: NOSUID_NODEV_NOEXEC, data: "", required: true },
    SystemMount { fstype: "sysfs", target: "/sys", flags: NOSUID_NODEV_NOEXEC, data: "", required: true },
];

/// The links udev or systemd would add to `/dev`; devtmpfs has none of them.
/// Without them `echo x >> /dev/stdout` quietly writes a file in `/dev`
/// (kselftest's runner prints its TAP lines that way, and they were lost) and
/// bash's `<(...)` fails ("/dev/fd/63: No such file or directory").
const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// Mounted in the new root, before the host's shares.
const SYSTEM: &[SystemMount] = &[
    SystemMount {
        fstype: "devpts",
        target: "/dev/pts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "gid=5,mode=620,ptmxmode=666",
        required: true,
    },
    SystemMount {
        fstype: "tmpfs",
        target: "/dev/shm",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        required: true,
    },
    SystemMount { fstype: "tmpfs", target: "/tmp", flags: NOSUID_NODEV, data: "mode=1777", required: true },
    SystemMount { fstype: "tmpfs", target: "/run", flags: NOSUID_NODEV, data: "mode=0755", required: true },
    SystemMount {
        fstype: "tmpfs",
        target: "/var/tmp",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        required: false,
    },
    SystemMount {
        fstype: "debugfs",
        target: "/sys/kernel/debug",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
    },
    SystemMount {
        fstype: "tracefs",
        target: "/sys/kernel/tracing",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
    },
    SystemMount {
        fstype: "configfs",
        target: "/sys/kernel/config",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
    },
    SystemMount {
        fstype: "bpf",
        target: "/sys/fs/bpf",
        flags: NOSUID_NODEV_NOEXEC,
        data: "mode=0700",
        required: false,
    },
    SystemMount {
        fstype: "cgroup2",
        target: "/sys/fs/cgroup",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        required: false,
    },
];

const NEW_ROOT: &str = "/newroot";
/// An overlaid root's layers, in the initramfs (hidden once the root moves).
const ROOT_LOWER: &str = "/kdf-root/lower";
const ROOT_LAYERS: &str = "/kdf-root/layers";

/// One step of mounting the host's shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Mkdir(PathBuf),
    Mount { source: String, target: PathBuf, fstype: String, flags: MsFlags, data: String },
}

fn path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// The steps that mount `shares` (all but the root), in order. An overlay share
/// is mounted read-only below `/run/kdf/overlay/<tag>` with a tmpfs-backed
/// upper layer, so the guest can write and the host never sees it.
pub fn share_steps(shares: &[Share]) -> Vec<Step> {
    let mut steps = Vec::new();
    for share in shares {
        let target = path(&share.target);
        let ro = if share.readonly || share.overlay { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        let mount_share = |target: PathBuf| Step::Mount {
            source: share.tag.clone(),
            target,
            fstype: share.fstype.clone(),
            flags: ro,
            data: share.data.clone(),
        };
        if !share.overlay {
            steps.push(mount_share(target));
            continue;
        }
        let base = PathBuf::from(format!("/run/kdf/overlay/{}", share.tag));
        let (lower, upper, work) = (base.join("lower"), base.join("upper"), base.join("work"));
        steps.push(Step::Mkdir(upper.clone()));
        steps.push(Step::Mkdir(work.clone()));
        steps.push(mount_share(lower.clone()));
        steps.push(Step::Mount {
            source: "overlay".into(),
            target,
            fstype: "overlay".into(),
            flags: MsFlags::empty(),
            data: format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            ),
        });
    }
    steps
}

/// The steps that mount the root share on `new_root`: as it is, or (an
/// overlay root) read-only below a tmpfs upper layer, so mount points it
/// lacks can be made without writing to the host.
pub fn root_steps(root: &Share, new_root: &Path) -> Vec<Step> {
    let flags = if root.readonly || root.overlay { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    let mount_root = |target: PathBuf| Step::Mount {
        source: root.tag.clone(),
        target,
        fstype: root.fstype.clone(),
        flags,
        data: root.data.clone(),
    };
    if !root.overlay {
        return vec![mount_root(new_root.to_path_buf())];
    }
    let layers = Path::new(ROOT_LAYERS);
    let (upper, work) = (layers.join("upper"), layers.join("work"));
    vec![
        mount_root(ROOT_LOWER.into()),
        Step::Mount {
            source: "tmpfs".into(),
            target: layers.to_path_buf(),
            fstype: "tmpfs".into(),
            flags: MsFlags::empty(),
            data: "mode=0755".into(),
        },
        Step::Mkdir(upper.clone()),
        Step::Mkdir(work.clone()),
        Step::Mount {
            source: "overlay".into(),
            target: new_root.to_path_buf(),
            fstype: "overlay".into(),
            flags: MsFlags::empty(),
            data: format!("lowerdir={ROOT_LOWER},upperdir={},workdir={}", upper.display(), work.display()),
        },
    ]
}

fn execute(steps: Vec<Step>) -> Result<(), Fatal> {
    for step in steps {
        match step {
            Step::Mkdir(dir) => std::fs::create_dir_all(&dir)
                .map_err(|e| Fatal(format!("cannot create {}: {e}", dir.display())))?,
            Step::Mount { source, target, fstype, flags, data } => {
                mount_one(&source, &target, &fstype, flags, &data)?
            }
        }
    }
    Ok(())
}

fn mount_one(source: &str, target: &Path, fstype: &str, flags: MsFlags, data: &str) -> Result<(), Fatal> {
    std::fs::create_dir_all(target)
        .map_err(|e| Fatal(format!("cannot create mount point {}: {e}", target.display())))?;
    let data = (!data.is_empty()).then_some(data);
    mount(Some(source), target, Some(fstype), flags, data).map_err(|e| {
        let hint = match (e, fstype) {
            (Errno::ENODEV, "virtiofs") => " (the kernel lacks CONFIG_VIRTIO_FS)",
            (Errno::ENODEV, "9p") => " (the kernel lacks CONFIG_9P_FS and CONFIG_NET_9P_VIRTIO)",
            (Errno::ENODEV, "overlay") => " (the kernel lacks CONFIG_OVERLAY_FS)",
            (Errno::ENOENT, "virtiofs" | "9p") => " (no device with that tag: is the driver loaded?)",
            _ => "",
        };
        Fatal(format!("cannot mount {fstype} {source} on {}: {}{hint}", target.display(), e.desc()))
    })
}

fn mount_system(m: &SystemMount, prefix: &str) -> Result<(), Fatal> {
    let target = PathBuf::from(format!("{prefix}{}", m.target));
    match mount_one(m.fstype, &target, m.fstype, m.flags, m.data) {
        Err(e) if !m.required => {
            say(&format!("warning: {e}"));
            Ok(())
        }
        other => other,
    }
}

const MODPROBE: &str = "/proc/sys/kernel/modprobe";

/// Runs `f` with kernel module autoloading off. Mounting bpffs otherwise makes
/// the kernel run the host's modprobe for `bpf_preload` (a module with a
/// user-mode helper): about 100 ms under TCG on every boot, for two debug
/// iterator files. Autoloading is restored for the command.
fn without_module_autoload<T>(f: impl FnOnce() -> T) -> T {
    let saved = std::fs::read_to_string(MODPROBE).ok();
    if saved.is_some() {
        let _ = std::fs::write(MODPROBE, "\n");
    }
    let result = f();
    if let Some(path) = saved {
        let _ = std::fs::write(MODPROBE, path);
    }
    result
}

fn is_mountpoint(p: &str) -> bool {
    let parent = Path::new(p).parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(p), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// devtmpfs (with [`DEV_LINKS`]), proc and sysfs in the initramfs: needed to
/// find the port and load modules.
pub fn early() -> Result<(), Fatal> {
    for m in EARLY {
        if !is_mountpoint(m.target) {
            mount_system(m, "")?;
        }
    }
    for (link, target) in DEV_LINKS {
        match std::os::unix::fs::symlink(target, link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                say(&format!("warning: cannot create {link}: {e}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Mounts the root share, moves the early mounts into it, makes it `/`, then
/// mounts the guest's filesystems and the other shares.
pub fn switch_to_host(plan: &Plan) -> Result<(), Fatal> {
    let (root, rest) = plan.shares.split_first().ok_or(Fatal("the plan has no root share".into()))?;
    execute(root_steps(root, Path::new(NEW_ROOT)))?;
    for m in EARLY {
        let to = format!("{NEW_ROOT}{}", m.target);
        // A no-op where the root has it; kdf overlays a read-only root that lacks it.
        std::fs::create_dir_all(&to).map_err(|e| Fatal(format!("cannot create mount point {to}: {e}")))?;
        mount(Some(m.target), to.as_str(), None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|e| Fatal(format!("cannot move {} to {to}: {}", m.target, e.desc())))?;
    }
    nix::unistd::chdir(NEW_ROOT)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| Fatal(format!("cannot move {NEW_ROOT} to /: {}", e.desc())))?;
    nix::unistd::chroot(".")?;
    nix::unistd::chdir("/")?;
    without_module_autoload(|| SYSTEM.iter().try_for_each(|m| mount_system(m, "")))?;
    execute(share_steps(rest))
}

/// Makes a read-only root overlaid only for its mount points read-only, once
/// everything is mounted on it (the guest's resolver file included).
pub fn seal_root(plan: &Plan) -> Result<(), Fatal> {
    match plan.shares.first() {
        Some(root) if root.readonly && root.overlay => {
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
            mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
                .map_err(|e| Fatal(format!("cannot make / read-only: {}", e.desc())))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(tag: &str, target: &str, readonly: bool, overlay: bool) -> Share {
        Share {
            tag: tag.into(),
            fstype: "virtiofs".into(),
            data: String::new(),
            target: target.as_bytes().to_vec(),
            readonly,
            overlay,
        }
    }

    #[test]
    fn plain_shares_mount_in_order_with_their_mode() {
        let steps =
            share_steps(&[share("kdf1", "/home/u/src", false, false), share("kdf2", "/opt", true, false)]);
        assert_eq!(
            steps,
            [
                Step::Mount {
                    source: "kdf1".into(),
                    target: "/home/u/src".into(),
                    fstype: "virtiofs".into(),
                    flags: MsFlags::empty(),
                    data: String::new()
                },
                Step::Mount {
                    source: "kdf2".into(),
                    target: "/opt".into(),
                    fstype: "virtiofs".into(),
                    flags: MsFlags::MS_RDONLY,
                    data: String::new()
                },
            ]
        );
    }

    #[test]
    fn overlay_share_is_a_readonly_lower_under_a_guest_only_upper() {
        let steps = share_steps(&[share("kdf3", "/data", false, true)]);
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0], Step::Mkdir("/run/kdf/overlay/kdf3/upper".into()));
        assert!(matches!(&steps[2], Step::Mount { flags, target, .. }
            if *flags == MsFlags::MS_RDONLY && target == Path::new("/run/kdf/overlay/kdf3/lower")));
        let Step::Mount { fstype, data, target, .. } = &steps[3] else { panic!("not a mount") };
        assert_eq!(fstype, "overlay");
        assert_eq!(target, Path::new("/data"));
        assert_eq!(
            data,
            "lowerdir=/run/kdf/overlay/kdf3/lower,upperdir=/run/kdf/overlay/kdf3/upper,\
             workdir=/run/kdf/overlay/kdf3/work"
        );
    }

    #[test]
    fn a_root_is_mounted_as_it_is_unless_overlaid() {
        let new_root = Path::new("/newroot");
        let steps = root_steps(&share("kdf0", "/", true, false), new_root);
        assert!(matches!(&steps[..], [Step::Mount { flags, target, .. }]
            if *flags == MsFlags::MS_RDONLY && target == new_root));
        let steps = root_steps(&share("kdf0", "/", false, false), new_root);
        assert!(matches!(&steps[..], [Step::Mount { flags, .. }] if flags.is_empty()));
    }

    #[test]
    fn an_overlaid_root_has_a_read_only_lower_and_a_tmpfs_upper() {
        for readonly in [true, false] {
            let steps = root_steps(&share("kdf0", "/", readonly, true), Path::new("/newroot"));
            assert_eq!(steps.len(), 5);
            assert!(matches!(&steps[0], Step::Mount { source, flags, target, .. }
                if source == "kdf0" && *flags == MsFlags::MS_RDONLY && target == Path::new(ROOT_LOWER)));
            assert!(matches!(&steps[1], Step::Mount { fstype, .. } if fstype == "tmpfs"));
            let Step::Mount { fstype, data, target, flags, .. } = &steps[4] else { panic!("not a mount") };
            assert_eq!((fstype.as_str(), target.as_path()), ("overlay", Path::new("/newroot")));
            assert!(flags.is_empty(), "writable until sealed");
            assert_eq!(
                data,
                "lowerdir=/kdf-root/lower,upperdir=/kdf-root/layers/upper,workdir=/kdf-root/layers/work"
            );
        }
    }

    #[test]
    fn the_root_mount_points_are_the_top_of_every_system_mount() {
        for m in EARLY.iter().chain(SYSTEM) {
            assert!(
                kdf_proto::ROOT_MOUNT_POINTS.iter().any(|p| Path::new(m.target).starts_with(p)),
                "{} is under none of kdf_proto::ROOT_MOUNT_POINTS",
                m.target
            );
        }
    }

    #[test]
    fn any_bytes_survive_as_the_target() {
        let steps = share_steps(&[share("kdf1", "/tmp/a b:c,d=e\n\u{e9}", false, false)]);
        let Step::Mount { target, .. } = &steps[0] else { panic!("not a mount") };
        assert_eq!(target.as_os_str().as_bytes(), "/tmp/a b:c,d=e\n\u{e9}".as_bytes());
    }

    #[test]
    fn the_guest_gets_tmpfs_on_tmp_run_and_var_tmp() {
        for &t in kdf_proto::GUEST_TMPFS {
            assert!(SYSTEM.iter().any(|m| m.target == t && m.fstype == "tmpfs"), "{t}");
        }
        for fs in ["devpts", "debugfs", "tracefs", "configfs", "bpf", "cgroup2"] {
            assert!(SYSTEM.iter().any(|m| m.fstype == fs), "{fs}");
        }
    }
}
