//! kdf-init: PID 1 of a kdf VM. Reads like a table of contents: set up the
//! guest, fetch the plan from the host, switch to the host's files, run one
//! command (and `kdf attach` sessions beside it, in a thread), relay its
//! I/O, report its exact status and stop the VM.
//!
//! Two phases (as in catatonit): until the command starts, a failing required
//! step is reported (console + host) and ends the VM; once it runs, nothing
//! ends init early: it reaps, relays, and returns the command's status.

mod attach;
mod command;
mod console;
mod disks;
mod kmod;
mod kmsg;
mod log;
mod mounts;
mod net;
mod port;
mod power;
mod reaper;
mod relay;
mod sysrq;
mod system;
#[cfg(test)]
mod testing;

use kdf_proto::{Outcome, Plan, ToHost};

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
    let follower = if plan.kmsg { kmsg::Follower::start(port.writer()) } else { None };
    let port = &mut Some(port);
    marks.push(("plan".into(), system::uptime_us()));
    must(port.as_mut(), "load modules", kmod::load(&release, &plan.modules));
    disks::link_by_id();
    marks.push(("modules".into(), system::uptime_us()));
    system::configure(&plan);
    must(port.as_mut(), "mount the host's files", mounts::switch_to_host(&plan));
    must(port.as_mut(), "configure the network", net::configure(&plan));
    must(port.as_mut(), "make the root read-only", mounts::seal_root(&plan));
    must(port.as_mut(), "enter the working directory", command::check_cwd(&plan.command));
    marks.push(("mounted".into(), system::uptime_us()));
    let mut port = port.take().expect("port is kept until here");
    for module in &plan.user_modules {
        // Its kernel dependencies come from the real modules directory,
        // mounted by now.
        if let Err(err) = kmod::load_deps(&release, &module.depends).and_then(|()| kmod::load_user(module)) {
            module_failed(&mut port, &module.name, "load", err);
            end(port, follower, None);
        }
    }
    marks.push(("user modules".into(), system::uptime_us()));

    run(port, &plan, marks, follower, release);
}

/// Phase two: from here on init never bails out.
fn run(
    mut port: Port,
    plan: &Plan,
    mut marks: Vec<(String, u64)>,
    follower: Option<kmsg::Follower>,
    release: String,
) -> ! {
    let sigchld = relay::block_sigchld();
    port.send(&ToHost::Tainted(system::tainted()));
    attach::start(release);
    let outcome = match command::spawn(&plan.command) {
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
    if plan.unload {
        for module in plan.user_modules.iter().rev() {
            if let Err(err) = kmod::unload_user(&module.name) {
                module_failed(&mut port, &module.name, "unload", err);
                break;
            }
        }
    }
    port.send(&ToHost::Tainted(system::tainted()));
    end(port, follower, Some(outcome))
}

fn module_failed(port: &mut Port, name: &str, action: &str, err: kmod::ModuleError) {
    say(&format!("error: cannot {action} module {name}: {}", err.error));
    port.send(&ToHost::ModuleFailed {
        name: name.into(),
        action: action.into(),
        error: err.error,
        log: err.log,
    });
}

/// The end of every run that reached the plan: the shares synced, the kernel
/// log sent, the command's outcome (none when it never ran), then the VM ends
/// once kdf has acknowledged (or the ack timeout passes).
fn end(mut port: Port, follower: Option<kmsg::Follower>, outcome: Option<Outcome>) -> ! {
    // Files the command wrote to shares must be on the host before kdf returns.
    nix::unistd::sync();
    if let Some(f) = follower {
        f.finish();
    }
    port.send(&ToHost::Exit(outcome.unwrap_or(Outcome::NotRun)));
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
