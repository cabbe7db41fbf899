//! `kdf sysrq KEY`: sends a SysRq key to the VM of a running `kdf run` and
//! prints the kernel log lines it produced. kdf-init writes the key to
//! `/proc/sysrq-trigger`, so this needs a guest whose init still runs; a
//! wedged kernel is reached through the VM's monitor instead.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kdf_proto::{ToGuest, ToHost};

use super::client::{read_message, Connection};
use crate::cli::SysrqArgs;
use crate::errors::hinted;
use crate::ui::say;

/// How long the guest may take to answer (a task dump under TCG is slow).
const ANSWER: Duration = Duration::from_secs(60);

/// Keys that end the VM (crash, reboot, power off): no answer comes.
pub fn ends_the_vm(key: u8) -> bool {
    matches!(key, b'c' | b'b' | b'o')
}

pub fn run(args: &SysrqArgs) -> Result<i32> {
    let key = char::from(args.key);
    let mut c = Connection::open(args.pid)?;
    c.stream.set_read_timeout(Some(ANSWER)).context("failed to set a socket timeout")?;
    c.send(&ToGuest::Sysrq(args.key))?;
    let answer = read_message(&mut c.stream);
    if ends_the_vm(args.key) && !matches!(answer, Ok(Some(ToHost::SysrqDone { error: Some(_), .. }))) {
        say(&format!(
            "sent sysrq {key} to the VM of kdf run pid {}; that run reports how it ended",
            c.record.pid
        ));
        return Ok(0);
    }
    match answer {
        Ok(Some(ToHost::SysrqDone { log, error: None })) => {
            let mut out = std::io::stdout().lock();
            for line in log {
                writeln!(out, "{line}").context("failed to write stdout")?;
            }
            Ok(0)
        }
        Ok(Some(ToHost::SysrqDone { error: Some(why), .. })) => Err(anyhow!("the guest could not take sysrq {key}: {why}")),
        Ok(Some(other)) => Err(anyhow!("unexpected answer to sysrq {key}: {other:?}")),
        Ok(None) => Err(anyhow!("the VM of kdf run pid {} ended before it answered sysrq {key}", c.record.pid)),
        Err(e) if is_timeout(&e) => Err(hinted(
            format!("the guest did not answer sysrq {key} within {}s", ANSWER.as_secs()),
            "kdf-init answers through the guest's userspace: a wedged guest needs the VM's monitor (kdf dump)",
        )),
        Err(e) => Err(e),
    }
}

fn is_timeout(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_reboot_and_power_off_end_the_vm() {
        assert!(ends_the_vm(b'c') && ends_the_vm(b'b') && ends_the_vm(b'o'));
        assert!(!ends_the_vm(b'w') && !ends_the_vm(b't'));
    }

    #[test]
    fn a_read_timeout_is_told_apart() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::WouldBlock)).context("reading");
        assert!(is_timeout(&err));
        assert!(!is_timeout(&anyhow!("closed")));
    }
}
