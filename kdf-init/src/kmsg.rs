//! Following the kernel log: a thread reads `/dev/kmsg` (every level; only
//! the kernel's own records, so `echo BUG > /dev/kmsg` from userspace does not
//! count) and sends it to kdf, which looks for splats. Opened fresh, the
//! device starts at the oldest record still in the buffer, so a follower
//! started after the plan also sends what the boot logged.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use kdf_proto::ToHost;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::log::say;
use crate::port::Writer;

/// The most records read after the stop before giving up on an endless log.
const AFTER_STOP: usize = 100_000;

/// The most bytes of records sent in one frame.
const BATCH: usize = 16 << 10;

/// Whether a `/dev/kmsg` record (`PRI,SEQ,USEC,FLAGS;TEXT`) is the kernel's:
/// facility 0, so `PRI` (facility * 8 + level) is below 8.
pub fn is_kernel_record(record: &[u8]) -> bool {
    let pri = record.split(|&b| b == b',').next().unwrap_or_default();
    std::str::from_utf8(pri).ok().and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| p < 8)
}

#[derive(Debug)]
pub struct Follower {
    stop: Arc<AtomicBool>,
    /// Written on stop, so the thread's wait for new records ends at once
    /// (without it, every run's end waited out the wait's 100 ms).
    wake: OwnedFd,
    thread: JoinHandle<()>,
}

impl Follower {
    /// Starts following, or says why it cannot (the run then has no splat check).
    pub fn start(out: Writer) -> Option<Follower> {
        let file =
            match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg") {
                Ok(f) => f,
                Err(e) => {
                    say(&format!("warning: cannot follow the kernel log: /dev/kmsg: {e}"));
                    return None;
                }
            };
        let (woken, wake) = match nix::unistd::pipe() {
            Ok(pair) => pair,
            Err(e) => {
                say(&format!("warning: cannot follow the kernel log: pipe: {e}"));
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("kmsg".into())
            .spawn(move || {
                // Signals are for the main thread: SIGCHLD taken here (where
                // it would be ignored) never reaches the relay's signalfd,
                // and init would wait forever for the command's exit.
                let _ = nix::sys::signal::pthread_sigmask(
                    nix::sys::signal::SigmaskHow::SIG_BLOCK,
                    Some(&nix::sys::signal::SigSet::all()),
                    None,
                );
                follow(file, &woken, &flag, &out)
            })
            .ok()?;
        Some(Follower { stop, wake, thread })
    }

    /// Sends what the log holds now, then stops.
    pub fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = nix::unistd::write(&self.wake, b"x");
        let _ = self.thread.join();
    }
}

fn follow(mut file: File, woken: &OwnedFd, stop: &AtomicBool, out: &Writer) {
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    let mut buf = vec![0u8; 8192];
    let mut after_stop = 0;
    loop {
        // Checked before reading: once set, what the read below finds is all
        // the log held when the command ended.
        let stopping = stop.load(Ordering::SeqCst);
        if stopping {
            after_stop += 1;
            if after_stop > AFTER_STOP {
                break;
            }
        }
        match file.read(&mut buf) {
            Ok(n) => {
                let record = &buf[..n];
                if is_kernel_record(record) {
                    size += n;
                    batch.push(record.strip_suffix(b"\n").unwrap_or(record).to_vec());
                }
                if size >= BATCH {
                    let _ = out.send(&ToHost::Kmsg(std::mem::take(&mut batch)));
                    size = 0;
                }
                continue;
            }
            // Records were overwritten before they were read: say so, go on.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                batch.push(b"4,0,0,-;kdf-init: kernel log records were lost (buffer overrun)".to_vec());
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
            Err(e) => {
                say(&format!("warning: reading /dev/kmsg failed: {e}"));
                break;
            }
        }
        if !batch.is_empty() {
            let _ = out.send(&ToHost::Kmsg(std::mem::take(&mut batch)));
            size = 0;
        }
        if stopping {
            return;
        }
        // New records, or the stop (the next pass reads what is left).
        let mut fds =
            [PollFd::new(file.as_fd(), PollFlags::POLLIN), PollFd::new(woken.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
    }
    if !batch.is_empty() {
        let _ = out.send(&ToHost::Kmsg(batch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kernels_own_records_count() {
        assert!(is_kernel_record(b"4,120,5000,-;WARNING: CPU: 0 PID: 1 at x"));
        assert!(is_kernel_record(b"0,1,0,-;Kernel panic"));
        // `echo BUG > /dev/kmsg` from userspace: facility user (1), level 4.
        assert!(!is_kernel_record(b"12,121,5001,-;BUG: from userspace"));
        assert!(!is_kernel_record(b"garbage"));
        assert!(!is_kernel_record(b""));
    }
}
