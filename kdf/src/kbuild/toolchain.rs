//! Checking the toolchain before configuring: `make rustavailable` when Rust
//! is requested (its `***` lines name the missing tool and the versions),
//! the LLVM tools for `--llvm`, the cross compiler for `--arch`. Without the check, Kconfig drops RUST
//! silently and the failure shows up far from its cause.

use anyhow::Result;

use super::arch::Toolchain;
use super::make::{self, Make};
use crate::errors::hinted;

/// The message lines of `scripts/rust_is_available.sh`: the `***` lines,
/// without the banner and the pointer to the documentation.
pub fn rust_problem(output: &str) -> String {
    let lines: Vec<String> = output
        .lines()
        .filter_map(|l| l.strip_prefix("***"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .filter(|l| !l.starts_with("Please see Documentation/rust") && !l.starts_with("on how to set up"))
        .collect();
    if lines.is_empty() {
        output.trim().lines().last().unwrap_or("make rustavailable failed").to_string()
    } else {
        lines.join("; ").replace(":;", ":")
    }
}

/// The fix for a problem [`rust_problem`] found.
pub fn rust_hint(problem: &str) -> String {
    let fix = if problem.contains("'bindgen'") && problem.contains("could not be found") {
        "install bindgen: cargo install --locked bindgen-cli"
    } else if problem.contains("libclang") {
        "install libclang and point bindgen at it: sudo apt install libclang-19-dev; \
         export LIBCLANG_PATH=/usr/lib/llvm-19/lib"
    } else if problem.contains("'core' standard library") {
        "install the Rust sources: rustup component add rust-src"
    } else if problem.contains("bindgen") && problem.contains("too old") {
        "update bindgen: cargo install --locked --force bindgen-cli"
    } else if problem.contains("too old") {
        "update Rust: rustup update stable (the kernel's Documentation/rust/quick-start.rst has the details)"
    } else if problem.contains("'rustc'") {
        "install Rust with rustup: https://rustup.rs"
    } else {
        "see Documentation/rust/quick-start.rst in the kernel source"
    };
    format!("{fix}; or build without Rust: --no-rust")
}

/// Fails early, naming the missing tool and version, when the kernel's
/// `rustavailable` check fails.
pub fn check_rust(src: &std::path::Path, build: &std::path::Path, toolchain: &Toolchain) -> Result<()> {
    let m = Make {
        src: src.to_path_buf(),
        build: build.to_path_buf(),
        jobs: None,
        toolchain: toolchain.clone(),
        vars: Vec::new(),
        targets: vec!["rustavailable".into()],
    };
    let out = make::run_captured(&m)?;
    if out.success {
        return Ok(());
    }
    let problem = rust_problem(&out.text);
    Err(hinted(format!("Rust was requested but the kernel cannot build it: {problem}"), rust_hint(&problem)))
}

/// Fails naming the cross compiler when `CROSS_COMPILE`'s gcc is not there
/// (a prefix with a directory is checked as a path, else on PATH).
pub fn check_cross(toolchain: &Toolchain) -> Result<()> {
    let Some(prefix) = toolchain.cross_compile.as_deref().filter(|_| !toolchain.llvm) else { return Ok(()) };
    let gcc = format!("{prefix}gcc");
    let found = if gcc.contains('/') {
        std::path::Path::new(&gcc).is_file()
    } else {
        crate::tools::which(&gcc, &[]).is_some()
    };
    if found {
        return Ok(());
    }
    Err(hinted(
        format!("building for {} needs the cross compiler {gcc}, which is not installed", toolchain.arch),
        cross_hint(toolchain),
    ))
}

/// How to get a cross compiler for the toolchain's architecture.
pub fn cross_hint(toolchain: &Toolchain) -> String {
    format!(
        "install it (Debian: sudo apt install {} binutils-{}), pass your own prefix \
         with --cross-compile PREFIX, or build with clang: --llvm",
        toolchain.arch.cross_package(),
        toolchain.arch.cross_package().trim_start_matches("gcc-"),
    )
}

/// The programs `LLVM=1` runs, by the kernel's names.
const LLVM_TOOLS: [&str; 5] = ["clang", "ld.lld", "llvm-ar", "llvm-nm", "llvm-objcopy"];

/// Fails naming the first LLVM tool that is not on PATH.
pub fn check_llvm() -> Result<()> {
    match LLVM_TOOLS.iter().find(|t| crate::tools::which(t, &[]).is_none()) {
        Some(tool) => Err(hinted(
            format!("--llvm builds with LLVM=1, but {tool} is not on PATH"),
            "install clang, lld and llvm (Debian: sudo apt install clang lld llvm), or build with GCC (no --llvm)",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_BINDGEN: &str = "\
***
*** Rust bindings generator 'bindgen' could not be found.
***
***
*** Please see Documentation/rust/quick-start.rst for details
*** on how to set up the Rust support.
***
make[1]: *** [/src/Makefile:2042: rustavailable] Error 1
";

    const OLD_RUSTC: &str = "\
***
*** Rust compiler 'rustc' is too old.
***   Your version:    1.78.0
***   Minimum version: 1.85.0
***
";

    #[test]
    fn the_missing_tool_is_named_with_its_fix() {
        let p = rust_problem(NO_BINDGEN);
        assert_eq!(p, "Rust bindings generator 'bindgen' could not be found.");
        assert!(rust_hint(&p).starts_with("install bindgen: cargo install --locked bindgen-cli"));
        assert!(rust_hint(&p).ends_with("or build without Rust: --no-rust"));
    }

    #[test]
    fn versions_are_kept_in_the_message() {
        let p = rust_problem(OLD_RUSTC);
        assert_eq!(p, "Rust compiler 'rustc' is too old.; Your version: 1.78.0; Minimum version: 1.85.0");
        assert!(rust_hint(&p).starts_with("update Rust: rustup update stable"));
    }

    #[test]
    fn a_missing_cross_compiler_names_the_package() {
        use crate::arch::Arch;
        let t = Toolchain::resolve(
            Some(Arch::Arm64),
            Some("/nonexistent/aarch64-linux-gnu-"),
            false,
            Arch::X86_64,
        );
        let err = check_cross(&t).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/aarch64-linux-gnu-gcc"), "{err:#}");
        let hint = crate::errors::hint_of(&err).unwrap();
        assert!(hint.contains("gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu"), "{hint}");
        // clang needs no prefix, the host's gcc none either.
        assert!(check_cross(&Toolchain { llvm: true, ..t }).is_ok());
        assert!(check_cross(&Toolchain::resolve(None, None, false, Arch::X86_64)).is_ok());
    }

    #[test]
    fn each_known_problem_has_its_own_fix() {
        let hint = |p: &str| rust_hint(p);
        assert!(hint("Source code for the 'core' standard library could not be found").contains("rust-src"));
        assert!(hint("libclang (used by the Rust bindings generator 'bindgen') is too old.")
            .contains("libclang-19-dev"));
        assert!(hint("Rust bindings generator 'bindgen' is too old.").contains("--force bindgen-cli"));
        assert!(hint("Rust compiler 'rustc' could not be found.").contains("rustup.rs"));
        assert_eq!(rust_problem("plain failure\n"), "plain failure");
    }
}
