//! QEMU's machine protocol (QMP): the messages kdf builds and reads (pure),
//! and a small blocking client over a Unix socket for the few commands kdf
//! sends itself (`dump-guest-memory` for `--vmcore` and `kdf dump`) and for
//! `kdf qmp`'s passthrough.

use std::io::{BufRead, BufReader, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// One line QEMU sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `{"QMP": ...}`, first on every connection.
    Greeting,
    Return(Value),
    Error {
        class: String,
        desc: String,
    },
    /// An asynchronous event (`STOP`, `RESUME`, `DUMP_COMPLETED`, ...).
    Event(String),
}

/// Reads one line of QEMU's output.
pub fn parse(line: &str) -> Result<Message, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line:?}"))?;
    if v.get("QMP").is_some() {
        return Ok(Message::Greeting);
    }
    if let Some(ret) = v.get("return") {
        return Ok(Message::Return(ret.clone()));
    }
    if let Some(err) = v.get("error") {
        let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(Message::Error { class: field("class"), desc: field("desc") });
    }
    match v.get("event").and_then(Value::as_str) {
        Some(name) => Ok(Message::Event(name.to_string())),
        None => Err(format!("not a QMP message: {line:?}")),
    }
}

/// One command as the line QMP reads.
pub fn command(execute: &str, arguments: Option<Value>) -> String {
    let mut v = json!({ "execute": execute });
    if let Some(args) = arguments {
        v["arguments"] = args;
    }
    format!("{v}\n")
}

/// A line typed to `kdf qmp`: a JSON command as is, or `NAME [ARGUMENTS]`
/// (`query-status`, `human-monitor-command {"command-line": "info mtree"}`).
/// Blank lines and `#` comments are nothing.
pub fn input_line(line: &str) -> Result<Option<String>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
        if v.get("execute").and_then(Value::as_str).is_none() {
            return Err("a QMP command needs \"execute\"".into());
        }
        return Ok(Some(format!("{v}\n")));
    }
    let (name, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let arguments = match rest.trim() {
        "" => None,
        args => Some(serde_json::from_str::<Value>(args).map_err(|e| format!("arguments: not JSON ({e})"))?),
    };
    if arguments.as_ref().is_some_and(|a| !a.is_object()) {
        return Err("arguments must be a JSON object".into());
    }
    Ok(Some(command(name, arguments)))
}

/// The dump format kdf writes: compressed kdump (what `crash` and drgn read
/// and what makedumpfile writes), the first compression this QEMU has, else
/// an ELF core (uncompressed, as large as the guest's memory).
pub fn dump_format(offered: &[String]) -> &'static str {
    ["kdump-zlib", "kdump-snappy", "kdump-lzo"]
        .into_iter()
        .find(|f| offered.iter().any(|o| o == f))
        .unwrap_or("elf")
}

/// `dump-guest-memory`'s arguments: physical memory (what kdump files hold;
/// `crash` and drgn translate addresses with the kernel's own page tables)
/// into the descriptor passed as `fdname`, waiting for the end.
pub fn dump_arguments(fdname: &str, format: &str) -> Value {
    json!({ "paging": false, "protocol": format!("fd:{fdname}"), "format": format, "detach": false })
}

/// A dump that was written (`--vmcore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub format: &'static str,
    pub bytes: u64,
}

