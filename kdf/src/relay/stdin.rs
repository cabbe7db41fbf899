//! Forwarding kdf's stdin to the command, never more than the guest has room
//! for (the credit); in `--tty` mode also watching for the kill escape.

use std::io::Read;
use std::sync::mpsc::Sender;

use kdf_proto::{ToGuest, MAX_DATA};

use super::channel::{Credit, Writer};
use super::event::Event;
use super::terminal::Escape;

/// Runs on its own thread until stdin ends or the VM is gone.
pub fn pump(writer: Writer, credit: Credit, tty: bool, events: Sender<Event>) {
    let mut escape = tty.then(Escape::default);
    let mut buf = vec![0u8; MAX_DATA];
    let mut stdin = std::io::stdin().lock();
    loop {
        let room = credit.take(MAX_DATA as u32) as usize;
        let n = match stdin.read(&mut buf[..room]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                credit.add(room as u32);
                continue;
            }
            Err(_) => 0,
        };
        credit.add((room - n) as u32);
        if n == 0 {
            writer.send(&ToGuest::StdinEof);
            return;
        }
        let mut data = buf[..n].to_vec();
        if let Some(e) = escape.as_mut() {
            let (pass, kill) = e.feed(&data);
            if kill {
                let _ = events.send(Event::Escape);
                return;
            }
            data = pass;
        }
        if !data.is_empty() && !writer.send(&ToGuest::Stdin(data)) {
            return;
        }
    }
}
