//! `kdf run -d`: the gdb stub's listening socket, which kdf binds itself on
//! 127.0.0.1 (a free port unless one is given) and hands to QEMU, and the
//! line that tells the user where it is.

use std::net::{Ipv4Addr, TcpListener};

use anyhow::{Context, Result};

use crate::errors::hinted;

/// Listens on 127.0.0.1:`port` (0: a port the kernel picks, so parallel runs
/// never race for one). Loopback only: a gdb stub can read and write all of
/// the guest's memory.
pub fn listen(port: u16) -> Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => hinted(
            format!("cannot listen for gdb on 127.0.0.1:{port}: the port is in use"),
            "use -d without a port: kdf picks a free one and kdf gdb finds it",
        ),
        _ => anyhow::Error::new(e).context(format!("failed to listen for gdb on 127.0.0.1:{port}")),
    })
}

pub fn port(listener: &TcpListener) -> Result<u16> {
    Ok(listener.local_addr().context("failed to read the gdb socket's port")?.port())
}

/// The line `kdf run -d` prints (its one notice without `-v`).
pub fn announce(port: u16, wait: bool) -> String {
    let wait = if wait { "; the CPU waits for it to continue" } else { "" };
    format!("gdb stub on 127.0.0.1:{port}: attach with `kdf gdb` from this directory{wait}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_free_port_and_a_taken_port_is_named() {
        let a = listen(0).unwrap();
        let b = listen(0).unwrap();
        let (pa, pb) = (port(&a).unwrap(), port(&b).unwrap());
        assert!(pa != 0 && pb != 0 && pa != pb);
        assert_eq!(a.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        let err = listen(pa).unwrap_err();
        assert!(err.to_string().contains(&format!("127.0.0.1:{pa}: the port is in use")), "{err}");
        assert!(crate::errors::hint_of(&err).unwrap().contains("without a port"));
    }

    #[test]
    fn the_announcement_names_the_port_and_the_command() {
        assert_eq!(
            announce(4321, false),
            "gdb stub on 127.0.0.1:4321: attach with `kdf gdb` from this directory"
        );
        assert!(announce(4321, true).ends_with("; the CPU waits for it to continue"));
    }
}
