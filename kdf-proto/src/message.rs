//! The messages, their encoding, and framing on a byte stream.

use std::io::{self, Read, Write};

use crate::codec::{DecodeError, Reader, Writer};
use crate::plan::{get_option, get_winsize, put_option, put_winsize, Exec, Plan, Winsize};

/// How the command ended, as the guest saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(i32),
    /// `execve` failed with ENOENT.
    NotFound,
    /// `execve` failed with EACCES, ENOEXEC or similar; the error text.
    NotExecutable(String),
    /// The command was not started: a `--module` did not load.
    NotRun,
}

/// Guest to host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToHost {
    /// The port is open; the host may send the plan.
    Hello {
        version: u32,
        release: String,
    },
    /// Setup is done and the command started. Guest uptime marks in microseconds.
    Ready {
        marks: Vec<(String, u64)>,
    },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// This many more stdin bytes were delivered to the command.
    StdinCredit(u32),
    Exit(Outcome),
    /// A setup step failed; the VM stops next.
    Failed {
        step: String,
        message: String,
    },
    /// Records read from `/dev/kmsg` (`PRI,SEQ,TIME,FLAGS;TEXT`, one per item).
    Kmsg(Vec<Vec<u8>>),
    /// A `--module` could not be loaded or unloaded: the command did not run
    /// (load) or has run (unload). `log`: the kernel lines the attempt produced.
    ModuleFailed {
        name: String,
        action: String,
        error: String,
        log: Vec<String>,
    },
    /// `/proc/sys/kernel/tainted`, sent when the command starts and when it ends.
    Tainted(u64),
    /// The answer to [`ToGuest::Sysrq`]: the kernel's log lines the request
    /// produced (their text), or why the key could not be sent.
    SysrqDone {
        log: Vec<String>,
        error: Option<String>,
    },
    /// An attach request was not taken (another session holds the channel,
    /// its directory is missing): nothing ran.
    Refused(String),
}

/// Host to guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToGuest {
    /// Boxed: a plan is much larger than every other message.
    Plan(Box<Plan>),
    Stdin(Vec<u8>),
    StdinEof,
    /// Deliver this signal to the command's process group.
    Signal(i32),
    Winsize(Winsize),
    /// The host's stdout is gone: close the command's stdout (it gets SIGPIPE).
    StdoutClosed,
    /// The host cannot write its stderr: close the command's stderr.
    StderrClosed,
    /// The host has received `Exit` or `Failed` and everything before it: the
    /// guest may end the VM now.
    Ack,
    /// Start this command beside the run's (the attach channel only); its
    /// session then speaks as the run's does, up to its `Exit`.
    Attach(Exec),
    /// Write this key to `/proc/sysrq-trigger` (the attach channel only).
    Sysrq(u8),
    /// The attached client went away: hang up its command as a closed
    /// terminal would (SIGHUP) and end the session.
    Hangup,
}

/// Writes one frame in a single `write_all`, so frames from threads sharing a
/// locked writer never interleave.
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)
}

/// Reads one frame of at most `limit` payload bytes: `Ok(None)` on a clean end
/// of stream between frames. The payload is read through a bounded reader, so
/// a declared length never allocates more than what actually arrives.
pub fn read_frame(r: &mut impl Read, limit: usize) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {limit}-byte limit"),
        ));
    }
    let mut payload = Vec::new();
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some((header[4], payload)))
}

/// Starts a frame: a length placeholder and the tag; `seal` fills in the length.
fn frame(tag: u8) -> Writer {
    let mut w = Writer::new();
    w.u32(0).u8(tag);
    w
}

fn seal(w: Writer) -> Vec<u8> {
    let mut buf = w.finish();
    let len = u32::try_from(buf.len() - 5).expect("frame under 4 GiB");
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf
}

fn in_range(v: i32, range: std::ops::RangeInclusive<i32>, what: &'static str) -> Result<i32, DecodeError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(DecodeError(what))
    }
}

