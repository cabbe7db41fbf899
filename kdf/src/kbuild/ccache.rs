//! ccache for `kdf kernel build --ccache`: finding it, and how well one build
//! hit its cache, from its counters before and after (`ccache
//! --print-stats`; other builds sharing the cache meanwhile count too).

use std::process::{Command, Stdio};

use anyhow::Result;

use crate::errors::hinted;

/// The counters that tell hits from misses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
}

/// Reads `ccache --print-stats` (`name<TAB>value` lines, ccache >= 4.4).
pub fn parse_stats(text: &str) -> Option<Stats> {
    let mut stats = Stats::default();
    let mut seen = false;
    for line in text.lines() {
        let Some((name, value)) = line.split_once('\t') else { continue };
        let Ok(value) = value.trim().parse::<u64>() else { continue };
        match name {
            "direct_cache_hit" | "preprocessed_cache_hit" => stats.hits += value,
            "cache_miss" => stats.misses += value,
            _ => continue,
        }
        seen = true;
    }
    seen.then_some(stats)
}

/// What happened between two readings.
pub fn delta(before: Stats, after: Stats) -> Stats {
    Stats { hits: after.hits.saturating_sub(before.hits), misses: after.misses.saturating_sub(before.misses) }
}

/// `ccache: 812 hits, 3 misses (99.6% hit)`.
pub fn describe(d: Stats) -> String {
    let total = d.hits + d.misses;
    if total == 0 {
        return "ccache: no compilations went through it".into();
    }
    format!("ccache: {} hits, {} misses ({:.1}% hit)", d.hits, d.misses, d.hits as f64 * 100.0 / total as f64)
}

/// The current counters, if ccache can say.
pub fn read() -> Option<Stats> {
    let out = Command::new("ccache").arg("--print-stats").stdin(Stdio::null()).output().ok()?;
    out.status.success().then(|| parse_stats(&String::from_utf8_lossy(&out.stdout)))?
}

/// Fails with the fix when ccache is not installed.
pub fn check() -> Result<()> {
    match Command::new("ccache").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(hinted("ccache is not installed", "install it: sudo apt install ccache")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "\
autoconf_test\t0
cache_miss\t12
direct_cache_hit\t800
direct_cache_miss\t20
preprocessed_cache_hit\t8
preprocessed_cache_miss\t12
stats_updated_timestamp\t1796026500
";

    #[test]
    fn hits_are_direct_plus_preprocessed() {
        assert_eq!(parse_stats(STATS), Some(Stats { hits: 808, misses: 12 }));
        assert_eq!(parse_stats("Summary:\n  Hits: 3\n"), None);
    }

    #[test]
    fn one_builds_share_is_described() {
        let d = delta(Stats { hits: 100, misses: 50 }, Stats { hits: 908, misses: 53 });
        assert_eq!(d, Stats { hits: 808, misses: 3 });
        assert_eq!(describe(d), "ccache: 808 hits, 3 misses (99.6% hit)");
        assert_eq!(describe(Stats::default()), "ccache: no compilations went through it");
        // Someone zeroed the counters meanwhile: no negative counts.
        assert_eq!(delta(Stats { hits: 9, misses: 9 }, Stats { hits: 1, misses: 0 }), Stats::default());
    }
}
