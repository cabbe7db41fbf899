//! A fake QEMU for kdf's tests (started through `KDF_QEMU`): it takes QEMU's
//! command line, finds the console and channel descriptors kdf handed it, and
//! plays a scripted guest on them, speaking kdf-proto as kdf-init would. No
//! kernel boots, so a test of the run's state machine takes milliseconds.
//!
//! `KDF_FAKE_GUEST` names the guest (below); `KDF_FAKE_GUEST_KVM` another one
//! to play when the machine asks for KVM. `KDF_FAKE_LOG`, if set, is a file
//! the fake appends what it saw to (`argv`, `plan`, `ack`, `signal N`) and
//! why it reset after an exit (`ack`, `channel closed`, `no ack`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use kdf_proto::{read_frame, Outcome, ToGuest, ToHost, PROTOCOL_VERSION};

/// What kdf handed this process.
struct Machine {
    kvm: bool,
    /// kdf's own QMP monitor, with `--vmcore`.
    qmp: Option<i32>,
    console: File,
    channel: File,
}

fn fd_of(argv: &[String], id: &str) -> i32 {
    try_fd_of(argv, id).unwrap_or_else(|| panic!("fake qemu: no -chardev socket,id={id},fd=N in {argv:?}"))
}

fn try_fd_of(argv: &[String], id: &str) -> Option<i32> {
    let key = format!("socket,id={id},fd=");
    argv.iter().find_map(|a| a.strip_prefix(&key)).and_then(|fd| fd.split(',').next()?.parse().ok())
}