impl ToHost {
    /// The complete frame, ready for [`write_frame`].
    pub fn encode(&self) -> Vec<u8> {
        let w = match self {
            ToHost::Hello { version, release } => {
                let mut w = frame(1);
                w.u32(*version).str(release);
                w
            }
            ToHost::Ready { marks } => {
                let mut w = frame(2);
                w.list(marks, |w, (name, us)| {
                    w.str(name).u64(*us);
                });
                w
            }
            ToHost::Stdout(data) => {
                let mut w = frame(3);
                w.raw(data);
                w
            }
            ToHost::Stderr(data) => {
                let mut w = frame(4);
                w.raw(data);
                w
            }
            ToHost::StdinCredit(n) => {
                let mut w = frame(5);
                w.u32(*n);
                w
            }
            ToHost::Exit(outcome) => {
                let mut w = frame(6);
                match outcome {
                    Outcome::Exited(c) => w.u8(0).i32(*c),
                    Outcome::Signaled(s) => w.u8(1).i32(*s),
                    Outcome::NotFound => w.u8(2),
                    Outcome::NotExecutable(m) => w.u8(3).str(m),
                    Outcome::NotRun => w.u8(4),
                };
                w
            }
            ToHost::Kmsg(records) => {
                let mut w = frame(8);
                w.list(records, |w, r| {
                    w.bytes(r);
                });
                w
            }
            ToHost::ModuleFailed { name, action, error, log } => {
                let mut w = frame(9);
                w.str(name).str(action).str(error).list(log, |w, l| {
                    w.str(l);
                });
                w
            }
            ToHost::Tainted(t) => {
                let mut w = frame(10);
                w.u64(*t);
                w
            }
            ToHost::Failed { step, message } => {
                let mut w = frame(7);
                w.str(step).str(message);
                w
            }
            ToHost::SysrqDone { log, error } => {
                let mut w = frame(11);
                w.list(log, |w, l| {
                    w.str(l);
                });
                put_option(&mut w, error, |w, e| {
                    w.str(e);
                });
                w
            }
            ToHost::Refused(why) => {
                let mut w = frame(12);
                w.str(why);
                w
            }
        };
        seal(w)
    }

    pub fn decode(tag: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let msg = match tag {
            1 => ToHost::Hello { version: r.u32()?, release: r.string()? },
            2 => ToHost::Ready { marks: r.list(|r| Ok((r.string()?, r.u64()?)))? },
            3 => ToHost::Stdout(r.rest().to_vec()),
            4 => ToHost::Stderr(r.rest().to_vec()),
            5 => ToHost::StdinCredit(r.u32()?),
            6 => ToHost::Exit(match r.u8()? {
                0 => Outcome::Exited(in_range(r.i32()?, 0..=255, "exit status out of range")?),
                1 => Outcome::Signaled(in_range(r.i32()?, 1..=64, "signal number out of range")?),
                2 => Outcome::NotFound,
                3 => Outcome::NotExecutable(r.string()?),
                4 => Outcome::NotRun,
                _ => return Err(DecodeError("unknown outcome")),
            }),
            7 => ToHost::Failed { step: r.string()?, message: r.string()? },
            8 => ToHost::Kmsg(r.list(|r| Ok(r.bytes()?.to_vec()))?),
            9 => ToHost::ModuleFailed {
                name: r.string()?,
                action: r.string()?,
                error: r.string()?,
                log: r.list(|r| r.string())?,
            },
            10 => ToHost::Tainted(r.u64()?),
            11 => {
                ToHost::SysrqDone { log: r.list(|r| r.string())?, error: get_option(&mut r, |r| r.string())? }
            }
            12 => ToHost::Refused(r.string()?),
            _ => return Err(DecodeError("unknown guest message")),
        };
        r.end()?;
        Ok(msg)
    }
}

impl ToGuest {
    /// The complete frame, ready for [`write_frame`].
    pub fn encode(&self) -> Vec<u8> {
        let w = match self {
            ToGuest::Plan(plan) => {
                let mut w = frame(1);
                plan.put(&mut w);
                w
            }
            ToGuest::Stdin(data) => {
                let mut w = frame(2);
                w.raw(data);
                w
            }
            ToGuest::StdinEof => frame(3),
            ToGuest::Signal(sig) => {
                let mut w = frame(4);
                w.i32(*sig);
                w
            }
            ToGuest::Winsize(ws) => {
                let mut w = frame(5);
                put_winsize(&mut w, ws);
                w
            }
            ToGuest::StdoutClosed => frame(6),
            ToGuest::Ack => frame(7),
            ToGuest::StderrClosed => frame(8),
            ToGuest::Attach(exec) => {
                let mut w = frame(9);
                exec.put(&mut w);
                w
            }
            ToGuest::Sysrq(key) => {
                let mut w = frame(10);
                w.u8(*key);
                w
            }
            ToGuest::Hangup => frame(11),
        };
        seal(w)
    }

