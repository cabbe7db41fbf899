//! `kdf run`'s end of the attach channel: a unix socket in the run's
//! runtime directory where `kdf attach` and `kdf sysrq` connect, and the
//! guest's attach port (a socket pair QEMU holds, as for the run's channel).
//! Whole frames go each way, so the guest always knows where a session
//! begins and ends: a client's departure becomes `Hangup`, frames of a
//! session that has ended are dropped, and a second session is refused while
//! one runs (one whose client has left is waited for: it ends at once). `kdf sysrq` is served beside a session; answers come back in
//! the order the keys went.
//!
//! Threads of their own, apart from the run's supervisor: a client that
//! stops reading stalls only its own session, and nothing here delays the
//! run's ending (the process exits under them).

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kdf_proto::{read_frame, ToGuest, ToHost, MAX_FRAME, MAX_TO_HOST};

/// Accepts clients for the life of the run; [`Router::guest`] connects each
/// attempt's VM.
#[derive(Debug, Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the guest says hello and when a session ends.
    changed: Condvar,
    /// Frames to the guest are written whole under this lock.
    guest: Mutex<Option<UnixStream>>,
}

#[derive(Debug, Default)]
struct State {
    /// The guest's `Hello` on the attach port: clients wait for it.
    hello: Option<ToHost>,
    /// Which guest connection is current (a KVM failure starts another VM).
    generation: u64,
    session: Option<Session>,
    next_session: u64,
    /// The clients of the keys sent, in order.
    sysrq: VecDeque<UnixStream>,
}

#[derive(Debug)]
struct Session {
    id: u64,
    /// Where its output goes; `None` once the client left (its frames are dropped).
    client: Option<UnixStream>,
    /// The client's pid, for the refusal of a second session.
    pid: Option<i32>,
}

/// How long a new session waits for the guest to end one whose client left.
const HANGUP: Duration = Duration::from_secs(10);

/// A message for a client that asked for something the channel does not serve.
const NOT_A_REQUEST: &str = "not an attach or sysrq request (is this kdf from the same build as the run's?)";

impl Router {
    /// Listens on `path` (in the run's private runtime directory).
    pub fn listen(path: &Path) -> Result<Router> {
        let listener =
            UnixListener::bind(path).with_context(|| format!("failed to listen on {}", path.display()))?;
        let router = Router { shared: Arc::new(Shared::default()) };
        let shared = Arc::clone(&router.shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve_client(&shared, stream));
            }
        });
        Ok(router)
    }

    /// Connects this attempt's VM: `stream` is kdf's end of the attach port.
    pub fn guest(&self, stream: UnixStream) -> Result<()> {
        let writer = stream.try_clone().context("failed to clone a socket")?;
        let generation = {
            let mut state = self.shared.lock();
            state.generation += 1;
            state.hello = None;
            state.session = None;
            state.sysrq.clear();
            self.shared.changed.notify_all();
            state.generation
        };
        *self.shared.guest.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || route_guest(&shared, stream, generation));
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one frame to the guest; `before` runs under the same lock, so
    /// what it records is in the order the frames go.
    fn send(&self, msg: &ToGuest, before: impl FnOnce(&mut State)) {
        let mut guest = self.guest.lock().unwrap_or_else(|e| e.into_inner());
        before(&mut self.lock());
        if let Some(stream) = guest.as_mut() {
            // A failed write means the VM is gone; the run notices that itself.
            let _ = stream.write_all(&msg.encode());
        }
    }
}

fn send_to(client: &mut UnixStream, msg: &ToHost) -> bool {
    client.write_all(&msg.encode()).is_ok()
}

/// Reads one client's frames as `ToGuest` messages; `None` at its end.
fn next_request(stream: &mut UnixStream) -> Option<ToGuest> {
    let (tag, payload) = read_frame(stream, MAX_FRAME).ok()??;
    ToGuest::decode(tag, &payload).ok()
}

