//! `kdf dump` and `kdf qmp`: the QMP monitor of a running VM (the one started
//! from the current directory, or `--pid`), found through its run's record.

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cli::{DumpArgs, QmpArgs};
use crate::errors::{hinted, usage};
use crate::qmp::{self, Client, Message};
use crate::runs::{self, Record};
use crate::ui::say;

/// How long QEMU may take to greet: it serves one QMP client at a time, and
/// the next one waits in the socket's backlog.
const GREETING: Duration = Duration::from_secs(10);

/// Connects to a run's monitor and negotiates.
fn connect(record: &Record) -> Result<Client> {
    let Some(path) = &record.qmp else {
        return Err(hinted(
            format!("the kdf run {} has no QMP socket", record.pid),
            "it was started by an older kdf; restart it",
        ));
    };
    let stream = UnixStream::connect(path).with_context(|| {
        format!("failed to connect to the QMP socket {} of pid {}", path.display(), record.pid)
    })?;
    Client::handshake(stream, Some(GREETING)).map_err(|e| {
        hinted(
            format!("QEMU's monitor at {} did not answer: {e:#}", path.display()),
            "QEMU serves one QMP client at a time: is a `kdf qmp` or another client still connected?",
        )
    })
}

/// `kdf dump FILE`: the VM's memory (a live or wedged VM; it is paused while
/// QEMU writes, then goes on).
pub fn dump(args: &DumpArgs) -> Result<i32> {
    let record = runs::find(args.pid)?;
    let mut client = connect(&record)?;
    client.set_timeout(None)?;
    let file =
        File::create(&args.file).with_context(|| format!("failed to create {}", args.file.display()))?;
    let format = match client.dump(&file) {
        Ok(format) => format,
        Err(e) => {
            let _ = std::fs::remove_file(&args.file);
            return Err(e.context(format!("failed to dump the VM of pid {}", record.pid)));
        }
    };
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    say(&format!(
        "wrote the memory of the VM (pid {}) to {} ({format}, {:.1} MiB)",
        record.pid,
        args.file.display(),
        bytes as f64 / (1u64 << 20) as f64
    ));
    Ok(0)
}

/// `kdf qmp [COMMAND [ARGUMENTS]]`.
pub fn qmp(args: &QmpArgs) -> Result<i32> {
    let record = runs::find(args.pid)?;
    match &args.command {
        Some(name) => one(&record, name, args.arguments.as_deref()),
        None => passthrough(&record),
    }
}

/// One command; its `return` value on stdout, as JSON.
fn one(record: &Record, name: &str, arguments: Option<&str>) -> Result<i32> {
    let arguments = match arguments {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => Some(v),
            _ => return Err(usage(format!("ARGUMENTS must be a JSON object, not {text:?}"))),
        },
        None => None,
    };
    let mut client = connect(record)?;
    client.set_timeout(None)?;
    let value = client.execute(name, arguments)?;
    let text = serde_json::to_string_pretty(&value).context("failed to format QEMU's reply")?;
    writeln!(std::io::stdout(), "{text}").context("failed to write stdout")?;
    Ok(0)
}

/// Commands from stdin, one per line; QEMU's lines (replies and events) on
/// stdout as QEMU sends them. Ends when stdin does and every command has its
/// reply; the status is 1 when a line or a command was refused.
fn passthrough(record: &Record) -> Result<i32> {
    let client = connect(record)?;
    if std::io::stdin().is_terminal() {
        say(&format!(
            "connected to the QMP monitor of pid {}: one command per line (JSON, or NAME [ARGUMENTS]); Ctrl-D leaves",
            record.pid
        ));
    }
    let (reader, mut writer) = client.into_parts();
    reader.get_ref().set_read_timeout(None).context("failed to set a QMP timeout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || relay(reader, tx));
    let (mut sent, mut failed) = (0usize, false);
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("failed to read stdin")?;
        match qmp::input_line(&line) {
            Ok(Some(command)) => {
                writer.write_all(command.as_bytes()).context("failed to write to QEMU's monitor")?;
                sent += 1;
            }
            Ok(None) => {}
            Err(why) => {
                say(&format!("line {}: {why}", n + 1));
                failed = true;
            }
        }
    }
    let mut replies = 0;
    while replies < sent {
        match rx.recv() {
            Ok(ok) => {
                replies += 1;
                failed |= !ok;
            }
            Err(_) => {
                say("QEMU closed the monitor before every command had its reply");
                return Ok(1);
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Copies QEMU's lines to stdout; sends whether each reply succeeded.
fn relay(reader: std::io::BufReader<UnixStream>, replies: mpsc::Sender<bool>) {
    let mut out = std::io::stdout();
    for line in reader.lines().map_while(Result::ok) {
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return;
        }
        match qmp::parse(&line) {
            Ok(Message::Return(_)) => drop(replies.send(true)),
            Ok(Message::Error { .. }) => drop(replies.send(false)),
            _ => {}
        }
    }
}
