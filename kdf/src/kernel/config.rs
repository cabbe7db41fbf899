//! A kernel `.config`, read as a map from option to value, and the options a
//! kdf VM needs, checked before anything is started.

use std::collections::BTreeMap;

/// `CONFIG_X=y|m|"str"|123`; `# CONFIG_X is not set` reads as `n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: BTreeMap<String, String>,
}

impl KernelConfig {
    pub fn parse(text: &str) -> Self {
        let mut values = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
                values.insert(name.to_string(), "n".to_string());
            } else if let Some((name, value)) = line.split_once('=') {
                if name.starts_with("CONFIG_") {
                    values.insert(name.to_string(), value.to_string());
                }
            }
        }
        KernelConfig { values }
    }

    /// The value, with `n` for options that are unset or absent.
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("n")
    }

    pub fn enabled(&self, name: &str) -> bool {
        matches!(self.get(name), "y" | "m")
    }

    pub fn builtin(&self, name: &str) -> bool {
        self.get(name) == "y"
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

    #[test]
    fn parses_values_and_unset_options() {
        let c = KernelConfig::parse(
            "# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_S=\"x y\"\nCONFIG_N=12\n",
        );
        assert_eq!(c.get("CONFIG_A"), "y");
        assert!(c.enabled("CONFIG_B") && !c.builtin("CONFIG_B"));
        assert_eq!(c.get("CONFIG_C"), "n");
        assert_eq!(c.get("CONFIG_MISSING"), "n");
        assert_eq!(c.get("CONFIG_S"), "\"x y\"");
        assert_eq!(c.get("CONFIG_N"), "12");
    }

    #[test]
    fn names_the_first_missing_option() {
        let mut text: String = REQUIRED.iter().map(|(n, _)| format!("{n}=y\n")).collect();
        let c = KernelConfig::parse(&text);
        assert_eq!(missing(&c, &[]), None);
        assert_eq!(missing(&c, &[("CONFIG_VIRTIO_FS", "no virtiofs")]).unwrap().0, "CONFIG_VIRTIO_FS");
        text = text.replace("CONFIG_VIRTIO_CONSOLE=y", "# CONFIG_VIRTIO_CONSOLE is not set");
        assert_eq!(missing(&KernelConfig::parse(&text), &[]).unwrap().0, "CONFIG_VIRTIO_CONSOLE");
    }
}
