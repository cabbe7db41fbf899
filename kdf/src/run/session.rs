//! Executing a prepared run: the runtime directory, signals and the raw
//! terminal, then one attempt after another (a second one under TCG when KVM
//! turns out not to boot Linux): start virtiofsd and QEMU with their
//! descriptors (QMP sockets and scratch disks too), the console and channel
//! threads, and hand over to [`super::supervise`]'s main loop.

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::{AsFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
use signal_hook::iterator::Signals;

use super::attempt::Attempt;
use super::console::{self, Tail};
use super::debug;
use super::prepare::Prepared;
use super::spec;
use super::supervise::Run;
use super::timings::Timings;
use crate::accel::{self, Decision};
use crate::attach::router::Router;
use crate::child::Guard;
use crate::disks;
use crate::relay::channel::{self, Credit, Writer};
use crate::relay::event::Event;
use crate::relay::terminal::{self, RawMode};
use crate::runs::{self, Record};
use crate::runtime::{self, RuntimeDir};
use crate::ui::{self, say};
use crate::vm::qemu::{self, Accel};
use crate::vm::virtiofsd::{self, Virtiofsd};

/// What a session holds across attempts: the QMP socket others connect to,
/// the scratch disks (their contents survive a KVM fallback), the gdb stub's
/// listening socket (`-d`) and the attach channel's router.
struct Held {
    qmp: QmpSocket,
    /// `(descriptor number, file)`: each scratch disk read-write, then read-only.
    scratch: Vec<(RawFd, File)>,
    gdb: Option<TcpListener>,
    router: Router,
}

/// The listening QMP socket; its file goes when the run ends.
struct QmpSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl QmpSocket {
    fn bind(path: &Path) -> Result<QmpSocket> {
        let listener =
            UnixListener::bind(path).with_context(|| format!("failed to listen on {}", path.display()))?;
        Ok(QmpSocket { path: path.to_path_buf(), listener })
    }
}

impl Drop for QmpSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn execute(p: &Prepared, started: Instant) -> Result<i32> {
    let runtime = runtime::create()?;
    let qmp = QmpSocket::bind(&p.hw.qmp.clone().unwrap_or_else(|| runtime.path().join("qmp.sock")))?;
    let mut scratch = Vec::new();
    for (i, disk) in p.hw.disks.iter().enumerate().filter(|(_, d)| d.file.is_none()) {
        let number = spec::FIRST_DISK_FD + 2 * i as RawFd;
        let (rw, ro) = disks::create_scratch(runtime.path(), disk.bytes)?;
        scratch.extend([(number, rw), (number + 1, ro)]);
    }
    let gdb = p.debug.map(|d| debug::listen(d.port)).transpose()?;
    let gdb_port = gdb.as_ref().map(debug::port).transpose()?;
    let attach = runtime.path().join("attach.sock");
    let router = Router::listen(&attach)?;
    let held = Held { qmp, scratch, gdb, router };
    runs::publish(&runtime, &record(p, &runtime, &held, gdb_port, attach)?)?;
    if let (Some(port), Some(d)) = (gdb_port, p.debug) {
        // The one line kdf prints without -v: the port is the point of -d.
        say(&debug::announce(port, d.wait));
    }
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP, SIGWINCH]).context("failed to set up signal handling")?;
    let mut accel = p.accel.clone();
    if let Some(notice) = accel.notice.as_ref().filter(|_| p.verbose) {
        say(notice);
    }
    let _raw = match p.tty && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        true => Some(RawMode::enter()?),
        false => None,
    };
    if _raw.is_some() {
        ui::set_raw(true);
        say(&format!("interactive session ({})", terminal::ESCAPE_HELP));
    }
    let result = loop {
        match attempt(p, &accel, &runtime, &held, &mut signals, started) {
            Ok(Attempt::Finished(status)) => break Ok(status),
            Ok(Attempt::KvmFailed(why)) => {
                say(&format!("KVM cannot boot Linux on this machine ({why}); retrying under TCG (slower)"));
                // Recorded only once a guest boots under TCG (see supervise).
                accel = Decision { accel: Accel::Tcg, tentative: false, fallback: true, notice: None };
            }
            Err(e) => break Err(e),
        }
    };
    ui::set_raw(false);
    result
}

/// What `kdf gdb` and friends need to find this run.
fn record(
    p: &Prepared,
    runtime: &RuntimeDir,
    held: &Held,
    gdb_port: Option<u16>,
    attach: PathBuf,
) -> Result<Record> {
    let cwd = crate::shares::current_dir()?;
    Ok(Record {
        pid: std::process::id(),
        cwd: cwd.canonicalize().unwrap_or(cwd),
        kernel: p.kernel.image.clone(),
        release: p.kernel.release.clone(),
        dir: runtime.path().to_path_buf(),
        gdb_port,
        qmp: Some(held.qmp.path.clone()),
        vmlinux: p.vmlinux.clone(),
        modules: p.module_files.clone(),
        attach: Some(attach),
        arch: Some(p.arch.name().to_string()),
    })
}

