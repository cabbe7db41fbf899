//! The layers a kernel config is merged from, in order, later values winning
//! (as `scripts/kconfig/merge_config.sh` does): the base (`--base`), kdf's own
//! fragments, the user's `--fragment`s and `--kselftest` configs, then
//! `--set`. Each option remembers the layer that set it last, and that layer
//! decides how it is checked once Kconfig has run: `--set` strictly, like
//! what a kdf VM needs to boot ([`needs`], from the requirement table); the
//! rest best effort (`--strict-fragments`: every fragment strictly too).

use std::collections::HashMap;

use super::arch::console_option;
use super::fragment::{Entry, Fragment};
use crate::arch::Arch;
use crate::vm::requirements::{Requirement, TABLE};

/// Where a layer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--base`: a distro, defconfig or CI config.
    Base,
    /// kdf's own fragments (`configs/`), and kdf's fixes to a base.
    Kdf,
    /// `--fragment FILE`.
    Fragment,
    /// `--kselftest TARGET`: the selftests' `config` files.
    Kselftest,
    /// `--set CONFIG_X=VALUE`.
    Set,
}

/// One layer: what it is, a name for messages, and its options.
#[derive(Debug, Clone)]
pub struct Layer {
    pub kind: Kind,
    /// `the base /boot/config-6.1.0-27-amd64`, `--fragment kvm_guest`, ...
    pub name: String,
    pub fragment: Fragment,
}

/// How an option's result is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A miss is an error, explained.
    Strict,
    /// A miss is counted, explained in the report, and the config goes on.
    BestEffort,
}

impl Kind {
    pub fn check(self, strict_fragments: bool) -> Check {
        match self {
            Kind::Set => Check::Strict,
            Kind::Kdf | Kind::Fragment | Kind::Kselftest if strict_fragments => Check::Strict,
            _ => Check::BestEffort,
        }
    }
}

/// The layers merged: one fragment, and the layer each option came from.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub fragment: Fragment,
    /// Each layer's kind and name, in merge order (without its options).
    pub layers: Vec<(Kind, String)>,
    from: HashMap<String, usize>,
}

impl Merged {
    pub fn new(layers: Vec<Layer>) -> Merged {
        let mut merged = Merged::default();
        for layer in layers {
            let index = merged.layers.len();
            for entry in layer.fragment.entries() {
                merged.from.insert(entry.name.clone(), index);
            }
            merged.fragment.merge(layer.fragment);
            merged.layers.push((layer.kind, layer.name));
        }
        merged
    }

    /// The index of the layer that set `name` last.
    pub fn layer_of(&self, name: &str) -> Option<usize> {
        self.from.get(name).copied()
    }

    pub fn kind_of(&self, name: &str) -> Option<Kind> {
        self.layer_of(name).map(|i| self.layers[i].0)
    }

    /// The entries with the index of their layer, in request order.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.fragment.entries().iter().map(|e| (self.from[&e.name], e))
    }

    /// The request as Kconfig input, layer by layer: an option a later layer
    /// set comes after the earlier layers' options, as `merge_config.sh` puts
    /// it, because for the members of a choice Kconfig takes the last `y` it
    /// reads (a base's `UNWINDER_GUESS=y` would otherwise beat kdf's
    /// `UNWINDER_FRAME_POINTER=y` when the base lists it later).
    pub fn render(&self) -> String {
        let mut entries: Vec<(usize, &Entry)> = self.entries().collect();
        entries.sort_by_key(|(layer, _)| *layer);
        entries.iter().map(|(_, e)| format!("# {}\n{}\n", e.origin, e.render())).collect()
    }

    /// Whether any layer is of this kind.
    pub fn has(&self, kind: Kind) -> bool {
        self.layers.iter().any(|(k, _)| *k == kind)
    }
}

/// An option a kdf VM needs, and what goes wrong without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub option: &'static str,
    pub why: &'static str,
}

