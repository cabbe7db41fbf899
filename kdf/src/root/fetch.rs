//! Fetching Debian packages of another architecture, with their dependencies,
//! into a directory: `apt-get install --download-only` against the private
//! configuration of [`super::apt`] (nothing is installed), then `dpkg -x` of
//! each package file. The host's apt state is only read from (its sources).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::apt;
use crate::arch::Arch;
use crate::cache;
use crate::errors::hinted;
use crate::tools;

/// The private apt state for `arch`, in kdf's cache.
fn state_dir(arch: Arch) -> Result<PathBuf> {
    let dir = cache::subdir("apt")?.join(arch.debian());
    for sub in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    Ok(dir)
}

/// The host's repositories: `/etc/apt/sources.list.d/*.sources` and
/// `sources.list` (`*.list` too), else Debian's archive.
fn host_sources() -> Vec<apt::Source> {
    let etc = Path::new("/etc/apt");
    let mut out = apt::parse_one_line(&std::fs::read_to_string(etc.join("sources.list")).unwrap_or_default());
    let mut parts: Vec<PathBuf> = std::fs::read_dir(etc.join("sources.list.d"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    parts.sort();
    for p in parts {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        match p.extension().and_then(|e| e.to_str()) {
            Some("sources") => out.extend(apt::parse_deb822(&text)),
            Some("list") => out.extend(apt::parse_one_line(&text)),
            _ => {}
        }
    }
    if out.is_empty() {
        apt::fallback()
    } else {
        out
    }
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("failed to run {what}"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
    anyhow::bail!("{what} failed ({}):\n{}", out.status, tail.join("\n"))
}

/// Downloads `packages` for `arch` and everything they depend on, and unpacks
/// each into `into`. Returns the package files' names.
pub fn unpack(arch: Arch, packages: &[String], into: &Path) -> Result<Vec<String>> {
    let (Some(apt_get), Some(dpkg)) = (tools::which("apt-get", &[]), tools::which("dpkg", &[])) else {
        return Err(hinted(
            format!("kdf fetches {arch} packages with apt-get and dpkg, which this host lacks"),
            format!("pass --root DIR with an {arch} root filesystem (e.g. unpacked from your distribution's image)"),
        ));
    };
    let dir = state_dir(arch)?;
    cache::write_atomic(&dir.join("sources.list"), apt::sources_list(&host_sources(), arch).as_bytes())?;
    cache::write_atomic(&dir.join("status"), b"")?;
    let options = apt::options(&dir, arch, nix::unistd::getuid().is_root());
    let archives = dir.join("cache/archives");
    // Only this fetch's package files stay to be unpacked.
    for old in debs(&archives)? {
        let _ = std::fs::remove_file(archives.join(old));
    }
    let mut update = Command::new(&apt_get);
    update.args(&options).args(["-q", "update"]);
    run(update, "apt-get update (the private package lists)")?;
    let mut download = Command::new(&apt_get);
    download.args(&options).args(["-q", "-y", "--download-only", "install"]).args(packages);
    run(download, &format!("apt-get install --download-only {}", packages.join(" ")))
        .map_err(|e| hinted(format!("{e:#}"), format!("check the package names (Debian's, for {arch})")))?;
    let files = debs(&archives)?;
    for deb in &files {
        let mut x = Command::new(&dpkg);
        x.arg("-x").arg(archives.join(deb)).arg(into);
        run(x, &format!("dpkg -x {deb}"))?;
    }
    Ok(files)
}

fn debs(dir: &Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".deb"))
        .collect();
    out.sort();
    Ok(out)
}
