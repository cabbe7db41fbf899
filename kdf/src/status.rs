//! kdf's exit status: the command's own status where there is one, and a
//! documented status for every way a run can end otherwise.

use kdf_proto::Outcome;

/// The kernel panicked, or never reached init (below 124: `git bisect run`
/// counts it as bad).
pub const KERNEL: i32 = 120;
/// A KUnit test failed or its plan was not met, and the command exited 0.
pub const KUNIT: i32 = 121;
/// The kernel logged a splat (WARNING, BUG, Oops, ...) and the command exited 0.
pub const SPLAT: i32 = 122;
/// A `--module` did not load (the command did not run), or did not unload.
pub const MODULE: i32 = 123;
/// `--timeout` expired (as timeout(1)).
pub const TIMEOUT: i32 = 124;
/// kdf or the VM failed: bad kernel, boot failure, panic, init error.
pub const FAILURE: i32 = 125;
/// The command exists but could not be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const NOT_FOUND: i32 = 127;
/// A usage error (clap's status too).
pub const USAGE: i32 = 2;

/// The table in `kdf run --help` and the README.
pub const TABLE: &str = "\
Exit status:
  N        the command's own exit status
  128+N    the command died of signal N (also: kdf was signalled and the
           command did not end within the grace period)
  120      the kernel panicked or never reached init
  121      a KUnit test failed or a KUnit plan was not met, and the command
           exited 0
  122      the kernel logged a splat (WARNING, BUG, Oops, KASAN, lockdep, ...)
           and the command exited 0
  123      a --module did not load (the command did not run) or unload
  124      --timeout expired
  125      kdf or the VM failed (bad kernel, kdf-init error, QEMU died)
  126      the command could not be executed
  127      the command was not found
  2        usage error
When the status is kdf's own (120-127, 2), a `kdf:` line on stderr says why.
120-123 are below 124, so `git bisect run kdf run ...` counts them as bad;
125 (kdf could not test) makes it skip the commit.";

/// What a status means, in a few words (for `--result`).
pub fn meaning(code: i32) -> String {
    match code {
        0 => "success".into(),
        KERNEL => "the kernel panicked or never reached init".into(),
        KUNIT => "a KUnit test failed".into(),
        SPLAT => "the kernel logged a splat".into(),
        MODULE => "a --module did not load or unload".into(),
        TIMEOUT => "--timeout expired".into(),
        FAILURE => "kdf or the VM failed".into(),
        NOT_EXECUTABLE => "the command could not be executed".into(),
        NOT_FOUND => "the command was not found".into(),
        c if c > 128 => format!("the command died of signal {}", c - 128),
        c => format!("the command exited with {c}"),
    }
}

/// The status for the guest's outcome, and kdf's line when it is kdf's own.
pub fn of_outcome(outcome: &Outcome, program: &str) -> (i32, Option<String>) {
    match outcome {
        Outcome::Exited(code) => (*code, None),
        Outcome::Signaled(sig) => (128 + sig, None),
        Outcome::NotFound => (NOT_FOUND, Some(format!("{program}: command not found"))),
        Outcome::NotExecutable(why) => (NOT_EXECUTABLE, Some(format!("{program}: cannot execute: {why}"))),
        Outcome::NotRun => (MODULE, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_statuses_pass_through() {
        assert_eq!(of_outcome(&Outcome::Exited(0), "true"), (0, None));
        assert_eq!(of_outcome(&Outcome::Exited(3), "x"), (3, None));
        assert_eq!(of_outcome(&Outcome::Exited(255), "x"), (255, None));
    }

    #[test]
    fn signals_map_to_128_plus_n() {
        assert_eq!(of_outcome(&Outcome::Signaled(9), "x").0, 137);
        assert_eq!(of_outcome(&Outcome::Signaled(13), "x").0, 141);
    }

    #[test]
    fn exec_failures_are_kdf_statuses_with_a_reason() {
        let (s, line) = of_outcome(&Outcome::NotFound, "nope");
        assert_eq!((s, line.unwrap()), (127, "nope: command not found".to_string()));
        let (s, line) = of_outcome(&Outcome::NotExecutable("Permission denied (os error 13)".into()), "./f");
        assert_eq!(s, 126);
        assert!(line.unwrap().contains("Permission denied"));
    }
}
