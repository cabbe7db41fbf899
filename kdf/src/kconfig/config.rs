//! A kernel `.config` as kdf run reads it (a [`Fragment`], the same parser
//! `kdf kernel config` checks its results with).

use super::fragment::{Fragment, ParseError, Value};

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
}