/// A listening socket per virtiofsd, and QEMU's end of a connection to
/// each. kdf connects itself (the connection waits in the backlog until
/// virtiofsd accepts it), so QEMU gets a descriptor rather than a path and
/// the socket file is gone before anything runs.
fn daemon_sockets(count: usize, runtime: &RuntimeDir) -> Result<(Vec<UnixListener>, Vec<UnixStream>)> {
    let (mut listeners, mut connections) = (Vec::new(), Vec::new());
    for i in 0..count {
        let socket = runtime.path().join(format!("fs{i}.sock"));
        // A previous attempt (KVM fallback) may have left it.
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("failed to listen on {}", socket.display()))?;
        let connection = UnixStream::connect(&socket)
            .with_context(|| format!("failed to connect to {}", socket.display()))?;
        let _ = std::fs::remove_file(&socket);
        listeners.push(listener);
        connections.push(connection);
    }
    Ok((listeners, connections))
}

/// The virtiofsd daemons, each on its listening socket. Started after QEMU:
/// QEMU's own start (loading its libraries and the kernel) covers theirs,
/// and waiting for three execs first cost every run ~6 ms.
fn start_daemons(specs: &[Virtiofsd], listeners: Vec<UnixListener>) -> Result<Vec<Guard>> {
    let mut daemons = Vec::new();
    for (daemon, listener) in specs.iter().zip(listeners) {
        let argv = virtiofsd::argv(daemon);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        daemons.push(Guard::spawn("virtiofsd", cmd, &[(listener.as_fd(), daemon.fd)], None)?);
    }
    Ok(daemons)
}

fn attempt(
    p: &Prepared,
    decision: &Decision,
    runtime: &RuntimeDir,
    held: &Held,
    signals: &mut Signals,
    started: Instant,
) -> Result<Attempt> {
    let mut timings = Timings::new(started);
    let daemon_specs = spec::virtiofsd(p);
    let (listeners, connections) = daemon_sockets(daemon_specs.len(), runtime)?;
    let (console_host, console_vm) = UnixStream::pair().context("failed to create a socket pair")?;
    let (channel_host, channel_vm) = UnixStream::pair().context("failed to create a socket pair")?;
    let (attach_host, attach_vm) = UnixStream::pair().context("failed to create a socket pair")?;
    let vm = spec::vm(p, decision.accel);
    // kdf's own monitor, for --vmcore.
    let (qmp_host, qmp_vm) = match vm.monitors.private_fd {
        Some(_) => {
            let (h, v) = UnixStream::pair().context("failed to create a socket pair")?;
            (Some(h), Some(v))
        }
        None => (None, None),
    };
    let mut fds = vec![
        (console_vm.as_fd(), vm.console_fd),
        (channel_vm.as_fd(), vm.channel_fd),
        (attach_vm.as_fd(), vm.attach_fd),
        (held.qmp.listener.as_fd(), spec::QMP_LISTEN_FD),
    ];
    if let Some(v) = &qmp_vm {
        fds.push((v.as_fd(), spec::QMP_FD));
    }
    for (i, c) in connections.iter().enumerate() {
        fds.push((c.as_fd(), spec::FIRST_SHARE_FD + i as i32));
    }
    if let Some(listener) = &held.gdb {
        fds.push((listener.as_fd(), spec::GDB_FD));
    }
    for (number, file) in &held.scratch {
        fds.push((file.as_fd(), *number));
    }
    let argv = qemu::argv(&vm);
    let (tx, rx) = mpsc::channel();
    let kvm_tx = tx.clone();
    let hook = move |line: &str| {
        if accel::is_kvm_failure(line) {
            let _ = kvm_tx.send(Event::KvmFailure(line.to_string()));
        }
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let qemu = Guard::spawn("QEMU", cmd, &fds, Some(Box::new(hook)))
        .map_err(|e| e.context(format!("failed to start {}", p.qemu.display())))?;
    timings.mark("qemu started");
    drop(fds);
    drop((console_vm, channel_vm, attach_vm, connections, qmp_vm));
    let daemons = start_daemons(&daemon_specs, listeners)?;
    held.router.guest(attach_host)?;

    let tail = Tail::default();
    let log = match &p.console_log {
        Some(path) => {
            Some(File::create(path).with_context(|| format!("failed to create {}", path.display()))?)
        }
        None => None,
    };
    let echo = p.verbose.then_some(ui::STDERR);
    let console_tail = tail.clone();
    let panics = tx.clone();
    std::thread::spawn(move || console::pump(console_host, console_tail, log, echo, Some(panics)));
    let writer = Writer::new(channel_host.try_clone().context("failed to clone a socket")?);
    let credit = Credit::default();
    let (w, c, t) = (writer.clone(), credit.clone(), tx.clone());
    std::thread::spawn(move || channel::pump(channel_host, w, c, t, channel::Sinks::std()));

    let mut run = Run::new(p, decision, qemu, daemons, (writer, credit, tx), tail, timings, started);
    run.qmp = qmp_host;
    Ok(run.main_loop(&rx, signals))
}
