//! Waiting for a gdb stub that answers. kdf's socket accepts connections as
//! soon as `kdf run -d` binds it, before QEMU serves on it, so a connection
//! alone proves nothing: the stub must answer a `?` packet. (QEMU stops the
//! VM when a debugger connects; gdb, which connects next, stops it anyway.)

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::errors::hinted;

/// The remote protocol's "why did you stop?" packet, with its checksum.
const QUERY: &[u8] = b"$?#3f";
/// How long to wait between attempts to connect.
const RETRY: Duration = Duration::from_millis(100);

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Answered,
    /// Connected, but no answer in time (another debugger holds the stub).
    Silent,
    Refused,
}

fn probe(addr: SocketAddr, limit: Duration) -> Probe {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, limit.max(Duration::from_millis(1))) else {
        return Probe::Refused;
    };
    let _ = stream.set_read_timeout(Some(limit.max(Duration::from_millis(1))));
    let mut byte = [0u8; 1];
    // An ack (`+`) or a packet (`$`): a gdb stub.
    match stream.write_all(QUERY).and_then(|_| stream.read(&mut byte)) {
        Ok(1) if byte[0] == b'+' || byte[0] == b'$' => Probe::Answered,
        _ => Probe::Silent,
    }
}

/// Waits until the stub on 127.0.0.1:`port` answers, or `deadline`.
pub fn wait(port: u16, deadline: Instant) -> Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        last = probe(addr, left);
        if last == Probe::Answered {
            return Ok(());
        }
        if Instant::now() + RETRY >= deadline {
            break;
        }
        std::thread::sleep(RETRY);
    }
    Err(match last {
        Probe::Silent => hinted(
            format!("the gdb stub on 127.0.0.1:{port} does not answer"),
            "QEMU serves one debugger at a time: detach the other one (or quit it) first",
        ),
        _ => hinted(
            format!("nothing is listening on 127.0.0.1:{port}"),
            "start the VM with `kdf run -d` (it prints the port), or give the port it printed with --port",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_stub_that_answers_is_found_and_a_closed_port_is_named() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut query = [0u8; 5];
            s.read_exact(&mut query).unwrap();
            s.write_all(b"+$S05#b8").unwrap();
            query
        });
        wait(port, Instant::now() + Duration::from_secs(30)).unwrap();
        assert_eq!(&server.join().unwrap(), QUERY);

        let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let err = wait(closed, Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.to_string(), format!("nothing is listening on 127.0.0.1:{closed}"));
    }

    #[test]
    fn a_socket_that_never_answers_is_not_a_stub() {
        // Listening, as kdf's socket is before QEMU serves on it.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = wait(port, Instant::now() + Duration::from_millis(300)).unwrap_err();
        assert!(err.to_string().contains("does not answer"), "{err}");
        drop(listener);
    }
}
