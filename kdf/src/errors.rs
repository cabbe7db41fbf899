//! Errors a person can act on: a message, and a `hint:` where the fix is known.
//! Usage errors (status 2) are told apart from kdf's own failures (status 125).

use std::fmt;

/// An error with a known fix (and, where it is not 125, its exit status).
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
    pub status: Option<i32>,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

pub fn hinted(message: impl fmt::Display, hint: impl fmt::Display) -> anyhow::Error {
    Hinted { message: message.to_string(), hint: hint.to_string(), status: None }.into()
}

/// A hinted error that ends kdf with `status` (e.g. 123: a `--module` refused).
pub fn hinted_status(message: impl fmt::Display, hint: impl fmt::Display, status: i32) -> anyhow::Error {
    Hinted { message: message.to_string(), hint: hint.to_string(), status: Some(status) }.into()
}

/// The exit status an error asks for, if any.
pub fn status_of(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|e| e.downcast_ref::<Hinted>().and_then(|h| h.status))
}

/// The hint anywhere in the error's chain.
pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    err.chain().find_map(|e| {
        e.downcast_ref::<Hinted>()
            .map(|h| h.hint.as_str())
            .or_else(|| e.downcast_ref::<Usage>().and_then(|u| u.hint.as_deref()))
    })
}

/// A bad command line found after parsing (conflicting or invalid values).
#[derive(Debug)]
pub struct Usage {
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Usage {}

pub fn usage(message: impl fmt::Display) -> anyhow::Error {
    Usage { message: message.to_string(), hint: None }.into()
}

/// A usage error (status 2) with a known fix.
pub fn usage_hinted(message: impl fmt::Display, hint: impl fmt::Display) -> anyhow::Error {
    Usage { message: message.to_string(), hint: Some(hint.to_string()) }.into()
}

pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<Usage>().is_some())
}

/// The exit status kdf ends with on `err`: the one it asks for, else 2 for a
/// usage error, else 125.
pub fn exit_status(err: &anyhow::Error) -> i32 {
    match status_of(err) {
        Some(code) => code,
        None if is_usage(err) => crate::status::USAGE,
        None => crate::status::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn hints_and_usage_are_found_through_context() {
        let err = Err::<(), _>(hinted("no qemu", "apt install qemu-system-x86"))
            .context("failed to start the VM")
            .unwrap_err();
        assert_eq!(hint_of(&err), Some("apt install qemu-system-x86"));
        assert_eq!(format!("{err:#}"), "failed to start the VM: no qemu");
        assert!(!is_usage(&err));
        assert!(is_usage(&usage("--cpus must be at least 1").context("bad flags")));
        assert_eq!(exit_status(&err), crate::status::FAILURE);
        assert_eq!(exit_status(&usage("x").context("bad flags")), crate::status::USAGE);
        let refused = hinted_status("built for 6.1", "rebuild it", crate::status::MODULE).context("--module");
        assert_eq!(exit_status(&refused), crate::status::MODULE);
    }
}
