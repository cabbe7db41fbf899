//! Reaching the VM of a running `kdf run`: its record, its attach socket,
//! and the guest's hello (a VM still booting sends it once kdf-init is up).

use std::io::Write;
use std::os::unix::net::UnixStream;

use anyhow::{anyhow, Context, Result};
use kdf_proto::{read_frame, ToGuest, ToHost, MAX_TO_HOST, PROTOCOL_VERSION};

use crate::errors::hinted;
use crate::runs::{self, Record};

/// A connection to a run's attach channel, past the guest's hello.
#[derive(Debug)]
pub struct Connection {
    pub stream: UnixStream,
    pub record: Record,
}

impl Connection {
    /// Connects to the run started from the current directory (or `pid`).
    pub fn open(pid: Option<u32>) -> Result<Connection> {
        let record = runs::find(pid)?;
        let Some(socket) = record.attach.clone() else {
            return Err(hinted(
                format!("kdf run pid {} has no attach channel (an older kdf started it)", record.pid),
                "start the VM again with this kdf",
            ));
        };
        let mut stream = UnixStream::connect(&socket).with_context(|| {
            format!("failed to connect to the VM of kdf run pid {} ({})", record.pid, socket.display())
        })?;
        match read_message(&mut stream)? {
            Some(ToHost::Hello { version, .. }) if version == PROTOCOL_VERSION => {
                Ok(Connection { stream, record })
            }
            Some(ToHost::Hello { version, .. }) => Err(hinted(
                format!(
                    "the VM of kdf run pid {} speaks protocol {version}, this kdf {PROTOCOL_VERSION}",
                    record.pid
                ),
                "use the kdf that started the VM (kdf run and kdf attach from the same build)",
            )),
            Some(other) => Err(anyhow!("unexpected first message from the attach channel: {other:?}")),
            None => Err(anyhow!("the VM of kdf run pid {} ended before it was up", record.pid)),
        }
    }

    pub fn send(&mut self, msg: &ToGuest) -> Result<()> {
        self.stream.write_all(&msg.encode()).context("failed to write to the attach channel")
    }
}

/// The next message on `stream`; `None` when kdf run closed it (its VM ended).
pub fn read_message(stream: &mut UnixStream) -> Result<Option<ToHost>> {
    let Some((tag, payload)) =
        read_frame(stream, MAX_TO_HOST).context("failed to read the attach channel")?
    else {
        return Ok(None);
    };
    let msg = ToHost::decode(tag, &payload)
        .map_err(|e| anyhow!("{e} (are kdf and kdf run from the same build?)"))?;
    Ok(Some(msg))
}
