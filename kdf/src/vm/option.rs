//! QEMU's option syntax (`key=value,key=value`), where a value that may hold
//! any byte (a path) needs its commas doubled.

use std::ffi::{OsStr, OsString};

/// A literal comma is doubled; every other byte is literal.
pub fn escape_os(value: &OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled_and_nothing_else_changes() {
        assert_eq!(escape_os(OsStr::new("/a,b c,,d")), OsStr::new("/a,,b c,,,,d"));
        assert_eq!(escape_os(OsStr::new("")), OsStr::new(""));
    }
}
