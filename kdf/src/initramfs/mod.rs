//! kdf's initramfs: `kdf-init` as `/init`, plus the `modules.dep` closure of
//! the modules a kdf VM may need that the kernel has as `=m`, uncompressed
//! (the fastest to unpack under TCG) and cached by its inputs.

pub mod cpio;
pub mod init_binary;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kdf_proto::modules_dep::{module_name, ModulesDep};

use crate::cache;
use crate::compress::{self, Format};
use crate::elf::Elf;
use crate::kernel::Kernel;
use crate::vm::requirements;
use cpio::Entry;

/// The protocol version of the kdf that built the archive: `--initramfs`
/// refuses an archive from a kdf that speaks another one, before booting it.
pub const PROTOCOL_FILE: &str = "kdf/protocol";

/// Why an archive given with `--initramfs` cannot be booted by this kdf.
pub fn check_archive(archive: &[u8]) -> Result<(), String> {
    if !archive.starts_with(b"070701") && !archive.starts_with(b"070702") {
        return Err("it is not an uncompressed newc cpio archive".into());
    }
    let this = kdf_proto::PROTOCOL_VERSION;
    match cpio::find(archive, PROTOCOL_FILE).map(|v| String::from_utf8_lossy(v).trim().to_string()) {
        Some(v) if v == this.to_string() => Ok(()),
        Some(v) => Err(format!("it was built by a kdf that speaks protocol {v}; this kdf speaks {this}")),
        None => Err(format!("it was built by an older kdf (before protocol {this})")),
    }
}

/// A module as stored in the initramfs, relative to `lib/modules/<release>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub data: Vec<u8>,
}

/// Everything that goes into the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    pub init: Vec<u8>,
    pub release: Option<String>,
    pub modules: Vec<Module>,
    pub modules_dep: String,
    pub preload: Vec<String>,
}

fn dir(path: &str) -> Entry {
    Entry::Dir { path: path.to_string(), mode: 0o755 }
}

fn file(path: String, mode: u32, data: Vec<u8>) -> Entry {
    Entry::File { path, mode, data }
}

/// The archive's members (a pure function of the contents).
pub fn entries(c: &Contents) -> Vec<Entry> {
    let mut out = vec![
        dir("dev"),
        dir("proc"),
        dir("sys"),
        dir("newroot"),
        dir("kdf"),
        // The kernel opens it for init's stdin/stdout/stderr before /init runs.
        Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 },
        file("init".into(), 0o755, c.init.clone()),
        file(PROTOCOL_FILE.into(), 0o644, format!("{}\n", kdf_proto::PROTOCOL_VERSION).into_bytes()),
    ];
    if !c.preload.is_empty() {
        out.push(file(kdf_proto::PRELOAD_PATH.into(), 0o644, c.preload.join("\n").into_bytes()));
    }
    if let Some(release) = c.release.as_ref().filter(|_| !c.modules.is_empty()) {
        let base = format!("lib/modules/{release}");
        out.push(file(format!("{base}/modules.dep"), 0o644, c.modules_dep.clone().into_bytes()));
        for m in &c.modules {
            let path = format!("{base}/{}", m.path);
            let mut parent = Path::new(&path).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                out.push(dir(&p.to_string_lossy()));
                parent = p.parent();
            }
            out.push(file(path, 0o644, m.data.clone()));
        }
    }
    out
}

/// `foo.ko.xz` -> `foo.ko`: modules are stored uncompressed so kdf-init needs
/// no decompressor and the kernel needs no CONFIG_MODULE_DECOMPRESS.
fn stored_path(path: &str) -> String {
    Format::from_suffix(path).map_or(path, |(_, stem)| stem).to_string()
}

fn decompress(path: &str, data: Vec<u8>) -> Result<Vec<u8>> {
    match Format::from_suffix(path) {
        Some((format, _)) => compress::decompress(format, &data),
        None => Ok(data),
    }
}

/// The `depends=` list in a module's `.modinfo` section: NUL-separated
/// `key=value` strings. None for a file that is not a readable ELF: the
/// guest's insmod then says what is wrong with it.
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let Ok(Some(modinfo)) = Elf::parse(ko).and_then(|e| e.section(".modinfo")) else { return Vec::new() };
    let Some(list) = modinfo.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(b"depends=")) else {
        return Vec::new();
    };
    String::from_utf8_lossy(list).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The kernel's modules.dep and the paths (in it) that kdf includes, plus the
