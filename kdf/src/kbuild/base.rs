//! `--base`: what a config starts from, before kdf's fragments and the
//! user's go on top. `allnoconfig` (kdf's default: nothing but what is asked
//! for), the kernel's `defconfig` or `tinyconfig`, the running or an installed
//! distro kernel's config, that config trimmed to the loaded modules as the
//! kernel's `localmodconfig` does, the build directory's own `.config`
//! (`tree`), or any config file. A base is best effort: its options that do
//! not exist in this kernel or cannot land are reported, not fatal.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result};

use super::arch::Toolchain;
use super::fragment::{Entry, Fragment, Origin, Value};
use super::layers::{Kind, Layer};
use super::make;
use super::tree::Tree;
use crate::compress::{self, Format};
use crate::errors::hinted;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    AllNo,
    Def,
    Tiny,
    /// The running kernel's config, or that of installed kernel VERSION.
    Distro(Option<String>),
    /// The distro config with the modules that are not loaded turned off.
    LocalMod(Option<String>),
    /// The build directory's existing `.config`.
    Tree,
    File(PathBuf),
}

/// The words `--base` takes; anything else is a file.
pub const WORDS: &str =
    "allnoconfig, defconfig, tinyconfig, distro[:VERSION], localmodconfig[:VERSION], tree";

impl FromStr for Base {
    type Err = String;

    fn from_str(s: &str) -> Result<Base, String> {
        let version = |v: &str| {
            if v.is_empty() || v.contains('/') {
                Err(format!(
                    "--base {s}: expected a kernel version after the colon (as in /boot/config-VERSION)"
                ))
            } else {
                Ok(Some(v.to_string()))
            }
        };
        Ok(match s {
            "" => return Err(format!("--base takes {WORDS}, or a config file")),
            "allnoconfig" => Base::AllNo,
            "defconfig" => Base::Def,
            "tinyconfig" => Base::Tiny,
            "distro" => Base::Distro(None),
            "localmodconfig" => Base::LocalMod(None),
            "tree" => Base::Tree,
            _ => match (s.strip_prefix("distro:"), s.strip_prefix("localmodconfig:")) {
                (Some(v), _) => Base::Distro(version(v)?),
                (_, Some(v)) => Base::LocalMod(version(v)?),
                _ => Base::File(s.into()),
            },
        })
    }
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::AllNo => f.write_str("allnoconfig"),
            Base::Def => f.write_str("defconfig"),
            Base::Tiny => f.write_str("tinyconfig"),
            Base::Distro(None) => f.write_str("distro"),
            Base::Distro(Some(v)) => write!(f, "distro:{v}"),
            Base::LocalMod(None) => f.write_str("localmodconfig"),
            Base::LocalMod(Some(v)) => write!(f, "localmodconfig:{v}"),
            Base::Tree => f.write_str("tree"),
            Base::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where a distro kernel's config is: installed kernel `release`'s, else the
/// running kernel's (`/boot/config-$(uname -r)`, then `/proc/config.gz`).
pub fn distro_candidates(release: Option<&str>, running: &str) -> Vec<PathBuf> {
    match release {
        Some(v) => vec![format!("/boot/config-{v}").into()],
        None => vec![format!("/boot/config-{running}").into(), "/proc/config.gz".into()],
    }
}

/// The versions of the installed kernels' configs among `/boot`'s file names.
pub fn installed_versions<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = names.filter_map(|n| n.strip_prefix("config-")).map(String::from).collect();
    out.sort();
    out
}

/// String options naming a file the build reads, and the value that needs
/// none (kbuild makes `certs/signing_key.pem` itself).
const FILE_OPTIONS: &[(&str, &str)] = &[
    ("CONFIG_SYSTEM_TRUSTED_KEYS", ""),
    ("CONFIG_SYSTEM_REVOCATION_KEYS", ""),
    ("CONFIG_MODULE_SIG_KEY", "certs/signing_key.pem"),
];

/// What a base needs changed to build from this tree: a distro config names
/// its own signing certificates (`debian/certs/...`), which the tree lacks,
/// and the build stops at them. Returns the fixes and one notice each.
pub fn fixups(base: &Fragment, exists: &dyn Fn(&str) -> bool) -> (Fragment, Vec<String>) {
    let (mut fixes, mut notices) = (Fragment::default(), Vec::new());
    for (name, replacement) in FILE_OPTIONS {
        let Value::Str(file) = base.value(name) else { continue };
        if file.is_empty() || file == replacement || file.starts_with("pkcs11:") || exists(file) {
            continue;
        }
        let origin = Origin { source: "kdf (the base names a file this tree lacks)".into(), line: 0 };
        fixes.set(Entry { name: name.to_string(), value: Value::Str(replacement.to_string()), origin });
        notices.push(format!(
            "the base's {name}=\"{file}\" names a file this source tree lacks (a distro's own \
             certificates): set to \"{replacement}\" so the build does not stop there"
        ));
    }
    (fixes, notices)
}

