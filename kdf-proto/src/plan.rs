//! The plan the host sends once after `Hello`, and its parts (the command as
//! [`Exec`], user, shares, terminal size, `--module` files, network), with
//! their encoding. `kdf attach` sends an [`Exec`] of its own.

use crate::codec::{DecodeError, Reader, Writer};

/// Who runs the command in the guest; `None` in a plan means root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winsize {
    pub rows: u16,
    pub cols: u16,
}

/// One host directory the guest mounts. The host decides everything; the guest
/// only executes `mount(tag, target, fstype, flags, data)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The mount source: the virtiofs/9p tag.
    pub tag: String,
    /// `virtiofs` or `9p`.
    pub fstype: String,
    /// Filesystem-specific mount data (`trans=virtio,...` for 9p).
    pub data: String,
    /// Absolute path in the guest (relative to the new root).
    pub target: Vec<u8>,
    pub readonly: bool,
    /// Mount read-only below a tmpfs-backed overlay: writes stay in the guest.
    /// For the root (`shares[0]`) with `readonly`, the overlay only holds the
    /// mount points the root lacks, and the root is read-only once they are
    /// mounted.
    pub overlay: bool,
}

/// The guest's side of QEMU's user-mode network, configured statically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The interface's IPv4 address.
    pub address: [u8; 4],
    /// The subnet's prefix length (24 for 10.0.2.0/24).
    pub prefix_len: u8,
    /// The default route's gateway (QEMU's host address).
    pub gateway: [u8; 4],
    /// The resolver the guest's `/etc/resolv.conf` names (QEMU's DNS relay).
    pub nameserver: [u8; 4],
}

/// One command to start: what `execve` gets, where, as whom, and with which
/// streams. The run's command is the plan's; each `kdf attach` sends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// Exactly what `execve` gets; never empty.
    pub argv: Vec<Vec<u8>>,
    /// The file to execute, when the host found `argv[0]` on the command's
    /// `PATH` in the guest's files as they are at boot; the guest searches
    /// `PATH` itself without it, or when it cannot execute that file (each
    /// directory the search misses costs a round trip to virtiofsd).
    pub program: Option<Vec<u8>>,
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub cwd: Vec<u8>,
    pub user: Option<User>,
    /// A pseudo-terminal of this size for the command, or plain pipes.
    pub tty: Option<Winsize>,
    /// Forward stdin; otherwise the command reads `/dev/null`.
    pub stdin: bool,
}

/// Everything kdf-init needs to run one command, sent once after `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub version: u32,
    pub command: Exec,
    /// `shares[0]` is the new root; the rest are mounted in order after the
    /// guest's own filesystems (so a share below `/tmp` stays the host's).
    pub shares: Vec<Share>,
    /// kdf's own modules (the VM's devices and filesystems) to load, with
    /// their dependencies, from the initramfs before mounting shares.
    pub modules: Vec<String>,
    pub hostname: String,
    /// Host wall clock (ns since the Unix epoch) when the plan was sent.
    pub clock_ns: u64,
    /// Modules given with `--module`, loaded in this order after the shares
    /// are mounted, each after the kernel modules it depends on.
    pub user_modules: Vec<ModuleFile>,
    /// Unload `user_modules` in reverse order after the command.
    pub unload: bool,
    /// Send the kernel log (`ToHost::Kmsg`) from boot until the command ended.
    pub kmsg: bool,
    /// Configure the first network interface this way; `None`: loopback only.
    pub network: Option<Network>,
}

/// One `--module`: where the guest finds the file, and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// The module's name (`helloworld`), for messages and unloading.
    pub name: String,
    /// Absolute path in the guest.
    pub path: Vec<u8>,
    /// `PARAM=VALUE ...`, as `insmod` takes them.
    pub params: String,
    /// The kernel's modules it needs (its `.modinfo` `depends=`, less the
    /// other `--module` files), loaded with their own dependencies from the
    /// kernel's `modules.dep` once the host's files are mounted (the
    /// initramfs holds only kdf's modules).
    pub depends: Vec<String>,
}

pub(crate) fn put_winsize(w: &mut Writer, ws: &Winsize) {
    w.u16(ws.rows).u16(ws.cols);
}

pub(crate) fn get_winsize(r: &mut Reader) -> Result<Winsize, DecodeError> {
    Ok(Winsize { rows: r.u16()?, cols: r.u16()? })
}