/// names of `extra` modules' dependencies.
fn selection(
    kernel: &Kernel,
    extra: &[(String, Vec<u8>)],
) -> Result<Option<(PathBuf, ModulesDep, Vec<String>)>> {
    let Some(dir) = &kernel.modules_dir else { return Ok(None) };
    let text = std::fs::read_to_string(dir.join("modules.dep"))
        .with_context(|| format!("failed to read {}", dir.join("modules.dep").display()))?;
    let dep = ModulesDep::parse(&text);
    let mut names: Vec<String> = requirements::initramfs_modules().map(String::from).collect();
    names.extend(extra.iter().flat_map(|(_, data)| modinfo_depends(data)));
    let (order, _built_in) = dep.load_order(&names);
    Ok(Some((dir.clone(), dep, order)))
}

/// Reads everything the initramfs for `kernel` holds.
pub fn gather(kernel: &Kernel, init: Vec<u8>, extra: &[PathBuf]) -> Result<Contents> {
    let extra = read_extra(extra)?;
    let mut contents = Contents { init, release: kernel.release.clone(), ..Default::default() };
    // A kernel without a modules directory (everything built in, or a Nix
    // build sandbox) still gets the extra modules, under `extra/`.
    let (dir, mut dep, order) = selection(kernel, &extra)?.unwrap_or_default();
    if !extra.is_empty() && contents.release.is_none() {
        bail!("cannot place --module files: the kernel's release is unknown (no version in its image)");
    }
    for path in &order {
        let data = std::fs::read(dir.join(path))
            .with_context(|| format!("failed to read module {}", dir.join(path).display()))?;
        let data = decompress(path, data).with_context(|| format!("failed to decompress module {path}"))?;
        contents.modules.push(Module { path: stored_path(path), data });
    }
    let mut keep = order.clone();
    for (file, data) in &extra {
        let deps = dep.load_order(&modinfo_depends(data)).0;
        let path = format!("extra/{file}");
        dep.entries.push(kdf_proto::modules_dep::Entry { path: path.clone(), deps });
        keep.push(path.clone());
        contents.modules.push(Module { path, data: data.clone() });
    }
    for e in &mut dep.entries {
        e.path = stored_path(&e.path);
        e.deps.iter_mut().for_each(|d| *d = stored_path(d));
    }
    let keep: Vec<String> = keep.iter().map(|p| stored_path(p)).collect();
    contents.modules_dep = dep.render_subset(&keep);
    contents.preload = extra.iter().map(|(f, _)| module_name(f)).collect();
    Ok(contents)
}

