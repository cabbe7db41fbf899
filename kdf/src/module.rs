//! `--module` files on the host: the spec (`FILE.ko [PARAM=VALUE ...]`), the
//! file read and decompressed (`.ko.xz`, `.ko.zst`, `.ko.gz`), its `.modinfo`
//! (name, vermagic, dependencies), the check against the kernel's release,
//! and the directory the guest loads them from.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::arch::Arch;
use crate::cache;
use crate::compress::{self, Format};
use crate::elf::Elf;
use crate::errors::hinted_status;
use crate::status;

/// Where the guest finds the `--module` files (a read-only share on its own
/// tmpfs `/run`).
pub const GUEST_DIR: &str = "/run/kdf/modules";

/// One `--module` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub file: PathBuf,
    /// `PARAM=VALUE ...`, passed on as `insmod` takes them.
    pub params: String,
}

/// Parses `FILE.ko [PARAM=VALUE ...]`: the file, then its parameters.
pub fn parse_spec(s: &str) -> Result<Spec, String> {
    let s = s.trim_start();
    let (file, params) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
    if file.is_empty() {
        return Err("expected FILE.ko [PARAM=VALUE ...]".into());
    }
    let params = params.trim().to_string();
    if let Some(bad) = params.split_whitespace().find(|p| !p.contains('=') && !is_flag(p)) {
        return Err(format!("{bad:?} is not PARAM=VALUE"));
    }
    Ok(Spec { file: file.into(), params })
}

/// A boolean parameter may be given bare (`debug` for `debug=1`).
fn is_flag(p: &str) -> bool {
    p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// What a module's `.modinfo` says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modinfo {
    pub name: Option<String>,
    pub vermagic: Option<String>,
    pub depends: Vec<String>,
}

/// Reads the `.modinfo` section (NUL-separated `key=value` strings); empty for
/// a file that is not a readable ELF (the guest's load then says what is wrong).
pub fn modinfo(ko: &[u8]) -> Modinfo {
    let Ok(Some(section)) = Elf::parse(ko).and_then(|e| e.section(".modinfo")) else {
        return Modinfo::default();
    };
    let mut info = Modinfo::default();
    for kv in section.split(|&b| b == 0) {
        let kv = String::from_utf8_lossy(kv);
        match kv.split_once('=') {
            Some(("name", v)) => info.name = Some(v.to_string()),
            Some(("vermagic", v)) => info.vermagic = Some(v.trim().to_string()),
            Some(("depends", v)) => {
                info.depends = v.split(',').filter(|d| !d.is_empty()).map(str::to_string).collect()
            }
            _ => {}
        }
    }
    info
}

/// The kernel release a vermagic string names (its first word).
pub fn vermagic_release(vermagic: &str) -> &str {
    vermagic.split_whitespace().next().unwrap_or_default()
}

/// A `--module` read and ready to stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub params: String,
    pub bytes: Vec<u8>,
    pub info: Modinfo,
    /// The file as given, for messages.
    pub source: PathBuf,
}

/// The module's name: `.modinfo`'s, else the file's (`-` read as `_`, as the
/// kernel does).
fn name_of(file: &Path, info: &Modinfo) -> String {
    info.name.clone().unwrap_or_else(|| {
        let base = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let base = compress::Format::from_suffix(&base).map_or(base.as_str(), |(_, stem)| stem).to_string();
        base.strip_suffix(".ko").unwrap_or(&base).replace('-', "_")
    })
}

/// Reads a `--module` file, decompressing it by its suffix.
pub fn read(spec: &Spec) -> Result<Module> {
    let raw = std::fs::read(&spec.file).map_err(|e| {
        hinted_status(
            format!("cannot read --module {}: {e}", spec.file.display()),
            "pass the path of a built module (FILE.ko)",
            status::MODULE,
        )
    })?;
    let file_name = spec.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = match Format::from_suffix(&file_name) {
        Some((format, _)) => compress::decompress(format, &raw)
            .with_context(|| format!("failed to decompress --module {}", spec.file.display()))?,
        None => raw,
    };
    let info = modinfo(&bytes);
    Ok(Module {
        name: name_of(&spec.file, &info),
        params: spec.params.clone(),
        bytes,
        info,
        source: spec.file.clone(),
    })
}

