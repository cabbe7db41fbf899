//! kdf-init: PID 1 of a kdf VM. Reads like a table of contents: set up the
//! guest, fetch the plan from the host, switch to the host's files, run one
//! command, relay its I/O, report its exact status and stop the VM.
//!
//! Two phases (as in catatonit): until the command starts, a failing required
//! step is reported (console + host) and ends the VM; once it runs, nothing
//! ends init early: it reaps, relays, and returns the command's status.

mod command;
mod console;
mod kmod;
mod log;
mod mounts;
mod port;
mod power;
mod relay;
mod system;
#[cfg(test)]
mod testing;

use kdf_proto::{Plan, ToHost};

use crate::log::{say, Fatal};
use crate::port::Port;

/// How long init waits for kdf to acknowledge `Exit`/`Failed` before it ends
/// the VM anyway (kdf acknowledges once it has written everything before them).
const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn main() {
    console::attach();
    power::die_on_panic();
    let mut marks = vec![("init".to_string(), system::uptime_us())];

    let release = system::release();
    must(None, "mount early filesystems", mounts::early());
    must(None, "load boot modules", kmod::load_preload(&release));
    let mut port = must(None, "open the host channel", Port::open());
    marks.push(("channel".into(), system::uptime_us()));

    let plan = must(None, "receive the plan", port.handshake(&release));
    let port = &mut Some(port);
    marks.push(("plan".into(), system::uptime_us()));
    must(port.as_mut(), "load modules", kmod::load(&release, &plan.modules));
    marks.push(("modules".into(), system::uptime_us()));
    system::configure(&plan);
    must(port.as_mut(), "mount the host's files", mounts::switch_to_host(&plan));
    must(port.as_mut(), "enter the working directory", command::check_cwd(&plan));
    marks.push(("mounted".into(), system::uptime_us()));

    run(port.take().expect("port is kept until here"), &plan, marks);
}

/// Phase two: from here on init never bails out.
fn run(mut port: Port, plan: &Plan, mut marks: Vec<(String, u64)>) -> ! {
    let sigchld = relay::block_sigchld();
    let outcome = match command::spawn(plan) {
        Ok(child) => {
            marks.push(("command".into(), system::uptime_us()));
            port.send(&ToHost::Ready { marks });
            relay::run(&mut port, child, &sigchld)
        }
        Err(outcome) => {
            port.send(&ToHost::Ready { marks });
            outcome
        }
    };
    // Files the command wrote to shares must be on the host before kdf returns.
    nix::unistd::sync();
    port.send(&ToHost::Exit(outcome));
    port.await_ack(ACK_TIMEOUT);
    power::off()
}

/// Unwraps a setup step or ends the VM, naming the step.
fn must<T>(port: Option<&mut Port>, step: &str, result: Result<T, Fatal>) -> T {
    match result {
        Ok(v) => v,
        Err(err) => fail(port, step, &err),
    }
}

/// Reports a failed setup step on the console and to the host, then ends the VM.
fn fail(port: Option<&mut Port>, step: &str, err: &Fatal) -> ! {
    say(&format!("error: cannot {step}: {err}"));
    if let Some(port) = port {
        port.send(&ToHost::Failed { step: step.to_string(), message: err.to_string() });
        port.await_ack(ACK_TIMEOUT);
    }
    power::off()
}