/// A config file's text, gzip'd or not (`/proc/config.gz`).
fn read_config(path: &Path) -> Result<String> {
    let data = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    let data = match Format::from_magic(&data) {
        Some(Format::Gzip) => compress::decompress(Format::Gzip, &data)
            .with_context(|| format!("failed to decompress {}", path.display()))?,
        _ => data,
    };
    String::from_utf8(data).with_context(|| format!("{} is not a text file", path.display()))
}

fn parse(text: &str, source: &str) -> Result<Fragment> {
    Fragment::parse(text, source).with_context(|| format!("failed to parse {source} as a kernel config"))
}

/// The distro config `--base distro[:VERSION]` names.
fn distro(release: Option<&str>) -> Result<PathBuf> {
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let candidates = distro_candidates(release, running.trim());
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let names: Vec<String> = std::fs::read_dir("/boot")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let installed = installed_versions(names.iter().map(String::as_str));
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(hinted(
        format!("no distro kernel config: none of {} exists", tried.join(", ")),
        match installed.first() {
            Some(_) => format!("name an installed kernel: --base distro:{}", installed.join(" or distro:")),
            None => "pass the config file itself: --base FILE".to_string(),
        },
    ))
}

/// `LSMOD=FILE` for `make localmodconfig`: the given module list, else the
/// running kernel's (the kernel's script runs `lsmod`), which must have one.
fn lsmod_var(lsmod: Option<&Path>) -> Result<Vec<String>> {
    if let Some(file) = lsmod {
        let file =
            std::path::absolute(file).with_context(|| format!("failed to resolve {}", file.display()))?;
        if !file.is_file() {
            return Err(hinted(format!("--lsmod {}: no such file", file.display()), "pass `lsmod` output"));
        }
        return Ok(vec![format!("LSMOD={}", file.display())]);
    }
    if std::env::var_os("LSMOD").is_none() && !Path::new("/proc/modules").exists() {
        return Err(hinted(
            "localmodconfig keeps the modules loaded here, and the running kernel has no loadable \
             modules (/proc/modules does not exist)",
            "save the module list where the driver runs (lsmod > mods.txt) and pass it: --lsmod mods.txt",
        ));
    }
    Ok(Vec::new())
}

/// The copy of the base, as read, kept in the build directory: the
/// `.config` a base was generated in (or `--base tree`'s own) is rewritten by
/// the configuration, and the report's line numbers point here.
pub const COPY: &str = "kdf-base.config";