/// Plays QEMU's side of kdf's own QMP monitor (`--vmcore`): `dump` writes a
/// small flattened kdump (a header and a vmcoreinfo note) into the descriptor
/// `getfd` passed; `refuse` refuses the dump.
fn serve_qmp(fd: i32, mode: &str) {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsRawFd;
    // SAFETY: kdf handed this descriptor over under this number (-chardev qmp).
    let socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let mut out = socket.try_clone().expect("clone");
    let reply = |out: &mut std::os::unix::net::UnixStream, line: &str| {
        let _ = writeln!(out, "{line}");
    };
    reply(&mut out, r#"{"QMP": {"version": {}, "capabilities": []}}"#);
    let mut passed: Option<File> = None;
    let mut reader = BufReader::new(socket);
    loop {
        let mut line = String::new();
        // getfd's descriptor comes with its line (SCM_RIGHTS): read it with recvmsg.
        if passed.is_none() {
            let mut buf = [0u8; 4096];
            let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let fd = reader.get_ref().as_raw_fd();
            let Ok(msg) = nix::sys::socket::recvmsg::<()>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                nix::sys::socket::MsgFlags::empty(),
            ) else {
                return;
            };
            let n = msg.bytes;
            for c in msg.cmsgs().into_iter().flatten() {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                    // SAFETY: the descriptor just arrived and is ours alone.
                    passed = fds.first().map(|&f| unsafe { File::from_raw_fd(f) });
                }
            }
            if n == 0 {
                return;
            }
            line = String::from_utf8_lossy(&buf[..n]).into_owned();
        } else if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        for command in line.lines().filter(|l| !l.trim().is_empty()) {
            log(&format!("qmp {command}"));
            if command.contains("query-dump-guest-memory-capability") {
                reply(&mut out, r#"{"return": {"formats": ["elf", "kdump-zlib"]}}"#);
            } else if command.contains("\"dump-guest-memory\"") && mode == "refuse" {
                reply(&mut out, r#"{"error": {"class": "GenericError", "desc": "fake: no dump"}}"#);
            } else if command.contains("\"dump-guest-memory\"") {
                let mut file = passed.take().expect("a descriptor from getfd");
                let _ = file.write_all(&flattened_kdump());
                drop(file);
                reply(&mut out, r#"{"return": {}}"#);
            } else {
                if command.contains("\"closefd\"") {
                    passed = None;
                }
                reply(&mut out, r#"{"return": {}}"#);
            }
        }
    }
}

/// makedumpfile's flattened format: a kdump header at 0, a note at 4096.
fn flattened_kdump() -> Vec<u8> {
    let mut out = b"makedumpfile\0".to_vec();
    out.resize(16, 0);
    out.extend(1i64.to_be_bytes());
    out.extend(1i64.to_be_bytes());
    out.resize(4096, 0);
    let mut header = b"KDUMP   ".to_vec();
    header.extend(6i32.to_le_bytes());
    header.resize(512, 0);
    let note = b"VMCOREINFO\0OSRELEASE=0.0.0-fake\nPAGESIZE=4096\n".to_vec();
    for (offset, data) in [(0i64, header), (4096, note)] {
        out.extend(offset.to_be_bytes());
        out.extend((data.len() as i64).to_be_bytes());
        out.extend(data);
    }
    out.extend((-1i64).to_be_bytes());
    out.extend((-1i64).to_be_bytes());
    out
}

fn log(what: &str) {
    if let Some(path) = std::env::var_os("KDF_FAKE_LOG") {
        let mut f = OpenOptions::new().create(true).append(true).open(path).expect("log file");
        writeln!(f, "{what}").expect("log");
    }
}

impl Machine {
    fn send(&mut self, msg: &ToHost) {
        // The host may be gone: a fake never fails on that.
        let _ = self.channel.write_all(&msg.encode());
    }

    fn console(&mut self, line: &str) {
        let _ = writeln!(self.console, "{line}");
    }

    fn recv(&mut self) -> Option<ToGuest> {
        let (tag, payload) = read_frame(&mut self.channel, kdf_proto::MAX_FRAME).ok()??;
        let msg = ToGuest::decode(tag, &payload).expect("kdf sent a frame kdf-proto cannot decode");
        match &msg {
            ToGuest::Plan(_) => log("plan"),
            ToGuest::Ack => log("ack"),
            ToGuest::Signal(n) => log(&format!("signal {n}")),
            ToGuest::StdoutClosed => log("stdout closed"),
            ToGuest::StderrClosed => log("stderr closed"),
            _ => {}
        }
        Some(msg)
    }

    /// Hello, then the plan.
    fn boot(&mut self) {
        self.console("Linux version 0.0.0-fake (fake qemu)");
        self.send(&ToHost::Hello { version: PROTOCOL_VERSION, release: "0.0.0-fake".into() });
        while !matches!(self.recv(), Some(ToGuest::Plan(_)) | None) {}
        self.send(&ToHost::Ready { marks: vec![("init".into(), 1)] });
    }

    /// Sends the exit and waits (10 s at most) for kdf's acknowledgement, as
    /// kdf-init does, then "resets" (exits).
    fn exit(&mut self, outcome: Outcome) -> ! {
        self.send(&ToHost::Exit(outcome));
        self.await_ack()
    }

    /// Logs why it "resets": `ack`, `channel closed` or `no ack`. The
    /// acknowledgement is peeked, never read: kdf kills QEMU as soon as it
    /// has sent it, often before this logs, and the frame then stays in the
    /// socket for a test that took a copy of it (`pidfd_getfd`) to find.
    fn await_ack(&mut self) -> ! {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::{AsFd, AsRawFd};
        let ack = ToGuest::Ack.encode();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.channel.as_fd(), PollFlags::POLLIN)];
            if left.is_zero() || poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n == 0) {
                log("no ack");
                break;
            }
            let mut head = vec![0u8; ack.len()];
            match recv(self.channel.as_raw_fd(), &mut head, MsgFlags::MSG_PEEK) {
                Ok(n) if n == ack.len() && head == ack => {
                    log("ack");
                    break;
                }
                Ok(0) | Err(_) => {
                    log("channel closed");
                    break;
                }
                // Another message first (a signal, say), or part of one: take it.
                Ok(_) => match self.recv() {
                    Some(ToGuest::Ack) => break,
                    Some(_) => {}
                    None => {
                        log("channel closed");
                        break;
                    }
                },
            }
        }
        std::process::exit(0)
    }

    /// Writes `total` bytes of stdout in chunks, then exits 0.
    fn output(&mut self, total: usize) -> ! {
        let mut left = total;
        while left > 0 {
            let n = left.min(kdf_proto::MAX_DATA);
            self.send(&ToHost::Stdout(vec![b'x'; n]));
            left -= n;
        }
        self.exit(Outcome::Exited(0))
    }
}

