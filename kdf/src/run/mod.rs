//! `kdf run`: choose the kernel ([`crate::kernel::choice`]) and build it
//! first with `--build` ([`build_first`]), resolve the command line into a
//! [`prepare::Prepared`] run (kernel, initramfs, shares, plan, accelerator),
//! turn it into the processes' command lines ([`spec`]), then print them
//! (`--dry-run`, [`dry_run`]) or execute them ([`session`]).

mod attempt;
mod build_first;
mod command;
mod console;
mod debug;
mod dry_run;
mod files;
mod guest;
mod hardware;
mod ktap;
mod machine;
mod prepare;
mod result;
mod sandbox;
mod session;
mod spec;
mod splat;
mod supervise;
mod timings;
mod verdict;
mod vmcore;

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::Result;

use crate::cli::RunArgs;
use crate::kernel::choice::{self, Choice};
use crate::ui::say;

pub fn run(args: &RunArgs, started: Instant) -> Result<i32> {
    let ran = choose_and_run(args, started);
    // A run that ends in kdf's own error (refused before boot, a VM that
    // could not start) still leaves the --result a CI job reads.
    if let (Err(err), Some(path), false) = (&ran, &args.result, args.dry_run) {
        if let Err(e) = std::fs::write(path, result::to_json(&result::refusal(err))) {
            say(&format!("failed to write --result {}: {e}", path.display()));
        }
    }
    ran
}

fn choose_and_run(args: &RunArgs, started: Instant) -> Result<i32> {
    let choice = choice::decide(&args.kernel.flags(args.build))?;
    if args.dry_run {
        let p = prepare::prepare(args, &choice)?;
        dry_run::print(&p, &choice)?;
        return Ok(0);
    }
    for line in notices(&choice, args.verbose, std::io::stderr().is_terminal()) {
        say(&line);
    }
    let mut started = started;
    if let Some(tree) = &choice.build_first {
        build_first::build(tree, args.verbose)?;
        // --timeout and --timings are about the run, not the build.
        started = Instant::now();
    }
    let p = prepare::prepare(args, &choice)?;
    session::execute(&p, started)
}

/// kdf's lines about the kernel it chose: why, with `-v`; the hint only on
/// a terminal (otherwise stderr is the command's, byte for byte).
pub fn notices(choice: &Choice, verbose: bool, terminal: bool) -> Vec<String> {
    let mut out = Vec::new();
    if verbose {
        out.push(format!("kernel: {}", choice.why));
    }
    if let Some(hint) = choice.hint.as_ref().filter(|_| terminal) {
        out.push(hint.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Source;

    #[test]
    fn the_hint_is_for_terminals_and_the_reason_for_verbose_runs() {
        let choice = Choice {
            source: Source::Release(None),
            why: "the newest installed kernel: ...".into(),
            hint: Some("booting the newest installed kernel: ...".into()),
            build_first: None,
        };
        assert!(notices(&choice, false, false).is_empty(), "nothing on a non-terminal stderr");
        assert_eq!(notices(&choice, false, true), ["booting the newest installed kernel: ..."]);
        assert_eq!(notices(&choice, true, false), ["kernel: the newest installed kernel: ..."]);
        assert_eq!(notices(&choice, true, true).len(), 2);
    }
}
