//! The user's layers on top of kdf's fragments, read from the command line
//! and the source tree: `--fragment` files (a path, or a name from the
//! source's `kernel/configs/`), the `config` files of `--kselftest` targets
//! (what `make kselftest-merge` merges), and `--set` values.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::fragment::{Entry, Fragment};
use super::layers::{Kind, Layer};
use crate::arch::Arch;
use crate::errors::hinted;

/// Where `--fragment NAME` is looked for when it is not a path: the kernel's
/// own fragments (`kvm_guest.config`, `debug.config`, ...).
pub fn fragment_candidates(src: &Path, given: &Path, arch: Arch) -> Vec<PathBuf> {
    let mut out = vec![given.to_path_buf()];
    if given.components().count() == 1 {
        let mut names = vec![given.to_path_buf()];
        if given.extension().is_none() {
            names.push(given.with_extension("config"));
        }
        let arch_dir = format!("arch/{}/configs", arch.kbuild());
        for dir in ["kernel/configs", arch_dir.as_str()] {
            out.extend(names.iter().map(|n| src.join(dir).join(n)));
        }
    }
    out
}

/// The config files of kselftest `target` (`net`, `drivers/net`): its
/// `config`, then the architecture's (`config.x86_64`, `config.aarch64`)
/// where there is one.
pub fn kselftest_configs(src: &Path, target: &str, arch: Arch) -> Vec<PathBuf> {
    let dir = src.join("tools/testing/selftests").join(target.trim_end_matches('/'));
    vec![dir.join("config"), dir.join(format!("config.{}", arch.gnu_cpu()))]
}

fn parse(text: &str, path: &Path) -> Result<Fragment> {
    Fragment::parse(text, &path.display().to_string())
        .map_err(|e| hinted(e.to_string(), "fix the fragment's line, or leave the fragment out"))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
}

/// `--fragment FILE` as a layer.
pub fn fragment(src: &Path, given: &Path, arch: Arch) -> Result<Layer> {
    let candidates = fragment_candidates(src, given, arch);
    let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
        hinted(
            format!("--fragment {}: no such file", given.display()),
            "pass a path, or the name of one of the source's kernel/configs/*.config files",
        )
    })?;
    let fragment = parse(&read(found)?, found)?;
    Ok(Layer { kind: Kind::Fragment, name: format!("--fragment {}", given.display()), fragment })
}

/// `--kselftest TARGET` as a layer.
pub fn kselftest(src: &Path, target: &str, arch: Arch) -> Result<Layer> {
    let files = kselftest_configs(src, target, arch);
    if target.is_empty() || target.split('/').any(|c| c == ".." || c == ".") || !files[0].is_file() {
        return Err(hinted(
            format!("--kselftest {target}: {} does not exist", files[0].display()),
            format!(
                "name a directory of {} that has a config file (ls {}/*/config)",
                src.join("tools/testing/selftests").display(),
                src.join("tools/testing/selftests").display()
            ),
        ));
    }
    let mut fragment = Fragment::default();
    for file in files.iter().filter(|f| f.is_file()) {
        fragment.merge(parse(&read(file)?, file)?);
    }
    Ok(Layer { kind: Kind::Kselftest, name: format!("--kselftest {target}"), fragment })
}

/// The `--set` values as a layer, if any.
pub fn sets(sets: &[Entry]) -> Option<Layer> {
    let mut fragment = Fragment::default();
    for entry in sets {
        fragment.set(entry.clone());
    }
    (!sets.is_empty()).then(|| Layer { kind: Kind::Set, name: "--set".into(), fragment })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kbuild::fragment::{parse_set, Value};

    #[test]
    fn a_bare_fragment_name_is_looked_up_in_the_kernels_configs() {
        let c = fragment_candidates(Path::new("/src"), Path::new("kvm_guest"), Arch::X86_64);
        assert_eq!(
            c,
            [
                PathBuf::from("kvm_guest"),
                "/src/kernel/configs/kvm_guest".into(),
                "/src/kernel/configs/kvm_guest.config".into(),
                "/src/arch/x86/configs/kvm_guest".into(),
                "/src/arch/x86/configs/kvm_guest.config".into(),
            ]
        );
        assert_eq!(
            fragment_candidates(Path::new("/src"), Path::new("./my.config"), Arch::X86_64),
            [PathBuf::from("./my.config")]
        );
        let arm = fragment_candidates(Path::new("/src"), Path::new("virt.config"), Arch::Arm64);
        assert_eq!(arm.last().unwrap(), Path::new("/src/arch/arm64/configs/virt.config"));
    }

    #[test]
    fn a_missing_fragment_is_named() {
        let err = fragment(Path::new("/nonexistent"), Path::new("nope.config"), Arch::X86_64).unwrap_err();
        assert_eq!(format!("{err:#}"), "--fragment nope.config: no such file");
    }

    #[test]
    fn a_broken_fragment_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.config");
        std::fs::write(&path, "CONFIG_A=y\nPVH=y\n").unwrap();
        let err = fragment(dir.path(), &path, Arch::X86_64).unwrap_err();
        assert!(format!("{err:#}").starts_with(&format!("{}:2: ", path.display())), "{err:#}");
    }

    #[test]
    fn a_kselftest_target_merges_its_config_then_the_x86_64_one() {
        let src = tempfile::tempdir().unwrap();
        let dir = src.path().join("tools/testing/selftests/net");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), "CONFIG_VETH=y\nCONFIG_NET_NS=y\n").unwrap();
        std::fs::write(dir.join("config.x86_64"), "CONFIG_VETH=m\n").unwrap();
        let layer = kselftest(src.path(), "net/", Arch::X86_64).unwrap();
        assert_eq!((layer.kind, layer.name.as_str()), (Kind::Kselftest, "--kselftest net/"));
        assert_eq!(layer.fragment.value("CONFIG_VETH"), &Value::Module);
        assert!(layer.fragment.get("CONFIG_VETH").unwrap().origin.source.ends_with("net/config.x86_64"));
        assert_eq!(layer.fragment.value("CONFIG_NET_NS"), &Value::Yes);
        let err = kselftest(src.path(), "nope", Arch::X86_64).unwrap_err();
        assert!(format!("{err:#}").contains("nope/config does not exist"), "{err:#}");
        assert!(kselftest(src.path(), "../selftests/net", Arch::X86_64).is_err());
        // arm64 takes config.aarch64 instead.
        std::fs::write(dir.join("config.aarch64"), "CONFIG_NET_NS=m\n").unwrap();
        let arm = kselftest(src.path(), "net", Arch::Arm64).unwrap();
        assert_eq!(arm.fragment.value("CONFIG_VETH"), &Value::Yes);
        assert_eq!(arm.fragment.value("CONFIG_NET_NS"), &Value::Module);
    }

    #[test]
    fn sets_are_one_layer_or_none() {
        assert!(sets(&[]).is_none());
        let layer = sets(&[parse_set("A=y").unwrap(), parse_set("A=n").unwrap()]).unwrap();
        assert_eq!(layer.fragment.value("CONFIG_A"), &Value::No);
        assert_eq!(layer.kind, Kind::Set);
    }
}
