//! Realising nixpkgs packages with `nix build` (for `--release nix` and `--nix`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::errors::hinted;

/// Builds the installables and returns their store paths, in order.
pub fn build(installables: &[String]) -> Result<Vec<PathBuf>> {
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "build",
            "--no-link",
            "--print-out-paths",
        ])
        .args(installables)
        .output()
        .map_err(|e| {
            hinted(
                format!("failed to run nix: {e}"),
                "install Nix (https://nixos.org/download) or choose a kernel with --kernel/--release VERSION",
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(anyhow::anyhow!(
            "`nix build {}` failed:\n{}",
            installables.join(" "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    String::from_utf8(out.stdout)
        .context("nix build printed a non-UTF-8 path")
        .map(|s| s.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect())
}
