//! `kdf gdb`'s arguments, converted to [`crate::gdb::Options`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::values::parse_secs;
use crate::gdb::Options;

#[derive(Debug, Args)]
pub struct GdbArgs {
    /// The kernel's vmlinux with debug info, or its build directory
    /// [default: the one the run booted, or its distro debug symbols]
    #[arg(short = 'k', long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Another directory with module .ko files for lx-symbols-runtime
    /// (repeatable; the run's --module files are found anyway)
    #[arg(long = "module-dir", value_name = "DIR")]
    pub module_dirs: Vec<PathBuf>,
    /// The stub's port: picks one of several runs, or a stub no kdf run started
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// The run with this kdf pid (see kdf ps)
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Stop on kernel warnings too (a breakpoint on __warn)
    #[arg(long)]
    pub break_on_warn: bool,
    /// How long to wait for the run and its stub
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub wait: Duration,
    /// Print the stub's port and exit, for scripts (attaches nothing)
    #[arg(long)]
    pub print_port: bool,
    /// Arguments for gdb, after `--` (e.g. -- -batch -ex 'lx-lsmod')
    #[arg(last = true, value_name = "GDB-ARGS")]
    pub gdb_args: Vec<OsString>,
}

impl GdbArgs {
    pub fn options(&self) -> Options {
        Options {
            kernel: self.kernel.clone(),
            module_dirs: self.module_dirs.clone(),
            port: self.port,
            pid: self.pid,
            break_on_warn: self.break_on_warn,
            wait: self.wait,
            print_port: self.print_port,
            gdb_args: self.gdb_args.clone(),
        }
    }
}
