//! Reading a root's `/etc/passwd`: for `--root`, the user's name, home and
//! shell come from the guest's user database, not the host's.

use std::path::PathBuf;

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// Empty when the field is (login(1) then uses /bin/sh).
    pub shell: PathBuf,
}

/// The entries of a passwd file; comments, blank and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let [name, _password, uid, gid, _gecos, home, shell] = f[..] else { return None };
            Some(Entry {
                name: name.to_string(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: home.into(),
                shell: shell.into(),
            })
        })
        .filter(|e| !e.name.is_empty())
        .collect()
}

/// The first entry for `uid`, as getpwuid(3) finds it.
pub fn by_uid(entries: &[Entry], uid: u32) -> Option<&Entry> {
    entries.iter().find(|e| e.uid == uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_and_junk_skipped() {
        let text =
            "# comment\nroot:x:0:0:root:/root:/bin/ash\n\nbroken line\nu:x:1000:100:A User,,,:/home/u:\n\
                    bad:x:notanumber:0::/:/bin/sh\nroot:x:0:0:second:/nowhere:/bin/false\n";
        let e = parse(text);
        assert_eq!(e.len(), 3);
        let root = by_uid(&e, 0).unwrap();
        assert_eq!(
            (root.name.as_str(), root.home.to_str(), root.shell.to_str()),
            ("root", Some("/root"), Some("/bin/ash"))
        );
        let u = by_uid(&e, 1000).unwrap();
        assert_eq!((u.gid, u.shell.as_os_str().is_empty()), (100, true));
        assert_eq!(by_uid(&e, 5), None);
    }
}