    pub fn decode(tag: u8, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let msg = match tag {
            1 => ToGuest::Plan(Box::new(Plan::get(&mut r)?)),
            2 => ToGuest::Stdin(r.rest().to_vec()),
            3 => ToGuest::StdinEof,
            4 => ToGuest::Signal(r.i32()?),
            5 => ToGuest::Winsize(get_winsize(&mut r)?),
            6 => ToGuest::StdoutClosed,
            7 => ToGuest::Ack,
            8 => ToGuest::StderrClosed,
            9 => ToGuest::Attach(Exec::get(&mut r)?),
            10 => ToGuest::Sysrq(r.u8()?),
            11 => ToGuest::Hangup,
            _ => return Err(DecodeError("unknown host message")),
        };
        r.end()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{ModuleFile, Network, Share, User};
    use crate::PROTOCOL_VERSION;

    fn sample_exec() -> Exec {
        Exec {
            argv: vec![b"sh".to_vec(), b"-c".to_vec(), b"".to_vec(), "a b\n\u{1f600}".into()],
            program: Some(b"/usr/bin/sh".to_vec()),
            env: vec![(b"PATH".to_vec(), b"/bin:/usr/bin".to_vec())],
            cwd: b"/tmp/a b:c,d=e".to_vec(),
            user: Some(User { uid: 1000, gid: 1000, groups: vec![27, 100] }),
            tty: Some(Winsize { rows: 24, cols: 80 }),
            stdin: true,
        }
    }

    fn sample_plan() -> Plan {
        Plan {
            version: PROTOCOL_VERSION,
            command: sample_exec(),
            shares: vec![Share {
                tag: "kdf0".into(),
                fstype: "virtiofs".into(),
                data: String::new(),
                target: b"/".to_vec(),
                readonly: true,
                overlay: false,
            }],
            modules: vec!["virtiofs".into()],
            hostname: "kdf".into(),
            clock_ns: 1_700_000_000_000_000_000,
            user_modules: vec![ModuleFile {
                name: "hello".into(),
                path: b"/run/kdf/modules/hello.ko".to_vec(),
                params: "who=\"a b\" n=3".into(),
                depends: vec!["crc_itu_t".into(), "cdrom".into()],
            }],
            unload: true,
            kmsg: true,
            network: Some(Network {
                address: [10, 0, 2, 15],
                prefix_len: 24,
                gateway: [10, 0, 2, 2],
                nameserver: [10, 0, 2, 3],
            }),
        }
    }

    fn round_trip_guest(msg: ToGuest) {
        let frame = msg.encode();
        let (tag, payload) = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap().unwrap();
        assert_eq!(ToGuest::decode(tag, &payload), Ok(msg));
    }

    fn round_trip_host(msg: ToHost) {
        let frame = msg.encode();
        let (tag, payload) = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap().unwrap();
        assert_eq!(ToHost::decode(tag, &payload), Ok(msg));
    }

    #[test]
    fn every_host_message_round_trips() {
        round_trip_guest(ToGuest::Plan(Box::new(sample_plan())));
        round_trip_guest(ToGuest::Stdin(vec![0, 1, 255]));
        round_trip_guest(ToGuest::StdinEof);
        round_trip_guest(ToGuest::Signal(15));
        round_trip_guest(ToGuest::Winsize(Winsize { rows: 50, cols: 132 }));
        round_trip_guest(ToGuest::StdoutClosed);
        round_trip_guest(ToGuest::Ack);
        round_trip_guest(ToGuest::StderrClosed);
        round_trip_guest(ToGuest::Attach(sample_exec()));
        round_trip_guest(ToGuest::Attach(Exec {
            program: None,
            user: None,
            tty: None,
            stdin: false,
            ..sample_exec()
        }));
        round_trip_guest(ToGuest::Sysrq(b'w'));
        round_trip_guest(ToGuest::Hangup);
    }

    #[test]
    fn every_guest_message_round_trips() {
        round_trip_host(ToHost::Hello { version: 1, release: "6.1.0-56-amd64".into() });
        round_trip_host(ToHost::Ready { marks: vec![("init".into(), 5), ("mounted".into(), 9)] });
        round_trip_host(ToHost::Stdout(b"out\0\xff".to_vec()));
        round_trip_host(ToHost::Stderr(Vec::new()));
        round_trip_host(ToHost::StdinCredit(4096));
        round_trip_host(ToHost::Exit(Outcome::Exited(3)));
        round_trip_host(ToHost::Exit(Outcome::Signaled(9)));
        round_trip_host(ToHost::Exit(Outcome::NotFound));
        round_trip_host(ToHost::Exit(Outcome::NotRun));
        round_trip_host(ToHost::Exit(Outcome::NotExecutable("Permission denied".into())));
        round_trip_host(ToHost::Failed { step: "mount /".into(), message: "ENODEV".into() });
        round_trip_host(ToHost::Kmsg(vec![b"4,12,3456,-;WARNING: x".to_vec(), Vec::new()]));
        round_trip_host(ToHost::ModuleFailed {
            name: "hello".into(),
            action: "load".into(),
            error: "Invalid argument".into(),
            log: vec!["hello: Unknown symbol foo (err -2)".into()],
        });
        round_trip_host(ToHost::Tainted(512));
        round_trip_host(ToHost::SysrqDone { log: vec!["sysrq: Show Blocked State".into()], error: None });
        round_trip_host(ToHost::SysrqDone { log: Vec::new(), error: Some("no /proc/sysrq-trigger".into()) });
        round_trip_host(ToHost::Refused("another kdf attach is attached".into()));
    }

    #[test]
    fn frame_layout_is_length_tag_payload() {
        assert_eq!(ToHost::StdinCredit(1).encode(), [4, 0, 0, 0, 5, 1, 0, 0, 0]);
        assert_eq!(ToGuest::StdinEof.encode(), [0, 0, 0, 0, 3]);
    }

    #[test]
    fn frames_are_read_back_to_back_then_clean_eof() {
        let mut stream = ToHost::Stdout(b"a".to_vec()).encode();
        stream.extend(ToHost::Exit(Outcome::Exited(0)).encode());
        let mut r = &stream[..];
        assert_eq!(read_frame(&mut r, crate::MAX_FRAME).unwrap().unwrap().0, 3);
        assert_eq!(read_frame(&mut r, crate::MAX_FRAME).unwrap().unwrap().0, 6);
        assert!(read_frame(&mut r, crate::MAX_FRAME).unwrap().is_none());
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let frame = ToHost::Stdout(b"abc".to_vec()).encode();
        assert!(read_frame(&mut &frame[..3], crate::MAX_FRAME).is_err());
        assert!(read_frame(&mut &frame[..6], crate::MAX_FRAME).is_err());
    }

    #[test]
    fn oversized_frame_is_refused() {
        let header = [0xff, 0xff, 0xff, 0x7f, 3];
        let err = read_frame(&mut &header[..], crate::MAX_FRAME).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let frame = ToHost::Stdout(vec![0; 100]).encode();
        assert!(read_frame(&mut &frame[..], 99).is_err());
        assert!(read_frame(&mut &frame[..], 100).is_ok());
    }

    #[test]
    fn plan_from_another_version_is_refused() {
        let mut plan = sample_plan();
        plan.version = PROTOCOL_VERSION + 1;
        let frame = ToGuest::Plan(Box::new(plan)).encode();
        let (tag, payload) = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap().unwrap();
        let err = ToGuest::decode(tag, &payload).unwrap_err();
        assert!(err.0.contains("protocol version"));
    }

    #[test]
    fn a_plan_without_a_network_round_trips_and_a_bad_prefix_is_refused() {
        let mut plan = sample_plan();
        plan.network = None;
        round_trip_guest(ToGuest::Plan(Box::new(plan.clone())));
        plan.network = Some(Network { prefix_len: 33, ..sample_plan().network.unwrap() });
        let frame = ToGuest::Plan(Box::new(plan)).encode();
        let (tag, payload) = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap().unwrap();
        assert!(ToGuest::decode(tag, &payload).unwrap_err().0.contains("prefix length"));
    }

    #[test]
    fn a_64k_argument_survives() {
        let mut plan = sample_plan();
        plan.command.argv.push(vec![b'x'; 64 << 10]);
        round_trip_guest(ToGuest::Plan(Box::new(plan)));
    }

    #[test]
    fn a_declared_length_is_not_allocated_before_the_bytes_arrive() {
        // 64 MiB declared, 3 bytes present: an error, not a 64 MiB buffer.
        let mut frame = vec![0, 0, 0, 4, 3];
        frame.extend(b"abc");
        let err = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    fn decode_exit(kind: u8, value: i32) -> Result<ToHost, DecodeError> {
        let mut payload = vec![kind];
        payload.extend(value.to_le_bytes());
        ToHost::decode(6, &payload)
    }

    #[test]
    fn out_of_range_statuses_and_signals_are_refused() {
        assert_eq!(decode_exit(0, 255), Ok(ToHost::Exit(Outcome::Exited(255))));
        assert!(decode_exit(0, 256).is_err());
        assert!(decode_exit(0, -1).is_err());
        assert_eq!(decode_exit(1, 64), Ok(ToHost::Exit(Outcome::Signaled(64))));
        assert!(decode_exit(1, 0).is_err());
        assert!(decode_exit(1, 65).is_err());
        assert!(decode_exit(1, i32::MAX).is_err());
    }

    #[test]
    fn a_plan_with_an_empty_argv_is_refused() {
        let mut plan = sample_plan();
        plan.command.argv.clear();
        let frame = ToGuest::Plan(Box::new(plan)).encode();
        let (tag, payload) = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap().unwrap();
        assert!(ToGuest::decode(tag, &payload).unwrap_err().0.contains("empty argv"));
        let frame = ToGuest::Attach(Exec { argv: Vec::new(), ..sample_exec() }).encode();
        let (tag, payload) = read_frame(&mut &frame[..], crate::MAX_FRAME).unwrap().unwrap();
        assert!(ToGuest::decode(tag, &payload).unwrap_err().0.contains("empty argv"));
    }
}
