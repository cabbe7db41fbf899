//! The guest's network: the loopback always; with a plan's [`Network`]
//! (`kdf run --network user`), the first other interface configured
//! statically with ioctls (address, netmask, up, default route; no DHCP
//! client) and a guest-only `/etc/resolv.conf` naming QEMU's resolver.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use kdf_proto::{Network, Plan, GUEST_TMPFS, RESOLV_CONF};
use nix::mount::{mount, MsFlags};

use crate::log::{say, Fatal};

/// How long the interface may take to appear after `virtio_net` loaded.
const INTERFACE_WAIT: Duration = Duration::from_secs(10);

/// Where kdf-init writes the guest's resolver file before binding it over
/// the root's (on the guest's own `/run`).
const GUEST_RESOLV: &str = "/run/kdf/resolv.conf";

/// Brings up `lo`; failures are the caller's to report.
pub fn loopback_up() -> std::io::Result<()> {
    let sock = socket()?;
    set_flags(&sock, "lo", libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING)
}

/// Configures the plan's network, if any: the interface (a failure ends the
/// VM: the user asked for a network), then the resolver file (a warning).
pub fn configure(plan: &Plan) -> Result<(), Fatal> {
    let Some(net) = plan.network else { return Ok(()) };
    let name = wait_for_interface()?;
    let sock = socket().map_err(|e| Fatal(format!("cannot open a socket to configure {name}: {e}")))?;
    let fail = |what: &str, e: std::io::Error| Fatal(format!("cannot {what} of {name}: {e}"));
    ioctl_addr(&sock, &name, libc::SIOCSIFADDR, net.address).map_err(|e| fail("set the address", e))?;
    ioctl_addr(&sock, &name, libc::SIOCSIFNETMASK, netmask(net.prefix_len))
        .map_err(|e| fail("set the netmask", e))?;
    set_flags(&sock, &name, libc::IFF_UP | libc::IFF_RUNNING).map_err(|e| fail("bring up", e))?;
    add_default_route(&sock, net.gateway).map_err(|e| fail("add the default route", e))?;
    if let Err(e) = resolv_conf(&net) {
        say(&format!("warning: the guest has no {RESOLV_CONF} of its own: {e}"));
    }
    Ok(())
}

/// The first interface besides the loopback, in name order.
pub fn pick_interface(mut names: Vec<String>) -> Option<String> {
    names.sort();
    names.into_iter().find(|n| n != "lo")
}

fn wait_for_interface() -> Result<String, Fatal> {
    let start = Instant::now();
    loop {
        let names = std::fs::read_dir("/sys/class/net")
            .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        if let Some(name) = pick_interface(names) {
            return Ok(name);
        }
        if start.elapsed() > INTERFACE_WAIT {
            return Err(Fatal(format!(
                "no network interface appeared within {}s (is virtio_net loaded?)",
                INTERFACE_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The netmask of a prefix length: 24 -> 255.255.255.0.
pub fn netmask(prefix_len: u8) -> [u8; 4] {
    let bits = u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0);
    bits.to_be_bytes()
}

/// An IPv4 `sockaddr` (a `sockaddr_in` with port 0), as the ioctls take it.
pub fn sockaddr_in(ip: [u8; 4]) -> libc::sockaddr {
    // SAFETY: sockaddr is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::AF_INET as libc::sa_family_t;
    // sa_data: the port (2 bytes, 0 here), then the address.
    for (dst, src) in sa.sa_data[2..6].iter_mut().zip(ip) {
        *dst = src as libc::c_char;
    }
    sa
}

/// The resolver file's text.
pub fn resolv_text(nameserver: [u8; 4]) -> String {
    let [a, b, c, d] = nameserver;
    format!("# kdf: QEMU's user network resolver (guest-only)\nnameserver {a}.{b}.{c}.{d}\n")
}

/// Where the guest's resolver file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvPlace {
    /// The root's file is a link into the guest's own tmpfs (`/run/...`):
    /// write the file it points to.
    Write(PathBuf),
    /// Bind the guest's file over this existing one.
    Bind(PathBuf),
    /// There is none: create an empty one to bind over (a writable root).
    Create(PathBuf),
}

/// Decides where the resolver file goes from `/etc/resolv.conf`'s link
/// target (`None`: not a link) and whether it exists.
pub fn resolv_place(link: Option<&Path>, exists: bool) -> ResolvPlace {
    let file = PathBuf::from(RESOLV_CONF);
    if let Some(target) = link {
        let resolved = normalize(&file.parent().unwrap_or(Path::new("/")).join(target));
        if GUEST_TMPFS.iter().any(|t| resolved.starts_with(t)) {
            return ResolvPlace::Write(resolved);
        }
        return ResolvPlace::Bind(file);
    }
    if exists {
        ResolvPlace::Bind(file)
    } else {
        ResolvPlace::Create(file)
    }
}

/// Removes `.` and `..` lexically (`/etc/../run/x` -> `/run/x`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn resolv_conf(net: &Network) -> std::io::Result<()> {
    let file = Path::new(RESOLV_CONF);
    let link = std::fs::read_link(file).ok();
    let place = resolv_place(link.as_deref(), file.exists());
    let text = resolv_text(net.nameserver);
    let target = match place {
        ResolvPlace::Write(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            return std::fs::write(path, text);
        }
        ResolvPlace::Bind(path) => path,
        ResolvPlace::Create(path) => {
            std::fs::File::create(&path)?;
            path
        }
    };
    if let Some(dir) = Path::new(GUEST_RESOLV).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(GUEST_RESOLV, text)?;
    mount(Some(GUEST_RESOLV), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    Ok(())
}

fn socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming `name`.
fn ifreq(name: &str) -> std::io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
        return Err(std::io::Error::other(format!("bad interface name {name:?}")));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(OsStr::new(name).as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_flags(sock: &OwnedFd, name: &str, flags: libc::c_int) -> std::io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid, NUL-terminated ifreq we own.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) })
}

fn ioctl_addr(sock: &OwnedFd, name: &str, request: libc::c_ulong, ip: [u8; 4]) -> std::io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(ip);
    // SAFETY: SIOCSIFADDR/SIOCSIFNETMASK read a valid ifreq we own.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), request as _, &req) })
}

