//! How kdf-init speaks: one marked line on the console per event, and the
//! error type of a setup step. A leaf: it imports nothing from the crate, so
//! every other module may use it.

use std::fmt;

/// A setup step's failure, in words for the console and the host.
#[derive(Debug)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<nix::Error> for Fatal {
    fn from(e: nix::Error) -> Self {
        Fatal(e.desc().to_string())
    }
}

impl From<std::io::Error> for Fatal {
    fn from(e: std::io::Error) -> Self {
        Fatal(e.to_string())
    }
}

/// One line on the console, marked so kdf can tell it from the kernel's.
pub fn say(msg: &str) {
    eprintln!("kdf-init: {msg}");
}
