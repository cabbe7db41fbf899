//! Values on kdf's command lines that clap does not parse itself: sizes,
//! seconds and architectures.

use std::time::Duration;

/// `512`, `512M`, `1G`, `1048576K` -> MiB.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult_kib) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1),
        Some((i, 'M' | 'm')) => (&s[..i], 1024),
        Some((i, 'G' | 'g')) => (&s[..i], 1024 * 1024),
        _ => (s, 1024),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 512M, 2G)"))?;
    let mib = n.saturating_mul(mult_kib) / 1024;
    if !(64..=1024 * 1024).contains(&mib) {
        return Err(format!("{s} is out of range (64M to 1024G)"));
    }
    Ok(mib)
}

/// `--arch`: `x86_64`, `arm64`, and their other spellings (`aarch64`, `amd64`).
pub fn parse_arch(s: &str) -> Result<crate::arch::Arch, String> {
    crate::arch::Arch::parse(s)
        .ok_or_else(|| format!("{s:?} is not an architecture kdf boots (x86_64, arm64)"))
}

/// Seconds, fractions allowed: `30`, `1.5`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("{s} must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("2G"), Ok(2048));
        assert_eq!(parse_memory("1048576K"), Ok(1024));
        assert!(parse_memory("lots").is_err());
        assert!(parse_memory("1K").is_err());
        assert!(parse_memory("-5").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
