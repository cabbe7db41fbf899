//! `kdf`, the Kernel Development Flake's CLI. Parses the command line,
//! dispatches, and turns errors into one `kdf:` line (plus a `hint:`) and the
//! documented exit status.

mod accel;
mod arch;
mod attach;
mod cache;
mod child;
mod cli;
mod compress;
mod disks;
mod elf;
mod errors;
mod gdb;
mod initramfs;
mod kbuild;
mod kconfig;
mod kdump;
mod kernel;
mod module;
mod monitor;
mod nix;
mod plan;
mod qmp;
mod relay;
mod ring;
mod root;
mod run;
mod runs;
mod runtime;
mod shares;
mod status;
mod tools;
mod tsc;
mod ui;
mod vm;

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use cli::kernel::KernelCommand;
use cli::{BuildCommand, Cli, Command, RootCommand};

fn main() {
    let started = Instant::now();
    let cli = Cli::parse();
    let code = match dispatch(cli, started) {
        Ok(code) => code,
        Err(err) => {
            let _ = std::io::stdout().flush();
            ui::say(&format!("error: {err:#}"));
            if let Some(hint) = errors::hint_of(&err) {
                ui::say(&format!("hint: {hint}"));
            }
            errors::exit_status(&err)
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn dispatch(cli: Cli, started: Instant) -> Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(&args, started),
        Command::Build(BuildCommand::Initramfs(args)) => {
            let choice = kernel::choice::decide(&args.kernel.flags(false))?;
            let places = kernel::Places { modules_dir: args.kernel.modules_dir.clone(), root: None };
            let kernel = kernel::resolve(&choice.source, &places)?;
            let init = initramfs::init_binary::locate(args.kernel.init.as_deref(), kernel.arch)?;
            let bytes = initramfs::build(&kernel, &init, &args.modules)?;
            cache::write_atomic(&args.output, &bytes)
                .with_context(|| format!("failed to write {}", args.output.display()))?;
            println!("{}", args.output.display());
            Ok(0)
        }
        Command::Kernel(KernelCommand::Config(args)) => kbuild::configure::run(&args.options()),
        Command::Kernel(KernelCommand::Build(args)) => {
            kbuild::build::run(args.tree.src.as_deref(), args.tree.build.as_deref(), &args.options())
        }
        Command::Gdb(args) => gdb::run(&args.options()),
        Command::Attach(args) => attach::session::run(&args),
        Command::Sysrq(args) => attach::sysrq::run(&args),
        Command::Root(RootCommand::Fetch(args)) => {
            println!("{}", root::default::add(args.arch, &args.packages)?.display());
            Ok(0)
        }
        Command::Ps => {
            for record in runs::live()? {
                println!("{}\t{}", record.cwd.display(), record.describe());
            }
            Ok(0)
        }
        Command::Dump(args) => monitor::dump(&args),
        Command::Qmp(args) => monitor::qmp(&args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kdf", &mut std::io::stdout());
            Ok(0)
        }
    }
}