/// Produces the base as a layer (none for allnoconfig, which kdf runs with
/// the request as `KCONFIG_ALLCONFIG`). May write the build directory's
/// `.config`: `defconfig`, `tinyconfig` and `localmodconfig` are the
/// kernel's own targets.
pub fn prepare(
    base: &Base,
    tree: &Tree,
    toolchain: &Toolchain,
    lsmod: Option<&Path>,
) -> Result<Option<Layer>> {
    let config = tree.build.join(".config");
    let copy = tree.build.join(COPY);
    let target = |t: &str, vars: Vec<String>| make::step(&tree.src, &tree.build, toolchain, vars, t);
    // (the layer's name, the text, the file its origins name)
    let (name, text, file) = match base {
        Base::AllNo => return Ok(None),
        Base::Def | Base::Tiny => {
            target(&base.to_string(), Vec::new())?;
            (base.to_string(), read_config(&config)?, copy.clone())
        }
        Base::Distro(release) => {
            let path = distro(release.as_deref())?;
            (path.display().to_string(), read_config(&path)?, path)
        }
        Base::LocalMod(release) => {
            let vars = lsmod_var(lsmod)?;
            let path = distro(release.as_deref())?;
            std::fs::write(&config, read_config(&path)?)
                .with_context(|| format!("failed to write {}", config.display()))?;
            // Brought up to this tree's symbols first, so that the kernel's
            // script (which ends in `oldconfig`) has nothing to ask.
            target("olddefconfig", Vec::new())?;
            target("localmodconfig", vars)?;
            (format!("localmodconfig of {}", path.display()), read_config(&config)?, copy.clone())
        }
        Base::Tree => {
            if !config.is_file() {
                return Err(hinted(
                    format!("--base tree: {} has no .config", tree.build.display()),
                    "copy a config there first (or make O=... menuconfig), or pass it: --base FILE",
                ));
            }
            (format!("{} (kept as {COPY})", config.display()), read_config(&config)?, copy.clone())
        }
        Base::File(path) => {
            if !path.is_file() {
                return Err(hinted(
                    format!("--base {}: no such file", path.display()),
                    format!("pass a config file, or one of {WORDS}"),
                ));
            }
            (path.display().to_string(), read_config(path)?, path.clone())
        }
    };
    std::fs::write(&copy, &text).with_context(|| format!("failed to write {}", copy.display()))?;
    let fragment = parse(&text, &file.display().to_string())?;
    Ok(Some(Layer { kind: Kind::Base, name: format!("the base {name}"), fragment }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_words_versions_and_files_parse() {
        let parse = |s: &str| s.parse::<Base>();
        assert_eq!(parse("allnoconfig"), Ok(Base::AllNo));
        assert_eq!(parse("defconfig"), Ok(Base::Def));
        assert_eq!(parse("tinyconfig"), Ok(Base::Tiny));
        assert_eq!(parse("distro"), Ok(Base::Distro(None)));
        assert_eq!(parse("distro:6.1.0-27-amd64"), Ok(Base::Distro(Some("6.1.0-27-amd64".into()))));
        assert_eq!(parse("localmodconfig"), Ok(Base::LocalMod(None)));
        assert_eq!(parse("localmodconfig:6.1.0-27-amd64"), Ok(Base::LocalMod(Some("6.1.0-27-amd64".into()))));
        assert_eq!(parse("tree"), Ok(Base::Tree));
        assert_eq!(parse("ci/kernel.config"), Ok(Base::File("ci/kernel.config".into())));
        assert_eq!(parse("./defconfig"), Ok(Base::File("./defconfig".into())));
        assert!(parse("distro:").unwrap_err().contains("expected a kernel version"));
        assert!(parse("distro:../x").is_err());
        assert!(parse("").is_err());
        for word in ["allnoconfig", "distro:6.1", "localmodconfig", "tree", "a/b.config"] {
            assert_eq!(parse(word).unwrap().to_string(), word);
        }
    }

    #[test]
    fn the_distro_config_is_the_running_kernels_or_a_named_ones() {
        assert_eq!(
            distro_candidates(None, "6.1.0-27-amd64"),
            [PathBuf::from("/boot/config-6.1.0-27-amd64"), "/proc/config.gz".into()]
        );
        assert_eq!(distro_candidates(Some("6.12"), "6.1"), [PathBuf::from("/boot/config-6.12")]);
        let names = ["vmlinuz-6.1", "config-6.1", "System.map-6.1", "config-5.10"];
        assert_eq!(installed_versions(names.into_iter()), ["5.10", "6.1"]);
    }

    #[test]
    fn certificates_the_tree_lacks_are_cleared_with_a_notice() {
        let base = Fragment::parse(
            "CONFIG_SYSTEM_TRUSTED_KEYS=\"debian/certs/debian-uefi-certs.pem\"\n\
             CONFIG_SYSTEM_REVOCATION_KEYS=\"\"\n\
             CONFIG_MODULE_SIG_KEY=\"certs/signing_key.pem\"\n",
            "config-6.1",
        )
        .unwrap();
        let (fixes, notices) = fixups(&base, &|_| false);
        assert_eq!(fixes.entries().len(), 1);
        assert_eq!(fixes.value("CONFIG_SYSTEM_TRUSTED_KEYS"), &Value::Str(String::new()));
        assert!(notices[0].contains("debian/certs/debian-uefi-certs.pem\" names a file"), "{notices:?}");

        let own_key = Fragment::parse("CONFIG_MODULE_SIG_KEY=\"/etc/keys/mine.pem\"\n", "c").unwrap();
        assert_eq!(fixups(&own_key, &|p| p == "/etc/keys/mine.pem").0.entries().len(), 0);
        let (fixes, _) = fixups(&own_key, &|_| false);
        assert_eq!(fixes.value("CONFIG_MODULE_SIG_KEY"), &Value::Str("certs/signing_key.pem".into()));
        let hsm = Fragment::parse("CONFIG_MODULE_SIG_KEY=\"pkcs11:token=x\"\n", "c").unwrap();
        assert!(fixups(&hsm, &|_| false).0.entries().is_empty());
    }
}
