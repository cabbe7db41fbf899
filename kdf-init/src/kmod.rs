//! Loading kernel modules from the initramfs, dependencies first, using the
//! `modules.dep` kdf wrote next to them.

use std::fs::File;

use kdf_proto::modules_dep::{module_name, ModulesDep};
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::log::Fatal;

fn dir(release: &str) -> String {
    format!("/lib/modules/{release}")
}

/// Loads the modules kdf-init needs before it can reach the host (the virtio
/// transport and console, named by kdf on the kernel command line), then the
/// extra modules listed one per line in `/kdf/preload`.
pub fn load_preload(release: &str) -> Result<(), Fatal> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut names = kdf_proto::cmdline_preload(&cmdline);
    match std::fs::read_to_string(format!("/{}", kdf_proto::PRELOAD_PATH)) {
        Ok(list) => names.extend(list.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string)),
        // Only an initramfs with extra modules has the list.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Fatal(format!("cannot read /{}: {e}", kdf_proto::PRELOAD_PATH))),
    }
    load(release, &names)
}

/// Loads `names` and their dependencies. Names missing from `modules.dep` are
/// taken to be built in; a later step that needs them says what is missing.
pub fn load<S: AsRef<str>>(release: &str, names: &[S]) -> Result<(), Fatal> {
    if names.is_empty() {
        return Ok(());
    }
    let dir = dir(release);
    let dep = match std::fs::read_to_string(format!("{dir}/modules.dep")) {
        Ok(text) => ModulesDep::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Fatal(format!("cannot read {dir}/modules.dep: {e}"))),
    };
    let (order, _built_in) = dep.load_order(names);
    for path in order {
        insert(&format!("{dir}/{path}"))
            .map_err(|e| Fatal(format!("module {} ({path}) failed to load: {e}", module_name(&path))))?;
    }
    Ok(())
}

fn insert(path: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e.desc().to_string()),
    }
}