/// One client: the guest's hello, then its request, then (a session) its
/// frames until it leaves.
fn serve_client(shared: &Shared, mut stream: UnixStream) {
    let hello = {
        let mut state = shared.lock();
        while state.hello.is_none() {
            state = shared.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.hello.clone().expect("checked above")
    };
    if !send_to(&mut stream, &hello) {
        return;
    }
    match next_request(&mut stream) {
        Some(key @ ToGuest::Sysrq(_)) => {
            let Ok(reply_to) = stream.try_clone() else { return };
            shared.send(&key, |state| state.sysrq.push_back(reply_to));
        }
        Some(attach @ ToGuest::Attach(_)) => session(shared, stream, &attach),
        Some(_) => {
            send_to(&mut stream, &ToHost::Refused(NOT_A_REQUEST.into()));
        }
        None => {}
    }
}

fn session(shared: &Shared, mut stream: UnixStream, attach: &ToGuest) {
    let pid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|c| c.pid());
    let Ok(client) = stream.try_clone() else { return };
    let id = {
        let mut state = shared.lock();
        let deadline = Instant::now() + HANGUP;
        while let Some(other) = &state.session {
            let left = deadline.saturating_duration_since(Instant::now());
            if other.client.is_none() && !left.is_zero() {
                // Its client left and the guest is hanging it up.
                state = shared.changed.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            let one = "is attached to this VM: one session at a time";
            let why = match (&other.client, other.pid) {
                (Some(_), Some(pid)) => format!("another kdf attach (pid {pid}) {one}"),
                (Some(_), None) => format!("another kdf attach {one}"),
                (None, _) => {
                    format!("the guest has not ended the last session {}s after its hangup", HANGUP.as_secs())
                }
            };
            drop(state);
            send_to(&mut stream, &ToHost::Refused(why));
            return;
        }
        state.next_session += 1;
        let id = state.next_session;
        state.session = Some(Session { id, client: Some(client), pid });
        id
    };
    shared.send(attach, |_| {});
    let current = |state: &State| state.session.as_ref().is_some_and(|s| s.id == id);
    while let Some(msg) = next_request(&mut stream) {
        let forward = matches!(
            msg,
            ToGuest::Stdin(_)
                | ToGuest::StdinEof
                | ToGuest::Signal(_)
                | ToGuest::Winsize(_)
                | ToGuest::StdoutClosed
                | ToGuest::StderrClosed
        );
        if !current(&shared.lock()) {
            return;
        }
        if forward {
            shared.send(&msg, |_| {});
        }
    }
    // The client left: if its command still runs, the guest hangs it up.
    let mut hung_up = false;
    {
        let mut state = shared.lock();
        if let Some(s) = state.session.as_mut().filter(|s| s.id == id) {
            s.client = None;
            hung_up = true;
        }
    }
    if hung_up {
        shared.send(&ToGuest::Hangup, |_| {});
    }
}

/// Routes the guest's frames: its hello, sysrq answers, and the session's
/// output to the session's client, up to its `Exit` (or `Refused`).
fn route_guest(shared: &Shared, mut stream: UnixStream, generation: u64) {
    while let Ok(Some((tag, payload))) = read_frame(&mut stream, MAX_TO_HOST) {
        let Ok(msg) = ToHost::decode(tag, &payload) else { break };
        let mut state = shared.lock();
        if state.generation != generation {
            return;
        }
        match msg {
            ToHost::Hello { .. } => {
                state.hello = Some(msg);
                shared.changed.notify_all();
            }
            ToHost::SysrqDone { .. } => {
                if let Some(mut client) = state.sysrq.pop_front() {
                    drop(state);
                    send_to(&mut client, &msg);
                }
            }
            ToHost::Exit(_) | ToHost::Refused(_) => {
                let session = state.session.take();
                shared.changed.notify_all();
                drop(state);
                if let Some(mut client) = session.and_then(|s| s.client) {
                    send_to(&mut client, &msg);
                }
            }
            _ => {
                let client = state.session.as_ref().and_then(|s| s.client.as_ref()?.try_clone().ok());
                drop(state);
                if let Some(mut client) = client {
                    send_to(&mut client, &msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kdf_proto::{Exec, Outcome, PROTOCOL_VERSION};

    use super::*;

    /// A router on a temporary socket, and the guest's end of its port.
    fn router() -> (tempfile::TempDir, std::path::PathBuf, UnixStream) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attach.sock");
        let router = Router::listen(&path).unwrap();
        let (host, guest) = UnixStream::pair().unwrap();
        router.guest(host).unwrap();
        (dir, path, guest)
    }

    fn send(stream: &mut UnixStream, frame: Vec<u8>) {
        stream.write_all(&frame).unwrap();
    }

    fn to_client(stream: &mut UnixStream) -> Option<ToHost> {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (tag, payload) = read_frame(stream, MAX_TO_HOST).unwrap()?;
        Some(ToHost::decode(tag, &payload).unwrap())
    }

    fn to_guest(stream: &mut UnixStream) -> ToGuest {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (tag, payload) = read_frame(stream, MAX_FRAME).unwrap().unwrap();
        ToGuest::decode(tag, &payload).unwrap()
    }

    fn hello() -> ToHost {
        ToHost::Hello { version: PROTOCOL_VERSION, release: "7.3".into() }
    }

    fn exec(argv0: &str) -> Exec {
        Exec {
            argv: vec![argv0.into()],
            program: None,
            env: Vec::new(),
            cwd: b"/".to_vec(),
            user: None,
            tty: None,
            stdin: true,
        }
    }

    /// A client past the hello that has asked for `argv0`.
    fn attach(path: &Path, argv0: &str) -> UnixStream {
        let mut client = UnixStream::connect(path).unwrap();
        assert_eq!(to_client(&mut client), Some(hello()));
        send(&mut client, ToGuest::Attach(exec(argv0)).encode());
        client
    }

    #[test]
    fn a_session_gets_its_output_up_to_its_exit_and_the_next_one_may_start() {
        let (_dir, path, mut guest) = router();
        // A client that comes before the guest is up waits for its hello.
        let early = std::thread::spawn({
            let path = path.clone();
            move || attach(&path, "first")
        });
        std::thread::sleep(Duration::from_millis(100));
        send(&mut guest, hello().encode());
        let mut client = early.join().unwrap();
        assert_eq!(to_guest(&mut guest), ToGuest::Attach(exec("first")));
        send(&mut client, ToGuest::Stdin(b"in".to_vec()).encode());
        assert_eq!(to_guest(&mut guest), ToGuest::Stdin(b"in".to_vec()));
        send(&mut guest, ToHost::Stdout(b"out".to_vec()).encode());
        send(&mut guest, ToHost::Exit(Outcome::Exited(4)).encode());
        assert_eq!(to_client(&mut client), Some(ToHost::Stdout(b"out".to_vec())));
        assert_eq!(to_client(&mut client), Some(ToHost::Exit(Outcome::Exited(4))));
        // Frames of an ended session go nowhere; its end sends no hangup.
        send(&mut client, ToGuest::Winsize(kdf_proto::Winsize { rows: 1, cols: 1 }).encode());
        drop(client);
        let mut next = attach(&path, "second");
        assert_eq!(to_guest(&mut guest), ToGuest::Attach(exec("second")));
        send(&mut guest, ToHost::Exit(Outcome::Exited(0)).encode());
        assert_eq!(to_client(&mut next), Some(ToHost::Exit(Outcome::Exited(0))));
    }

    #[test]
    fn a_second_session_is_refused_while_one_runs() {
        let (_dir, path, mut guest) = router();
        send(&mut guest, hello().encode());
        let _first = attach(&path, "first");
        assert_eq!(to_guest(&mut guest), ToGuest::Attach(exec("first")));
        let mut second = attach(&path, "second");
        let refusal = to_client(&mut second);
        let pid = std::process::id();
        assert!(
            matches!(&refusal, Some(ToHost::Refused(why)) if why.contains(&format!("another kdf attach (pid {pid})"))),
            "{refusal:?}"
        );
        assert_eq!(to_client(&mut second), None, "and closed");
    }

    #[test]
    fn a_client_that_leaves_is_hung_up_and_its_sessions_stragglers_are_dropped() {
        let (_dir, path, mut guest) = router();
        send(&mut guest, hello().encode());
        let client = attach(&path, "first");
        assert_eq!(to_guest(&mut guest), ToGuest::Attach(exec("first")));
        drop(client);
        assert_eq!(to_guest(&mut guest), ToGuest::Hangup);
        // The next session waits for the guest to end the one hung up.
        let mut next = attach(&path, "second");
        send(&mut guest, ToHost::Stdout(b"late".to_vec()).encode());
        send(&mut guest, ToHost::Exit(Outcome::Signaled(1)).encode());
        assert_eq!(to_guest(&mut guest), ToGuest::Attach(exec("second")));
        send(&mut guest, ToHost::Stdout(b"mine".to_vec()).encode());
        assert_eq!(to_client(&mut next), Some(ToHost::Stdout(b"mine".to_vec())), "none of the first's");
    }

    #[test]
    fn sysrq_answers_go_to_their_clients_in_order_beside_a_session() {
        let (_dir, path, mut guest) = router();
        send(&mut guest, hello().encode());
        let mut session = attach(&path, "shell");
        assert_eq!(to_guest(&mut guest), ToGuest::Attach(exec("shell")));
        let key = |k: u8| {
            let mut c = UnixStream::connect(&path).unwrap();
            assert_eq!(to_client(&mut c), Some(hello()));
            send(&mut c, ToGuest::Sysrq(k).encode());
            c
        };
        let mut w = key(b'w');
        assert_eq!(to_guest(&mut guest), ToGuest::Sysrq(b'w'));
        let mut t = key(b't');
        assert_eq!(to_guest(&mut guest), ToGuest::Sysrq(b't'));
        let answer = |line: &str| ToHost::SysrqDone { log: vec![line.into()], error: None };
        send(&mut guest, answer("blocked").encode());
        send(&mut guest, ToHost::Stdout(b"$ ".to_vec()).encode());
        send(&mut guest, answer("tasks").encode());
        assert_eq!(to_client(&mut w), Some(answer("blocked")));
        assert_eq!(to_client(&mut t), Some(answer("tasks")));
        assert_eq!(to_client(&mut session), Some(ToHost::Stdout(b"$ ".to_vec())));
    }

    #[test]
    fn a_request_that_is_neither_is_refused() {
        let (_dir, path, mut guest) = router();
        send(&mut guest, hello().encode());
        let mut c = UnixStream::connect(&path).unwrap();
        assert_eq!(to_client(&mut c), Some(hello()));
        send(&mut c, ToGuest::Ack.encode());
        assert!(matches!(to_client(&mut c), Some(ToHost::Refused(why)) if why.contains("not an attach")));
    }
}