fn put_share(w: &mut Writer, s: &Share) {
    w.str(&s.tag).str(&s.fstype).str(&s.data).bytes(&s.target);
    w.bool(s.readonly).bool(s.overlay);
}

fn get_share(r: &mut Reader) -> Result<Share, DecodeError> {
    Ok(Share {
        tag: r.string()?,
        fstype: r.string()?,
        data: r.string()?,
        target: r.bytes()?.to_vec(),
        readonly: r.bool()?,
        overlay: r.bool()?,
    })
}

fn put_network(w: &mut Writer, n: &Network) {
    w.raw(&n.address).u8(n.prefix_len).raw(&n.gateway).raw(&n.nameserver);
}

fn get_ipv4(r: &mut Reader) -> Result<[u8; 4], DecodeError> {
    Ok([r.u8()?, r.u8()?, r.u8()?, r.u8()?])
}

fn get_network(r: &mut Reader) -> Result<Network, DecodeError> {
    let address = get_ipv4(r)?;
    let prefix_len = r.u8()?;
    if prefix_len > 32 {
        return Err(DecodeError("network prefix length over 32"));
    }
    Ok(Network { address, prefix_len, gateway: get_ipv4(r)?, nameserver: get_ipv4(r)? })
}

pub(crate) fn put_option<T>(w: &mut Writer, v: &Option<T>, put: impl FnOnce(&mut Writer, &T)) {
    match v {
        None => {
            w.bool(false);
        }
        Some(v) => {
            w.bool(true);
            put(w, v);
        }
    }
}

pub(crate) fn get_option<T>(
    r: &mut Reader,
    get: impl FnOnce(&mut Reader) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    if r.bool()? {
        get(r).map(Some)
    } else {
        Ok(None)
    }
}

impl Exec {
    pub(crate) fn put(&self, w: &mut Writer) {
        w.list(&self.argv, |w, a| {
            w.bytes(a);
        });
        put_option(w, &self.program, |w, p| {
            w.bytes(p);
        });
        w.list(&self.env, |w, (k, v)| {
            w.bytes(k).bytes(v);
        });
        w.bytes(&self.cwd);
        put_option(w, &self.user, |w, u| {
            w.u32(u.uid).u32(u.gid).list(&u.groups, |w, g| {
                w.u32(*g);
            });
        });
        put_option(w, &self.tty, put_winsize);
        w.bool(self.stdin);
    }

    pub(crate) fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let argv: Vec<Vec<u8>> = r.list(|r| Ok(r.bytes()?.to_vec()))?;
        if argv.is_empty() {
            return Err(DecodeError("command with an empty argv"));
        }
        Ok(Exec {
            argv,
            program: get_option(r, |r| Ok(r.bytes()?.to_vec()))?,
            env: r.list(|r| Ok((r.bytes()?.to_vec(), r.bytes()?.to_vec())))?,
            cwd: r.bytes()?.to_vec(),
            user: get_option(r, |r| Ok(User { uid: r.u32()?, gid: r.u32()?, groups: r.list(|r| r.u32())? }))?,
            tty: get_option(r, get_winsize)?,
            stdin: r.bool()?,
        })
    }
}

impl Plan {
    pub(crate) fn put(&self, w: &mut Writer) {
        w.u32(self.version);
        self.command.put(w);
        w.list(&self.shares, put_share);
        w.list(&self.modules, |w, m| {
            w.str(m);
        });
        w.str(&self.hostname).u64(self.clock_ns);
        w.list(&self.user_modules, |w, m| {
            w.str(&m.name).bytes(&m.path).str(&m.params);
            w.list(&m.depends, |w, d| {
                w.str(d);
            });
        });
        w.bool(self.unload).bool(self.kmsg);
        put_option(w, &self.network, put_network);
    }

    pub(crate) fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let version = r.u32()?;
        if version != crate::PROTOCOL_VERSION {
            // Nothing after the version can be trusted to have the same shape.
            return Err(DecodeError("plan from a different protocol version"));
        }
        Ok(Plan {
            version,
            command: Exec::get(r)?,
            shares: r.list(get_share)?,
            modules: r.list(|r| r.string())?,
            hostname: r.string()?,
            clock_ns: r.u64()?,
            user_modules: r.list(|r| {
                Ok(ModuleFile {
                    name: r.string()?,
                    path: r.bytes()?.to_vec(),
                    params: r.string()?,
                    depends: r.list(|r| r.string())?,
                })
            })?,
            unload: r.bool()?,
            kmsg: r.bool()?,
            network: get_option(r, get_network)?,
        })
    }
}
