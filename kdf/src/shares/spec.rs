//! One share as kdf holds it ([`ShareSpec`]), and `--virtiofs`'s spec syntax.

use std::path::PathBuf;

use crate::vm::virtiofsd::CacheMode;

/// One host directory and where and how the guest mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    pub host: PathBuf,
    pub guest: PathBuf,
    pub readonly: bool,
    /// Writable in the guest through a tmpfs overlay; the host copy never changes.
    pub overlay: bool,
    pub cache: CacheMode,
}

impl ShareSpec {
    pub fn same_path(path: PathBuf, readonly: bool) -> Self {
        ShareSpec { guest: path.clone(), host: path, readonly, overlay: false, cache: CacheMode::Auto }
    }

    /// A read-only share whose files the host is not expected to change
    /// during a run (the root, kernel modules): the guest keeps their pages
    /// and metadata across opens (virtiofsd's `always`), so a program run
    /// again is not read again: 10 runs of a static busybox took 0.14 s
    /// instead of 0.62 s under TCG, 10 of a dynamic `true` 0.58 s instead
    /// of 1.11 s. A writable share keeps close-to-open consistency (`auto`).
    pub fn kept_in_cache(self) -> Self {
        let cache = if self.readonly || self.overlay { CacheMode::Always } else { self.cache };
        ShareSpec { cache, ..self }
    }
}

/// Splits on commas not preceded by a backslash; `\,` and `\\` unescape.
pub fn split_escaped(s: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (',' | '\\')) => items.last_mut().unwrap().push(n),
                Some(n) => {
                    let last = items.last_mut().unwrap();
                    last.push('\\');
                    last.push(n);
                }
                None => items.last_mut().unwrap().push('\\'),
            },
            ',' => items.push(String::new()),
            c => items.last_mut().unwrap().push(c),
        }
    }
    items
}

/// Parses `--virtiofs SPEC`: comma-separated items, `\,` for a literal comma.
/// `src=PATH` (or a bare first path), `dst=PATH` (default: same as src), `ro`,
/// `rw` (default), `overlay`, `cache=auto|always|metadata|never`. Any other
/// character, including spaces, `:`, `=`, newlines and unicode, is literal.
pub fn parse_virtiofs(spec: &str) -> Result<ShareSpec, String> {
    let (mut src, mut dst) = (None, None);
    let mut share = ShareSpec::same_path(PathBuf::new(), false);
    for item in split_escaped(spec) {
        match item.split_once('=') {
            Some(("src", v)) => src = Some(PathBuf::from(v)),
            Some(("dst", v)) => dst = Some(PathBuf::from(v)),
            Some(("cache", v)) => share.cache = v.parse::<CacheMode>()?,
            _ => match item.as_str() {
                "ro" => share.readonly = true,
                "rw" => share.readonly = false,
                "overlay" => share.overlay = true,
                "" => {}
                path if src.is_none() => src = Some(PathBuf::from(path)),
                other => {
                    return Err(format!("unknown item {other:?} (use src=, dst=, ro, rw, overlay, cache=)"))
                }
            },
        }
    }
    share.host = src.ok_or("no source directory (src=PATH)")?;
    share.guest = dst.unwrap_or_else(|| share.host.clone());
    if !share.guest.is_absolute() {
        return Err(format!("the guest path {} must be absolute", share.guest.display()));
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtiofs_spec_takes_any_path() {
        let s = parse_virtiofs(
            r"src=/tmp/a b:c\,d=e
f\u{e9},dst=/mnt/x,ro,cache=never",
        )
        .unwrap();
        assert_eq!(s.host, PathBuf::from("/tmp/a b:c,d=e\nf\\u{e9}"));
        assert_eq!(s.guest, PathBuf::from("/mnt/x"));
        assert!(s.readonly && !s.overlay);
        assert_eq!(s.cache, CacheMode::Never);
        let u = parse_virtiofs("/srv/d\u{e9}j\u{e0} vu").unwrap();
        assert_eq!(u.host, PathBuf::from("/srv/d\u{e9}j\u{e0} vu"));
        assert_eq!(u.guest, u.host);
    }

    #[test]
    fn read_only_shares_are_kept_in_cache_and_writable_ones_are_not() {
        let ro = ShareSpec::same_path("/".into(), true).kept_in_cache();
        assert_eq!(ro.cache, CacheMode::Always);
        let overlay =
            ShareSpec { overlay: true, ..ShareSpec::same_path("/srv".into(), false) }.kept_in_cache();
        assert_eq!(overlay.cache, CacheMode::Always);
        let rw = ShareSpec::same_path("/src".into(), false).kept_in_cache();
        assert_eq!(rw.cache, CacheMode::Auto);
    }

    #[test]
    fn virtiofs_spec_flags_and_errors() {
        let s = parse_virtiofs("/data,overlay").unwrap();
        assert!(s.overlay && !s.readonly);
        assert!(parse_virtiofs("ro").unwrap_err().contains("no source"));
        assert!(parse_virtiofs("/a,dst=rel").unwrap_err().contains("absolute"));
        assert!(parse_virtiofs("/a,cache=sometimes").unwrap_err().contains("cache mode"));
        assert!(parse_virtiofs("/a,/b").unwrap_err().contains("unknown item"));
        assert_eq!(parse_virtiofs(r"src=/a\\b").unwrap().host, PathBuf::from(r"/a\b"));
    }
}