/// Refuses, before boot, a module built for another architecture than the
/// kernel's (its ELF machine).
pub fn check_arch(module: &Module, arch: Arch) -> Result<()> {
    let Ok(elf) = Elf::parse(&module.bytes) else { return Ok(()) };
    if elf.machine == arch.elf_machine() {
        return Ok(());
    }
    let built_for =
        crate::elf::machine_name(elf.machine).map_or(format!("machine {}", elf.machine), String::from);
    Err(hinted_status(
        format!("{} is a module for {built_for}, the kernel is {arch}", module.source.display()),
        format!(
            "build it against an {arch} kernel build (make -C <build dir> M=$PWD{})",
            if arch == Arch::Arm64 { " ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-" } else { "" }
        ),
        status::MODULE,
    ))
}

/// Refuses, before boot, a module built for another kernel release.
pub fn check_release(module: &Module, kernel_release: Option<&str>) -> Result<()> {
    let (Some(vermagic), Some(kernel)) = (&module.info.vermagic, kernel_release) else { return Ok(()) };
    let built_for = vermagic_release(vermagic);
    if built_for == kernel {
        return Ok(());
    }
    Err(hinted_status(
        format!("{} was built for {built_for}, the kernel is {kernel}", module.source.display()),
        "rebuild the module against this kernel's build directory or headers (make -C <build dir> M=$PWD)",
        status::MODULE,
    ))
}

/// The kernel's own modules `module` needs: its `depends=` less what one of
/// the `--module` files (`all`) provides. kdf-init loads them from the
/// kernel's modules directory just before `module`.
pub fn kernel_deps(module: &Module, all: &[Module]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in &module.info.depends {
        if !all.iter().any(|m| &m.name == d) && !out.contains(d) {
            out.push(d.clone());
        }
    }
    out
}

/// Writes the (decompressed) modules into a cache directory named by their
/// contents, which the guest sees at [`GUEST_DIR`]; the same modules give
/// the same directory (so `--dry-run` names it too).
pub fn stage(modules: &[Module]) -> Result<PathBuf> {
    let parts = modules.iter().flat_map(|m| [m.name.as_bytes(), &m.bytes[..]]);
    let dir = cache::subdir("run-modules")?.join(cache::digest(parts));
    for m in modules {
        let path = dir.join(format!("{}.ko", m.name));
        if !path.is_file() {
            std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
            cache::write_atomic(&path, &m.bytes)?;
        }
    }
    Ok(dir)
}

/// The `--module` files, read, checked against the kernel's release and
/// staged: the directory the guest sees at [`GUEST_DIR`], and the modules.
pub fn prepare(specs: &[Spec], release: Option<&str>, arch: Arch) -> Result<Option<(PathBuf, Vec<Module>)>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let modules = specs.iter().map(read).collect::<Result<Vec<_>>>()?;
    for m in &modules {
        check_arch(m, arch)?;
        check_release(m, release)?;
    }
    Ok(Some((stage(&modules)?, modules)))
}

