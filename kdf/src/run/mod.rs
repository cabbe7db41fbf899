//! `kdf run`: resolve the command line into a [`prepare::Prepared`] run
//! (kernel, initramfs, shares, plan, accelerator), turn it into the processes'
//! command lines ([`spec`]), then print them (`--dry-run`, [`dry_run`]) or
//! execute them ([`session`]).

mod attempt;
mod channel;
mod console;
mod dry_run;
mod event;
mod prepare;
mod result;
mod session;
mod spec;
mod splat;
mod stdin;
mod supervise;
mod terminal;
mod timings;
mod verdict;

use std::time::Instant;

use anyhow::Result;

use crate::cli::RunArgs;

pub fn run(args: &RunArgs, started: Instant) -> Result<i32> {
    let p = prepare::prepare(args)?;
    if args.dry_run {
        dry_run::print(&p)?;
        return Ok(0);
    }
    session::execute(&p, started)
}
