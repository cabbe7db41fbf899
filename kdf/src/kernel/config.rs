//! A kernel `.config` as kdf run reads it (a [`Fragment`], the same parser
//! `kdf kernel config` checks its results with), and the options a kdf VM
//! needs, checked before anything is started.

use crate::kconfig::fragment::{Fragment, ParseError, Value};

/// A parsed `.config`; absent options read as `n`.
#[derive(Debug, Clone, Default)]
pub struct KernelConfig(Fragment);

impl KernelConfig {
    /// Parses `text`; `source` (its path) names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ParseError> {
        Fragment::parse(text, source).map(KernelConfig)
    }

    pub fn get(&self, name: &str) -> &Value {
        self.0.value(name)
    }

    pub fn enabled(&self, name: &str) -> bool {
        matches!(self.get(name), Value::Yes | Value::Module)
    }

    pub fn builtin(&self, name: &str) -> bool {
        *self.get(name) == Value::Yes
    }

    pub fn module(&self, name: &str) -> bool {
        *self.get(name) == Value::Module
    }
}

/// Options every kdf VM needs, with what breaks without them.
pub const REQUIRED: &[(&str, &str)] = &[
    ("CONFIG_BLK_DEV_INITRD", "the kernel cannot load kdf's initramfs"),
    ("CONFIG_DEVTMPFS", "kdf-init cannot create device nodes"),
    ("CONFIG_TMPFS", "the guest gets no /tmp"),
    ("CONFIG_SERIAL_8250_CONSOLE", "there is no kernel console to diagnose failures"),
    ("CONFIG_VIRTIO_CONSOLE", "kdf cannot talk to kdf-init"),
];

/// The first required option the config lacks, with its consequence, checked
/// together with the transport's options (`CONFIG_VIRTIO_PCI`) and the file
/// sharing's (`CONFIG_VIRTIO_FS` or the 9p set).
pub fn missing<'a>(config: &KernelConfig, extra: &[(&'a str, &'a str)]) -> Option<(&'a str, &'a str)> {
    REQUIRED.iter().chain(extra).find(|(name, _)| !config.enabled(name)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KernelConfig {
        KernelConfig::parse(text, "test").unwrap()
    }

    #[test]
    fn reads_values_and_unset_options() {
        let c = parse("# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_N=12\n");
        assert!(c.builtin("CONFIG_A") && c.enabled("CONFIG_A"));
        assert!(c.enabled("CONFIG_B") && c.module("CONFIG_B") && !c.builtin("CONFIG_B"));
        assert!(!c.enabled("CONFIG_C") && !c.enabled("CONFIG_MISSING"));
        assert!(!c.enabled("CONFIG_N") && *c.get("CONFIG_N") == Value::Num("12".into()));
        assert!(KernelConfig::parse("garbage line\n", "x").is_err());
    }

    #[test]
    fn names_the_first_missing_option() {
        let mut text: String = REQUIRED.iter().map(|(n, _)| format!("{n}=y\n")).collect();
        let c = parse(&text);
        assert_eq!(missing(&c, &[]), None);
        assert_eq!(missing(&c, &[("CONFIG_VIRTIO_FS", "no virtiofs")]).unwrap().0, "CONFIG_VIRTIO_FS");
        text = text.replace("CONFIG_VIRTIO_CONSOLE=y", "# CONFIG_VIRTIO_CONSOLE is not set");
        assert_eq!(missing(&parse(&text), &[]).unwrap().0, "CONFIG_VIRTIO_CONSOLE");
    }
}