/// The default route through `gateway` (0.0.0.0/0; no device: the kernel
/// picks the interface whose subnet holds the gateway).
pub fn default_route(gateway: [u8; 4]) -> libc::rtentry {
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr_in([0; 4]);
    route.rt_genmask = sockaddr_in([0; 4]);
    route.rt_gateway = sockaddr_in(gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    route
}

fn add_default_route(sock: &OwnedFd, gateway: [u8; 4]) -> std::io::Result<()> {
    let route = default_route(gateway);
    // SAFETY: SIOCADDRT reads a valid rtentry we own (rt_dev NULL).
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCADDRT as _, &route) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_of_prefix_lengths() {
        assert_eq!(netmask(24), [255, 255, 255, 0]);
        assert_eq!(netmask(0), [0, 0, 0, 0]);
        assert_eq!(netmask(32), [255, 255, 255, 255]);
        assert_eq!(netmask(17), [255, 255, 128, 0]);
    }

    #[test]
    fn the_sockaddr_is_a_sockaddr_in() {
        let sa = sockaddr_in([10, 0, 2, 15]);
        // SAFETY: sockaddr and sockaddr_in have the same size; reading it back
        // as sockaddr_in checks the layout the kernel will see.
        let sin: libc::sockaddr_in = unsafe { std::mem::transmute(sa) };
        assert_eq!(sin.sin_family as i32, libc::AF_INET);
        assert_eq!(sin.sin_port, 0);
        assert_eq!(sin.sin_addr.s_addr.to_ne_bytes(), [10, 0, 2, 15]);
    }

    #[test]
    fn the_default_route_goes_through_the_gateway() {
        let r = default_route([10, 0, 2, 2]);
        assert_eq!(r.rt_flags, libc::RTF_UP | libc::RTF_GATEWAY);
        assert_eq!(r.rt_gateway.sa_data[2..6], sockaddr_in([10, 0, 2, 2]).sa_data[2..6]);
        assert!(r.rt_dst.sa_data.iter().chain(&r.rt_genmask.sa_data).all(|&b| b == 0), "0.0.0.0/0");
        assert_eq!(r.rt_dst.sa_family as i32, libc::AF_INET);
        assert!(r.rt_dev.is_null());
    }

    #[test]
    fn the_first_interface_besides_lo() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(pick_interface(names(&["lo", "eth1", "eth0"])), Some("eth0".into()));
        assert_eq!(pick_interface(names(&["lo"])), None);
        assert_eq!(pick_interface(names(&["enp0s2"])), Some("enp0s2".into()));
    }

    #[test]
    fn the_resolver_file_names_the_nameserver() {
        assert!(resolv_text([10, 0, 2, 3]).ends_with("\nnameserver 10.0.2.3\n"));
    }

    #[test]
    fn the_resolver_file_goes_over_the_roots_or_where_its_link_points() {
        let file = PathBuf::from("/etc/resolv.conf");
        assert_eq!(resolv_place(None, true), ResolvPlace::Bind(file.clone()));
        assert_eq!(resolv_place(None, false), ResolvPlace::Create(file.clone()));
        // systemd-resolved's link points into /run, which is the guest's own.
        assert_eq!(
            resolv_place(Some(Path::new("../run/systemd/resolve/stub-resolv.conf")), false),
            ResolvPlace::Write("/run/systemd/resolve/stub-resolv.conf".into())
        );
        assert_eq!(
            resolv_place(Some(Path::new("/run/resolvconf/resolv.conf")), true),
            ResolvPlace::Write("/run/resolvconf/resolv.conf".into())
        );
        assert_eq!(resolv_place(Some(Path::new("resolv.conf.real")), true), ResolvPlace::Bind(file));
    }

    #[test]
    fn bad_interface_names_are_refused() {
        assert!(ifreq("eth0").is_ok());
        assert!(ifreq("a-name-far-too-long").is_err());
        assert!(ifreq("a\0b").is_err());
    }
}
