//! A private apt configuration for another architecture's packages, as pure
//! functions: the host's mirrors read from its sources (deb822 `.sources`
//! or one-line `sources.list`), rendered with `arch=` for the guest, and the
//! `-o` options that point every path apt writes into kdf's cache, with an
//! empty dpkg status, so the host's apt state is never touched and apt
//! resolves every dependency as for an empty system.

use std::path::Path;

use crate::arch::Arch;

/// One repository the host uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// The binary (`Types: deb`) repositories of a deb822 `.sources` file.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
                .map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if stanza.lines().any(|l| l.trim() == "Enabled: no") || !field("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let signed_by = field("Signed-By").first().cloned();
        for uri in field("URIs") {
            for suite in field("Suites") {
                out.push(Source {
                    uri: uri.clone(),
                    suite,
                    components: field("Components"),
                    signed_by: signed_by.clone(),
                });
            }
        }
    }
    out
}

/// The `deb` lines of a one-line `sources.list`.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("deb ").map(str::trim) else { continue };
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').map(|(o, r)| (o, r.trim())).unwrap_or(("", r)),
            None => ("", rest),
        };
        let signed_by =
            options.split_whitespace().find_map(|o| o.strip_prefix("signed-by=")).map(String::from);
        let mut words = rest.split_whitespace().map(String::from);
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        out.push(Source { uri, suite, components: words.collect(), signed_by });
    }
    out
}

/// Debian's archive, when the host names none (a host that is not Debian's).
pub fn fallback() -> Vec<Source> {
    vec![Source {
        uri: "http://deb.debian.org/debian".into(),
        suite: "bookworm".into(),
        components: vec!["main".into()],
        signed_by: Some("/usr/share/keyrings/debian-archive-keyring.gpg".into()),
    }]
}

/// The private `sources.list`: each host repository's `main` for `arch`.
/// Ubuntu keeps other architectures than amd64 and i386 on its ports mirror.
pub fn sources_list(sources: &[Source], arch: Arch) -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    for s in sources {
        let uri = match (arch, s.uri.contains("archive.ubuntu.com") || s.uri.contains("security.ubuntu.com"))
        {
            (Arch::Arm64, true) => "http://ports.ubuntu.com/ubuntu-ports".to_string(),
            _ => s.uri.trim_end_matches('/').to_string(),
        };
        if seen.contains(&(uri.clone(), s.suite.clone())) {
            continue;
        }
        let signed = s.signed_by.as_ref().map(|k| format!(" signed-by={k}")).unwrap_or_default();
        out.push_str(&format!("deb [arch={}{signed}] {uri} {} main\n", arch.debian(), s.suite));
        seen.push((uri, s.suite.clone()));
    }
    out
}

/// apt's options for the private state under `dir` (`sources.list`,
/// `status`, `lists/`, `cache/` inside it). `as_root`: apt would drop to its
/// `_apt` user to download, who cannot write into the user's cache.
pub fn options(dir: &Path, arch: Arch, as_root: bool) -> Vec<String> {
    let d = dir.display();
    let mut out = vec![
        format!("Dir::Etc::SourceList={d}/sources.list"),
        "Dir::Etc::SourceParts=/dev/null".into(),
        "Dir::Etc::Preferences=/dev/null".into(),
        "Dir::Etc::PreferencesParts=/dev/null".into(),
        format!("Dir::State::Lists={d}/lists"),
        format!("Dir::State::status={d}/status"),
        format!("Dir::Cache={d}/cache"),
        format!("APT::Architecture={}", arch.debian()),
        format!("APT::Architectures={}", arch.debian()),
        "APT::Install-Recommends=false".into(),
        "Debug::NoLocking=1".into(),
    ];
    if as_root {
        out.push("APT::Sandbox::User=root".into());
    }
    out.into_iter().flat_map(|o| ["-o".to_string(), o]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_gives_each_uri_and_suite_of_binary_stanzas() {
        let s = parse_deb822(DEB822);
        let pairs: Vec<(&str, &str)> = s.iter().map(|s| (s.uri.as_str(), s.suite.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("http://deb.debian.org/debian", "bookworm"),
                ("http://deb.debian.org/debian", "bookworm-updates"),
                ("http://deb.debian.org/debian-security", "bookworm-security"),
            ]
        );
        assert_eq!(s[2].components, ["main", "contrib"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/usr/share/keyrings/debian-archive-keyring.gpg"));
    }

    #[test]
    fn one_line_sources_keep_options_and_skip_the_rest() {
        let text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main\n\
                    deb-src http://m/debian bookworm main\ndeb http://archive.ubuntu.com/ubuntu noble main universe\n";
        let s = parse_one_line(text);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].uri.as_str(), s[0].suite.as_str(), s[0].signed_by.as_deref()),
            ("http://m/debian", "bookworm", Some("/k.gpg"))
        );
        assert_eq!(
            (s[1].suite.as_str(), s[1].components.len(), s[1].signed_by.as_deref()),
            ("noble", 2, None)
        );
    }

    #[test]
    fn the_private_list_is_the_hosts_mirrors_for_the_guests_architecture() {
        let list = sources_list(&parse_deb822(DEB822), Arch::Arm64);
        assert_eq!(
            list,
            "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main\n\
             deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main\n\
             deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main\n"
        );
        let ubuntu = parse_one_line("deb http://archive.ubuntu.com/ubuntu/ noble main\ndeb http://security.ubuntu.com/ubuntu noble main\n");
        assert_eq!(
            sources_list(&ubuntu, Arch::Arm64),
            "deb [arch=arm64] http://ports.ubuntu.com/ubuntu-ports noble main\n"
        );
        assert!(sources_list(&fallback(), Arch::Arm64).contains("deb.debian.org/debian bookworm main"));
    }

    #[test]
    fn every_path_apt_writes_is_private() {
        let o = options(Path::new("/c/apt/arm64"), Arch::Arm64, true);
        assert!(o.chunks(2).all(|p| p[0] == "-o"));
        let o: Vec<&str> = o.iter().skip(1).step_by(2).map(String::as_str).collect();
        for want in [
            "Dir::Etc::SourceList=/c/apt/arm64/sources.list",
            "Dir::Etc::SourceParts=/dev/null",
            "Dir::State::Lists=/c/apt/arm64/lists",
            "Dir::State::status=/c/apt/arm64/status",
            "Dir::Cache=/c/apt/arm64/cache",
            "APT::Architecture=arm64",
            "APT::Architectures=arm64",
            "APT::Sandbox::User=root",
        ] {
            assert!(o.contains(&want), "{want} in {o:?}");
        }
        assert!(!options(Path::new("/c"), Arch::Arm64, false).iter().any(|o| o.contains("Sandbox")));
    }
}