/// A QMP connection with its capabilities negotiated.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Reads QEMU's greeting and leaves capabilities negotiation mode.
    /// `timeout` bounds each wait for a line (`None`: no bound).
    pub fn handshake(stream: UnixStream, timeout: Option<Duration>) -> Result<Client> {
        stream.set_read_timeout(timeout).context("failed to set a QMP timeout")?;
        let writer = stream.try_clone().context("failed to clone the QMP socket")?;
        let mut client = Client { reader: BufReader::new(stream), writer };
        match client.next()? {
            Message::Greeting => {}
            other => bail!("QEMU did not greet on QMP: {other:?}"),
        }
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    /// Bounds each wait for a line from now on (`None`: no bound).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.reader.get_ref().set_read_timeout(timeout).context("failed to set a QMP timeout")
    }

    /// The connection's two halves, for a passthrough.
    pub fn into_parts(self) -> (BufReader<UnixStream>, UnixStream) {
        (self.reader, self.writer)
    }

    /// The next message (a closed connection is an error).
    fn next(&mut self) -> Result<Message> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).context("failed to read from QEMU's QMP socket")?;
        if n == 0 {
            bail!("QEMU closed the QMP connection");
        }
        parse(line.trim_end()).map_err(|e| anyhow::anyhow!("QEMU's QMP: {e}"))
    }

    /// The reply to the command just sent, past any events.
    fn reply(&mut self, what: &str) -> Result<Value> {
        loop {
            match self.next()? {
                Message::Return(v) => return Ok(v),
                Message::Error { class, desc } => bail!("QEMU refused {what}: {desc} ({class})"),
                Message::Greeting | Message::Event(_) => {}
            }
        }
    }

    /// Runs one command and returns its `return` value.
    pub fn execute(&mut self, name: &str, arguments: Option<Value>) -> Result<Value> {
        self.writer.write_all(command(name, arguments).as_bytes()).context("failed to write to QMP")?;
        self.reply(name)
    }

    /// Hands QEMU a descriptor under `fdname` (`getfd`, the descriptor
    /// travelling with the command as SCM_RIGHTS).
    fn send_fd(&mut self, fdname: &str, fd: impl AsFd) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let line = command("getfd", Some(json!({ "fdname": fdname })));
        let fds = [fd.as_fd().as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(line.as_bytes())];
        let sent = sendmsg::<()>(self.writer.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .context("failed to pass a descriptor to QEMU")?;
        if sent != line.len() {
            self.writer.write_all(&line.as_bytes()[sent..]).context("failed to write to QMP")?;
        }
        self.reply("getfd").map(drop)
    }

    /// Writes the guest's memory into `file` (which kdf created); returns the
    /// format. QEMU writes into a pipe and a thread here puts what arrives
    /// into the file ([`crate::kdump::write`]: QEMU 7.2's kdump stream is
    /// flattened, which drgn cannot read).
    pub fn dump(&mut self, file: &std::fs::File) -> Result<&'static str> {
        let caps = self.execute("query-dump-guest-memory-capability", None)?;
        let offered: Vec<String> = caps
            .get("formats")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default();
        let format = dump_format(&offered);
        let (read_end, write_end) = nix::unistd::pipe().context("failed to create a pipe")?;
        let mut dst = file.try_clone().context("failed to clone the dump file")?;
        let writer = std::thread::spawn(move || crate::kdump::write(std::fs::File::from(read_end), &mut dst));
        let asked = self.send_fd("kdf-vmcore", &write_end).and_then(|()| {
            // QEMU holds its own copy now: the reader sees the end when QEMU closes it.
            drop(write_end);
            self.execute("dump-guest-memory", Some(dump_arguments("kdf-vmcore", format)))
        });
        if let Err(e) = asked {
            // QEMU keeps a descriptor it did not use: its copy of the pipe
            // goes, and the writer sees the end (it is not waited for).
            let _ = self.execute("closefd", Some(json!({ "fdname": "kdf-vmcore" })));
            return Err(e);
        }
        let written = writer.join().map_err(|_| anyhow::anyhow!("the dump writer panicked"))?;
        written.context("failed to write the dump")?;
        Ok(format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_lines_are_told_apart() {
        let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}"#;
        assert_eq!(parse(greeting), Ok(Message::Greeting));
        assert_eq!(parse(r#"{"return": {}}"#), Ok(Message::Return(json!({}))));
        assert_eq!(
            parse(r#"{"error": {"class": "GenericError", "desc": "no such fd"}}"#),
            Ok(Message::Error { class: "GenericError".into(), desc: "no such fd".into() })
        );
        let event = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#;
        assert_eq!(parse(event), Ok(Message::Event("STOP".into())));
        assert!(parse("{}").is_err());
        assert!(parse("garbage").is_err());
    }

    #[test]
    fn commands_are_one_line_each() {
        assert_eq!(command("qmp_capabilities", None), "{\"execute\":\"qmp_capabilities\"}\n");
        let line = command("getfd", Some(json!({"fdname": "x"})));
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v, json!({"execute": "getfd", "arguments": {"fdname": "x"}}));
    }

    #[test]
    fn typed_lines_are_json_or_a_name_and_arguments() {
        assert_eq!(input_line("  "), Ok(None));
        assert_eq!(input_line("# note"), Ok(None));
        assert_eq!(input_line("query-status"), Ok(Some(command("query-status", None))));
        assert_eq!(
            input_line(r#"human-monitor-command {"command-line": "info mtree"}"#),
            Ok(Some(command("human-monitor-command", Some(json!({"command-line": "info mtree"})))))
        );
        assert_eq!(
            input_line(r#"{ "execute": "stop" }"#),
            Ok(Some("{\"execute\":\"stop\"}\n".into())),
            "JSON is passed on (as one line)"
        );
        assert!(input_line(r#"{"arguments": {}}"#).is_err());
        assert!(input_line("stop [1]").is_err());
        assert!(input_line("stop {oops").is_err());
    }

    #[test]
    fn the_dump_is_compressed_kdump_where_qemu_can() {
        let offered = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(dump_format(&offered(&["elf", "kdump-zlib", "win-dmp"])), "kdump-zlib");
        assert_eq!(dump_format(&offered(&["elf", "kdump-lzo"])), "kdump-lzo");
        assert_eq!(dump_format(&offered(&["elf"])), "elf");
        let args = dump_arguments("core", "kdump-zlib");
        assert_eq!(args["protocol"], "fd:core");
        assert_eq!(args["paging"], false);
        assert_eq!(args["detach"], false);
    }

    /// A scripted QEMU on the other end of a socket pair.
    fn fake_qemu(script: Vec<(&'static str, &'static str)>) -> (UnixStream, std::thread::JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut w = theirs.try_clone().unwrap();
            let mut r = BufReader::new(theirs);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n").unwrap();
            for (expect, reply) in script {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert!(line.contains(expect), "expected {expect}, got {line}");
                w.write_all(reply.as_bytes()).unwrap();
            }
        });
        (ours, t)
    }

    #[test]
    fn the_client_negotiates_skips_events_and_reports_errors() {
        let (stream, t) = fake_qemu(vec![
            ("qmp_capabilities", "{\"return\": {}}\n"),
            ("query-status", "{\"event\": \"RESUME\"}\n{\"return\": {\"status\": \"running\"}}\n"),
            ("stop", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\n"),
        ]);
        let mut c = Client::handshake(stream, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(c.execute("query-status", None).unwrap(), json!({"status": "running"}));
        let err = c.execute("stop", None).unwrap_err().to_string();
        assert_eq!(err, "QEMU refused stop: nope (GenericError)");
        t.join().unwrap();
        assert!(c.execute("cont", None).is_err(), "a closed connection is an error");
    }
}
