//! `kdf run --dry-run`: the command lines a run would start, shell-quoted,
//! exactly as [`super::session`] starts them.

use std::ffi::OsStr;
use std::io::Write;

use anyhow::{Context, Result};

use super::prepare::Prepared;
use super::spec;
use crate::kernel::choice::Choice;
use crate::vm::{qemu, virtiofsd};

/// Shell-quotes one argument for display.
pub fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn line(argv: &[std::ffi::OsString]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// The lines `--dry-run` prints: comments, then one command per line.
pub fn lines(p: &Prepared, choice: &Choice) -> Vec<String> {
    let mut out = vec![format!("# kernel: {}", choice.why)];
    if let Some(tree) = &choice.build_first {
        out.push(format!(
            "# --build: not run by --dry-run; kdf would first run: kdf kernel build --src {} -O {}",
            quote(tree.src.as_os_str()),
            quote(tree.build.as_os_str())
        ));
    }
    for (i, (daemon, share)) in spec::virtiofsd(p).iter().zip(&p.shares).enumerate() {
        out.push(format!(
            "# virtiofsd for {} (fd {}: its listening socket; QEMU holds the other end as fd {})",
            share.host.display(),
            spec::VIRTIOFSD_FD,
            spec::FIRST_SHARE_FD + i as i32
        ));
        out.push(line(&virtiofsd::argv(daemon)));
    }
    out.push(format!(
        "# QEMU (fd {}: console, fd {}: kdf channel, fd {}: attach channel, fd {}: the QMP socket kdf qmp connects to{}{})",
        spec::CONSOLE_FD,
        spec::CHANNEL_FD,
        spec::ATTACH_FD,
        spec::QMP_LISTEN_FD,
        if p.hw.vmcore.is_some() { format!(", fd {}: kdf's own QMP", spec::QMP_FD) } else { String::new() },
        if p.hw.disks.iter().any(|d| d.file.is_none()) {
            format!(", fd {} and up: scratch disks (read-write, read-only)", spec::FIRST_DISK_FD)
        } else {
            String::new()
        }
    ));
    if let Some(d) = p.debug {
        let port = if d.port == 0 { "a free port".to_string() } else { d.port.to_string() };
        out.push(format!("# gdb stub (fd {}: kdf's socket listening on 127.0.0.1, {port})", spec::GDB_FD));
    }
    out.push(line(&qemu::argv(&spec::vm(p, p.accel.accel))));
    out
}

pub fn print(p: &Prepared, choice: &Choice) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for l in lines(p, choice) {
        writeln!(out, "{l}").context("failed to write stdout")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(quote(OsStr::new("-machine")), "-machine");
        assert_eq!(quote(OsStr::new("q35,accel=tcg")), "q35,accel=tcg");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(quote(OsStr::new("")), "''");
    }
}