/// The guest's view of a staged module.
pub fn guest_path(module: &Module) -> String {
    format!("{GUEST_DIR}/{}.ko", module.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_for_another_architecture_is_refused() {
        use crate::elf::{tests::build, Class, Endian, EM_AARCH64, EM_X86_64};
        let module = |machine| Module {
            name: "m".into(),
            params: String::new(),
            bytes: build(Class::Elf64, Endian::Little, machine, &[(1, b"code")], &[]),
            info: Modinfo::default(),
            source: "m.ko".into(),
        };
        assert!(check_arch(&module(EM_AARCH64), Arch::Arm64).is_ok());
        assert!(check_arch(&module(EM_X86_64), Arch::X86_64).is_ok());
        let err = check_arch(&module(EM_X86_64), Arch::Arm64).unwrap_err();
        assert_eq!(format!("{err:#}"), "m.ko is a module for x86_64, the kernel is arm64");
        let err = check_arch(&module(EM_AARCH64), Arch::X86_64).unwrap_err();
        assert_eq!(format!("{err:#}"), "m.ko is a module for aarch64, the kernel is x86_64");
    }

    #[test]
    fn a_spec_is_the_file_then_its_parameters() {
        assert_eq!(parse_spec("hello.ko").unwrap(), Spec { file: "hello.ko".into(), params: String::new() });
        let s = parse_spec("m/hello.ko  who=kdf count=3 debug").unwrap();
        assert_eq!((s.file.to_str().unwrap(), s.params.as_str()), ("m/hello.ko", "who=kdf count=3 debug"));
        assert!(parse_spec("").is_err());
        assert!(parse_spec("hello.ko who is").is_ok(), "bare flags are allowed");
        assert!(parse_spec("hello.ko 'x y'").is_err());
    }

    fn ko(modinfo: &[u8]) -> Vec<u8> {
        use crate::elf::{Class, Endian, EM_X86_64};
        crate::elf::tests::build(Class::Elf64, Endian::Little, EM_X86_64, &[], &[(".modinfo", modinfo)])
    }

    #[test]
    fn modinfo_gives_the_name_vermagic_and_dependencies() {
        let data = ko(b"license=GPL\0depends=fuse,virtio\0name=virtiofs\0vermagic=7.3.4 SMP mod_unload \0");
        let info = modinfo(&data);
        assert_eq!(info.name.as_deref(), Some("virtiofs"));
        assert_eq!(info.vermagic.as_deref(), Some("7.3.4 SMP mod_unload"));
        assert_eq!(info.depends, ["fuse", "virtio"]);
        assert_eq!(vermagic_release("6.1.0-41-amd64 SMP preempt mod_unload modversions "), "6.1.0-41-amd64");
        assert_eq!(modinfo(b"not an elf"), Modinfo::default());
    }

    fn module(name: &str, depends: &[&str], vermagic: Option<&str>) -> Module {
        Module {
            name: name.into(),
            params: String::new(),
            bytes: name.as_bytes().to_vec(),
            info: Modinfo {
                name: Some(name.into()),
                vermagic: vermagic.map(String::from),
                depends: depends.iter().map(|s| s.to_string()).collect(),
            },
            source: format!("{name}.ko").into(),
        }
    }

    #[test]
    fn another_module_satisfies_a_dependency() {
        let mods = [module("a", &["b", "fuse"], None), module("b", &["fuse", "virtio"], None)];
        assert_eq!(kernel_deps(&mods[0], &mods), ["fuse"]);
        assert_eq!(kernel_deps(&mods[1], &mods), ["fuse", "virtio"]);
        let alone = module("udf", &["crc-itu-t", "cdrom", "cdrom"], None);
        assert_eq!(kernel_deps(&alone, std::slice::from_ref(&alone)), ["crc-itu-t", "cdrom"], "each once");
    }

    #[test]
    fn a_module_for_another_release_is_refused() {
        let m = module("hello", &[], Some("6.1.0-41-amd64 SMP mod_unload"));
        let err = check_release(&m, Some("7.3.4")).unwrap_err();
        assert_eq!(format!("{err}"), "hello.ko was built for 6.1.0-41-amd64, the kernel is 7.3.4");
        assert_eq!(crate::errors::status_of(&err), Some(status::MODULE));
        assert!(check_release(&m, Some("6.1.0-41-amd64")).is_ok());
        assert!(check_release(&m, None).is_ok(), "an unknown release is not refused");
    }

    #[test]
    fn the_name_falls_back_to_the_file_name() {
        let info = Modinfo::default();
        assert_eq!(name_of(Path::new("/x/my-mod.ko.xz"), &info), "my_mod");
        assert_eq!(name_of(Path::new("hello.ko"), &info), "hello");
    }
}