fn play(m: &mut Machine, guest: &str) -> ! {
    let (name, arg) = guest.split_once(':').unwrap_or((guest, ""));
    match name {
        // `exit:N`: a command that prints a line to each stream and exits N.
        "exit" => {
            m.boot();
            m.send(&ToHost::Stdout(b"out\n".to_vec()));
            m.send(&ToHost::Stderr(b"err\n".to_vec()));
            m.exit(Outcome::Exited(arg.parse().expect("exit:N")))
        }
        // `kunit:pass|fail|cut`: KUnit's example suite in the kernel log
        // (passing, with a failing case, or cut off mid-suite), then exit 0.
        "kunit" => {
            m.boot();
            let mut lines = vec![
                "KTAP version 1",
                "1..1",
                "    KTAP version 1",
                "    # Subtest: example",
                "    1..3",
                "    ok 1 example_simple_test",
                "    ok 2 example_skip_test # SKIP this test should be skipped",
            ];
            match arg {
                "pass" => lines.extend(["    ok 3 example_mark_test", "ok 1 example"]),
                "fail" => lines.extend(["    not ok 3 example_mark_test", "not ok 1 example"]),
                _ => {}
            }
            let records = lines.iter().map(|l| format!("6,1,1,-;{l}").into_bytes()).collect();
            m.send(&ToHost::Kmsg(records));
            m.exit(Outcome::Exited(0))
        }
        // `output:BYTES` of stdout, then exit 0.
        "output" => {
            m.boot();
            m.output(arg.parse().expect("output:BYTES"))
        }
        // Stderr (or with `flood:stdout`, stdout) without end; ignores
        // signals (a stuck command).
        "flood" => {
            m.boot();
            let chunk = vec![b'y'; kdf_proto::MAX_DATA];
            loop {
                m.send(&if arg == "stdout" {
                    ToHost::Stdout(chunk.clone())
                } else {
                    ToHost::Stderr(chunk.clone())
                });
            }
        }
        // Runs until signalled, then exits with that signal.
        "wait-signal" => {
            m.boot();
            loop {
                match m.recv() {
                    Some(ToGuest::Signal(n)) => m.exit(Outcome::Signaled(n)),
                    Some(_) => {}
                    None => std::process::exit(0),
                }
            }
        }
        // A setup step fails after the plan.
        "failed" => {
            m.send(&ToHost::Hello { version: PROTOCOL_VERSION, release: "0.0.0-fake".into() });
            while !matches!(m.recv(), Some(ToGuest::Plan(_)) | None) {}
            m.console("kdf-init: error: cannot mount the host's files: ENODEV");
            m.send(&ToHost::Failed { step: "mount the host's files".into(), message: "ENODEV".into() });
            m.await_ack()
        }
        // The command panics the kernel, which waits (`panic=0`) while QMP
        // serves kdf's dump (`dump` or `refuse`, see serve_qmp).
        "panic-wait" => {
            m.boot();
            m.console("Kernel panic - not syncing: sysrq triggered crash");
            m.console("---[ end Kernel panic - not syncing: sysrq triggered crash ]---");
            if let Some(fd) = m.qmp {
                serve_qmp(fd, arg);
            }
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        // The kernel panics before init runs.
        "panic" => {
            m.console("Kernel panic - not syncing: No working init found.");
            std::process::exit(0)
        }
        // QEMU dies at once, silently (or with `arg` on stderr).
        "die" => {
            if !arg.is_empty() {
                eprintln!("qemu-system-x86_64: {arg}");
            }
            std::process::exit(1)
        }
        // Never boots (an init that never talks to kdf).
        "stall" => {
            m.console("stuck-init");
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        // QEMU's KVM error: the guest is stopped and QEMU waits forever.
        "kvm-error" => {
            eprintln!("KVM internal error. Suberror: 1");
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        // QEMU's KVM code asserts and QEMU aborts (seen on kdf's CI machines).
        "kvm-abort" => {
            eprintln!("qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69");
            eprintln!(
                "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion `ret == n' failed."
            );
            std::process::abort()
        }
        // Boots and starts the command, then QEMU reports a KVM error.
        "kvm-error-late" => {
            m.boot();
            std::thread::sleep(Duration::from_millis(200));
            eprintln!("KVM internal error. Suberror: 1");
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        // Speaks another protocol version.
        "old-version" => {
            m.send(&ToHost::Hello { version: PROTOCOL_VERSION - 1, release: "0.0.0-fake".into() });
            std::thread::sleep(Duration::from_secs(30));
            std::process::exit(0)
        }
        // A frame whose tag no kdf knows.
        "malformed" => {
            m.boot();
            let _ = m.channel.write_all(&[0, 0, 0, 0, 99]);
            std::thread::sleep(Duration::from_secs(30));
            std::process::exit(0)
        }
        // A frame longer than the host accepts.
        "oversized" => {
            m.boot();
            let len = (kdf_proto::MAX_TO_HOST as u32 + 1).to_le_bytes();
            let _ = m.channel.write_all(&[len[0], len[1], len[2], len[3], 3]);
            std::thread::sleep(Duration::from_secs(30));
            std::process::exit(0)
        }
        // An exit status no process can have.
        "bad-exit" => {
            m.boot();
            let mut frame = vec![5, 0, 0, 0, 6, 0];
            frame.extend(256i32.to_le_bytes());
            let _ = m.channel.write_all(&frame);
            std::thread::sleep(Duration::from_secs(30));
            std::process::exit(0)
        }
        other => panic!("fake qemu: unknown guest {other:?}"),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    log(&format!("argv {}", argv.join(" ")));
    let kvm = argv.iter().any(|a| a.contains("accel=kvm"));
    // SAFETY: kdf hands these descriptors over under these numbers (the
    // -chardev arguments name them); nothing else in this process owns them.
    let (console, channel) =
        unsafe { (File::from_raw_fd(fd_of(&argv, "console")), File::from_raw_fd(fd_of(&argv, "channel"))) };
    let mut m = Machine { kvm, console, channel, qmp: try_fd_of(&argv, "qmp") };
    let guest = match (m.kvm, std::env::var("KDF_FAKE_GUEST_KVM")) {
        (true, Ok(g)) => g,
        _ => std::env::var("KDF_FAKE_GUEST").unwrap_or_else(|_| "exit:0".into()),
    };
    log(&format!("guest {guest}"));
    play(&mut m, &guest)
}