/// What a kdf VM of `arch` needs to boot: the options a run is refused
/// without ([`Requirement::strict`]), the serial console being the
/// architecture's. Each must end up enabled (`y`, or `m` where kdf loads
/// it), whichever layer set it, unless `--set` asked otherwise.
pub fn needs(arch: Arch) -> impl Iterator<Item = Need> {
    TABLE.iter().filter(|r| r.strict).map(move |r: &Requirement| Need {
        option: if r.option == console_option(Arch::X86_64) { console_option(arch) } else { r.option },
        why: r.why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kbuild::fragment::{parse_set, Value};
    use crate::kbuild::profile::{self, Profile, Request};

    fn layer(kind: Kind, name: &str, text: &str) -> Layer {
        Layer { kind, name: name.into(), fragment: Fragment::parse(text, name).unwrap() }
    }

    fn set(arg: &str) -> Layer {
        let mut fragment = Fragment::default();
        fragment.set(parse_set(arg).unwrap());
        Layer { kind: Kind::Set, name: "--set".into(), fragment }
    }

    #[test]
    fn later_layers_win_and_each_option_knows_its_layer() {
        let m = Merged::new(vec![
            layer(Kind::Base, "base", "CONFIG_A=m\nCONFIG_B=y\n# CONFIG_C is not set\n"),
            layer(Kind::Kdf, "configs/vm.config", "CONFIG_C=y\n"),
            layer(Kind::Fragment, "mine.config", "# CONFIG_KPROBES is not set\nCONFIG_A=y\n"),
            set("CONFIG_A=n"),
        ]);
        let names: Vec<_> = m.fragment.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["CONFIG_A", "CONFIG_B", "CONFIG_C", "CONFIG_KPROBES"]);
        assert_eq!(m.fragment.value("CONFIG_A"), &Value::No);
        assert_eq!(m.kind_of("CONFIG_A"), Some(Kind::Set));
        assert_eq!(m.kind_of("CONFIG_B"), Some(Kind::Base));
        assert_eq!(m.kind_of("CONFIG_C"), Some(Kind::Kdf));
        assert_eq!(m.layer_of("CONFIG_KPROBES"), Some(2));
        assert_eq!(m.fragment.get("CONFIG_KPROBES").unwrap().origin.to_string(), "mine.config:1");
        assert_eq!(m.kind_of("CONFIG_NONE"), None);
        let layers: Vec<_> = m.entries().map(|(i, e)| (i, e.name.as_str())).collect();
        assert_eq!(layers, [(3, "CONFIG_A"), (0, "CONFIG_B"), (1, "CONFIG_C"), (2, "CONFIG_KPROBES")]);
        assert!(m.has(Kind::Base) && !m.has(Kind::Kselftest));
    }

    #[test]
    fn later_layers_render_later_so_their_choice_members_win() {
        let m = Merged::new(vec![
            layer(
                Kind::Base,
                "base",
                "# CONFIG_UNWINDER_FRAME_POINTER is not set\nCONFIG_UNWINDER_GUESS=y\nCONFIG_X=y\n",
            ),
            layer(Kind::Kdf, "fast.config", "CONFIG_UNWINDER_FRAME_POINTER=y\n"),
        ]);
        assert_eq!(
            m.render(),
            "# base:2\nCONFIG_UNWINDER_GUESS=y\n# base:3\nCONFIG_X=y\n\
             # fast.config:1\nCONFIG_UNWINDER_FRAME_POINTER=y\n"
        );
        // With one layer it is the fragment's own rendering.
        let one = Merged::new(vec![layer(Kind::Kdf, "vm.config", "CONFIG_A=y\n# CONFIG_B is not set\n")]);
        assert_eq!(one.render(), one.fragment.render());
    }

    #[test]
    fn set_is_strict_bases_never_and_fragments_with_strict_fragments() {
        for strict_fragments in [false, true] {
            assert_eq!(Kind::Set.check(strict_fragments), Check::Strict);
            assert_eq!(Kind::Base.check(strict_fragments), Check::BestEffort);
        }
        for kind in [Kind::Kdf, Kind::Fragment, Kind::Kselftest] {
            assert_eq!(kind.check(false), Check::BestEffort, "{kind:?}");
            assert_eq!(kind.check(true), Check::Strict, "{kind:?}");
        }
    }

    #[test]
    fn a_users_explicit_kasan_wins_over_kdfs_reconciling() {
        let req = Request { arch: Arch::X86_64, profile: Profile::Fast, rust: true, bpf: false, llvm: false };
        let kdf = profile::requested(&req).unwrap();
        let m = Merged::new(vec![
            Layer { kind: Kind::Kdf, name: "kdf's fast profile".into(), fragment: kdf.fragment },
            set("CONFIG_KASAN=y"),
        ]);
        assert_eq!(m.fragment.value("CONFIG_KASAN"), &Value::Yes);
        assert!(kdf.notices.is_empty());
    }

    #[test]
    fn the_needs_are_the_tables_strict_options_and_vm_and_arch_config_set_them() {
        let names: Vec<_> = needs(Arch::X86_64).map(|r| r.option).collect();
        assert!(names.contains(&"CONFIG_VIRTIO_CONSOLE"), "{names:?}");
        assert!(names.contains(&"CONFIG_SERIAL_8250_CONSOLE"), "{names:?}");
        assert!(!names.contains(&"CONFIG_CONFIGFS_FS"), "configfs is optional: {names:?}");
        let arm: Vec<_> = needs(Arch::Arm64).map(|r| r.option).collect();
        assert!(
            arm.contains(&"CONFIG_SERIAL_AMBA_PL011_CONSOLE") && !arm.contains(&"CONFIG_SERIAL_8250_CONSOLE")
        );
        assert_eq!(arm.len(), names.len());
        for arch in [Arch::X86_64, Arch::Arm64] {
            let mut f = Fragment::parse(profile::VM.text, profile::VM.name).unwrap();
            let b = profile::arch_fragment(arch);
            f.merge(Fragment::parse(b.text, b.name).unwrap());
            assert!(needs(arch).all(|r| *f.value(r.option) == Value::Yes), "{arch}");
        }
    }
}
