//! `kdf run --build`: the kernel tree's build brought up to date before the
//! run is prepared: configured with kdf's defaults when the build directory
//! has no `.config` yet, then built incrementally. Progress shows on a
//! terminal only: otherwise stderr is the command's, so the build is silent
//! and its output is in `BUILD/kdf-build.log` (the last lines of which a
//! failed build prints, ending the run with 125).

use anyhow::Result;

use crate::kbuild::build::{self, LOG_FILE};
use crate::kbuild::configure;
use crate::kbuild::make::Display;
use crate::kbuild::tree::{self, Tree};
use crate::ui::say;

pub fn build(chosen: &Tree, verbose: bool) -> Result<()> {
    // Checks the source, and refuses a tree configured in place for an O= build.
    let tree = tree::resolve(Some(&chosen.src), Some(&chosen.build))?;
    let display = Display::terminal_or_silent();
    let quiet = display == Display::Silent;
    if !tree.build.join(".config").exists() {
        if !quiet {
            say(&format!("configuring {} with kdf's defaults (kdf kernel config)", tree.build.display()));
        }
        configure::configure(&configure::ConfigOptions::default(), &tree, quiet)?;
    }
    let built = build::build(&tree, &build::Options::default(), display)?;
    if verbose {
        say(&format!("{}; its log: {}", build::summary(&tree, &built), tree.build.join(LOG_FILE).display()));
    }
    Ok(())
}
