//! `kdf run`: resolve the command line into a [`prepare::Prepared`] run
//! (kernel, initramfs, shares, plan, accelerator), turn it into the processes'
//! command lines ([`spec`]), then print them (`--dry-run`, [`dry_run`]) or
//! execute them ([`session`]).

mod channel;
mod console;
mod dry_run;
mod prepare;
mod session;
mod spec;
mod stdin;
mod terminal;
mod timings;

use std::time::Instant;

use anyhow::Result;
use kdf_proto::ToHost;

use crate::cli::RunArgs;

/// What the main loop hears from the threads of a run.
#[derive(Debug)]
pub enum Event {
    Guest(ToHost),
    /// The channel ended (QEMU is gone) or broke.
    Closed(Option<String>),
    /// QEMU said KVM cannot run the guest.
    KvmFailure(String),
    /// The user typed the kill escape.
    Escape,
}

pub fn run(args: &RunArgs, started: Instant) -> Result<i32> {
    let p = prepare::prepare(args)?;
    if args.dry_run {
        dry_run::print(&p)?;
        return Ok(0);
    }
    session::execute(&p, started)
}