fn read_extra(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>> {
    paths
        .iter()
        .map(|p| {
            let data = std::fs::read(p).with_context(|| format!("failed to read module {}", p.display()))?;
            let file = p.file_name().context("module path has no file name")?.to_string_lossy();
            let data =
                decompress(&file, data).with_context(|| format!("failed to decompress {}", p.display()))?;
            Ok((stored_path(&file), data))
        })
        .collect()
}

/// The archive bytes for `kernel`.
pub fn build(kernel: &Kernel, init: &Path, extra: &[PathBuf]) -> Result<Vec<u8>> {
    let init = init_binary::read(init, kernel.arch)?;
    Ok(cpio::write(&entries(&gather(kernel, init, extra)?)))
}

/// The cached archive for `kernel` (built first if needed), keyed by the
/// kdf-init bytes and each included module's [`cache::fingerprint`].
pub fn cached(kernel: &Kernel, init: &Path) -> Result<PathBuf> {
    let init_bytes = init_binary::read(init, kernel.arch)?;
    let mut parts: Vec<Vec<u8>> =
        vec![cache::fingerprint(init)?.into_bytes(), kernel.release.clone().unwrap_or_default().into_bytes()];
    if let Some((dir, _, order)) = selection(kernel, &[])? {
        for p in &order {
            parts.push(cache::fingerprint(&dir.join(p))?.into_bytes());
        }
    }
    let path = cache::subdir("initramfs")?.join(format!("{}.cpio", cache::digest(&parts)));
    if !path.exists() {
        let bytes = cpio::write(&entries(&gather(kernel, init_bytes, &[])?));
        cache::write_atomic(&path, &bytes)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_module_paths_are_stored_plain() {
        assert_eq!(stored_path("kernel/fs/fuse/fuse.ko.xz"), "kernel/fs/fuse/fuse.ko");
        assert_eq!(stored_path("kernel/fs/fuse/fuse.ko.zst"), "kernel/fs/fuse/fuse.ko");
        assert_eq!(stored_path("kernel/fs/fuse/fuse.ko"), "kernel/fs/fuse/fuse.ko");
    }

    fn module(modinfo: &[u8]) -> Vec<u8> {
        use crate::elf::{tests, Class, Endian, EM_X86_64};
        tests::build(
            Class::Elf64,
            Endian::Little,
            EM_X86_64,
            &[],
            &[(".text", b"code"), (".modinfo", modinfo)],
        )
    }

    #[test]
    fn modinfo_depends_lists_dependencies() {
        let ko = module(b"license=GPL\0depends=virtio,virtio_ring\0name=x\0");
        assert_eq!(modinfo_depends(&ko), ["virtio", "virtio_ring"]);
        assert!(modinfo_depends(&module(b"depends=\0")).is_empty());
        assert!(modinfo_depends(&module(b"license=GPL\0")).is_empty());
        assert!(modinfo_depends(b"nothing").is_empty());
    }

    /// Only `.modinfo` counts: the same text elsewhere (a string in `.rodata`
    /// that a byte search would find) is not a dependency.
    #[test]
    fn depends_text_outside_modinfo_is_ignored() {
        use crate::elf::{tests, Class, Endian, EM_X86_64};
        let ko = tests::build(
            Class::Elf64,
            Endian::Little,
            EM_X86_64,
            &[],
            &[(".rodata", b"\0depends=fake\0"), (".modinfo", b"depends=real\0")],
        );
        assert_eq!(modinfo_depends(&ko), ["real"]);
        assert!(modinfo_depends(b"\x7fELF\0depends=fake\0").is_empty());
    }

    #[test]
    fn entries_have_init_console_modules_and_parents() {
        let c = Contents {
            init: b"init".to_vec(),
            release: Some("6.1.0".into()),
            modules: vec![Module { path: "kernel/fs/fuse/fuse.ko".into(), data: b"ko".to_vec() }],
            modules_dep: "kernel/fs/fuse/fuse.ko:\n".into(),
            preload: vec!["virtio_pci".into()],
        };
        let e = entries(&c);
        let paths: Vec<&str> = e.iter().map(|e| e.path()).collect();
        for want in [
            "init",
            "dev/console",
            "kdf/preload",
            "lib/modules/6.1.0/modules.dep",
            "lib/modules/6.1.0/kernel/fs",
            "lib",
            "lib/modules/6.1.0/kernel/fs/fuse/fuse.ko",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }

    #[test]
    fn extra_modules_are_kept_for_a_kernel_without_a_modules_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ko = dir.path().join("hello.ko");
        std::fs::write(&ko, b"\x7fELF\0depends=\0").unwrap();
        let kernel = Kernel {
            image: "bzImage".into(),
            boot: "bzImage".into(),
            release: Some("7.3.4".into()),
            arch: crate::arch::Arch::X86_64,
            modules_dir: None,
            guest_modules: None,
            config: None,
        };
        let c = gather(&kernel, b"init".to_vec(), &[ko]).unwrap();
        assert_eq!(c.preload, ["hello"]);
        assert_eq!(c.modules.len(), 1);
        assert_eq!(c.modules[0].path, "extra/hello.ko");
        assert_eq!(c.modules_dep, "extra/hello.ko:\n");
    }

    #[test]
    fn compressed_modules_are_decompressed() {
        let xz = {
            use std::io::Write;
            let mut w = xz2::write::XzEncoder::new(Vec::new(), 1);
            w.write_all(b"module bytes").unwrap();
            w.finish().unwrap()
        };
        assert_eq!(decompress("a.ko.xz", xz).unwrap(), b"module bytes");
        assert_eq!(decompress("a.ko", b"raw".to_vec()).unwrap(), b"raw");
    }
}
