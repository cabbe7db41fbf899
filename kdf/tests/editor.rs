//! Editor support for the example modules, built against the test kernel with
//! their own Makefiles as the README says: `make compile_commands.json` in
//! modules/helloworld (clangd) and `make rust-analyzer` in modules/rust. No VM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Copies the example module `name` (its sources, Kbuild and Makefile)
/// to a fresh directory under `target/` and runs `make KDIR=<test kernel>
/// TARGET` there; the directory.
fn make_in_copy(name: &str, target: &str) -> PathBuf {
    let src = workspace().join("modules").join(name);
    let dir = workspace().join("target/kdf-test-editor").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if [".c", ".rs"].iter().any(|ext| file.ends_with(ext)) || ["Kbuild", "Makefile"].contains(&&*file) {
            std::fs::copy(entry.path(), dir.join(&file)).unwrap();
        }
    }
    let out = Command::new("make")
        .arg("-s")
        .arg(format!("KDIR={}", test_kernel_build().display()))
        .arg(target)
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make {target} in modules/{name} failed:\n{stderr}");
    dir
}

fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// `path` as rust-analyzer reads a path in rust-project.json: relative to the
/// file's directory.
fn resolve(project_dir: &Path, path: &serde_json::Value) -> PathBuf {
    let path = Path::new(path.as_str().expect("a path is a string"));
    project_dir.join(path).canonicalize().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn make_compile_commands_json_has_kbuilds_command_for_helloworld_c() {
    let dir = make_in_copy("helloworld", "compile_commands.json");
    let db = read_json(&dir.join("compile_commands.json"));
    let entries = db.as_array().expect("compile_commands.json is an array");
    let file = dir.join("helloworld.c");
    let entry = entries
        .iter()
        .find(|e| e["file"].as_str().map(Path::new) == Some(&file))
        .unwrap_or_else(|| panic!("no entry for {}: {db:#}", file.display()));
    let command = entry["command"].as_str().expect("a command");
    // kbuild's own command line for this module against the test kernel.
    assert!(command.contains("-DMODULE"), "{command}");
    assert!(command.contains("-DKBUILD_MODNAME="), "{command}");
    let generated = format!("-I{}/include", test_kernel_build().display());
    assert!(command.contains(&generated), "the kernel's build dir is on the include path: {command}");
}

#[test]
fn make_rust_analyzer_lists_the_module_crate_with_a_kernel_dependency() {
    let dir = make_in_copy("rust", "rust-analyzer");
    let project = read_json(&dir.join("rust-project.json"));
    let crates = project["crates"].as_array().expect("rust-project.json has crates");
    let module = crates.iter().find(|c| c["display_name"] == "rust_hello").unwrap_or_else(|| {
        panic!(
            "no rust_hello crate among {:?}",
            crates.iter().map(|c| &c["display_name"]).collect::<Vec<_>>()
        )
    });
    assert_eq!(resolve(&dir, &module["root_module"]), dir.join("rust_hello.rs").canonicalize().unwrap());
    let kernel = module["deps"]
        .as_array()
        .expect("deps")
        .iter()
        .find(|d| d["name"] == "kernel")
        .unwrap_or_else(|| panic!("rust_hello has no kernel dependency: {module:#}"));
    let index = kernel["crate"].as_u64().expect("a crate index") as usize;
    let kernel_root = resolve(&dir, &crates[index]["root_module"]);
    assert!(kernel_root.ends_with("rust/kernel/lib.rs"), "{}", kernel_root.display());
}
