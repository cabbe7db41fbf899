//! `modules.dep` parsing and dependency closure, shared by kdf (which picks the
//! module files for the initramfs) and kdf-init (which loads them in order).

use std::collections::HashSet;

/// One line of `modules.dep`: a module path and the paths it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub deps: Vec<String>,
}

/// A parsed `modules.dep`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulesDep {
    pub entries: Vec<Entry>,
}

/// The name the kernel knows a module by: the file name without `.ko` and any
/// compression suffix, with `-` folded to `_` (as modprobe does).
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModulesDep {
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let (path, deps) = line.split_once(':')?;
                let path = path.trim();
                (!path.is_empty()).then(|| Entry {
                    path: path.to_string(),
                    deps: deps.split_whitespace().map(str::to_string).collect(),
                })
            })
            .collect();
        ModulesDep { entries }
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        let name = name.replace('-', "_");
        self.entries.iter().find(|e| module_name(&e.path) == name)
    }

    fn find_path(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// The module paths to load for `names`, every dependency before its users,
    /// each once; and the names that are not in this file (built in, or absent).
    pub fn load_order<S: AsRef<str>>(&self, names: &[S]) -> (Vec<String>, Vec<String>) {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        for name in names {
            match self.find(name.as_ref()) {
                Some(entry) => self.visit(&entry.path, &mut seen, &mut order),
                None => missing.push(name.as_ref().to_string()),
            }
        }
        (order, missing)
    }

    /// `load_order` in levels: each module's dependencies are all in earlier
    /// levels, so the modules of one level can be loaded at the same time.
    pub fn load_levels<S: AsRef<str>>(&self, names: &[S]) -> (Vec<Vec<String>>, Vec<String>) {
        let (order, missing) = self.load_order(names);
        let mut level_of = std::collections::HashMap::new();
        let mut levels: Vec<Vec<String>> = Vec::new();
        for path in order {
            let deps = self.find_path(&path).map(|e| e.deps.as_slice()).unwrap_or_default();
            // Dependencies precede their users in `order`, so theirs are known.
            let level = deps.iter().filter_map(|d| level_of.get(d)).map(|l| l + 1).max().unwrap_or(0);
            level_of.insert(path.clone(), level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            levels[level].push(path);
        }
        (levels, missing)
    }

    fn visit(&self, path: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(path.to_string()) {
            return;
        }
        if let Some(entry) = self.find_path(path) {
            // modules.dep lists the whole transitive closure; visiting each
            // dependency first still orders them correctly among themselves.
            for dep in &entry.deps {
                self.visit(dep, seen, order);
            }
        }
        order.push(path.to_string());
    }

    /// Only the entries whose paths are in `keep`, rendered back to text.
    pub fn render_subset(&self, keep: &[String]) -> String {
        let mut out = String::new();
        for e in self.entries.iter().filter(|e| keep.contains(&e.path)) {
            out.push_str(&e.path);
            out.push(':');
            for dep in &e.deps {
                out.push(' ');
                out.push_str(dep);
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko
";

    #[test]
    fn names_drop_suffixes_and_fold_dashes() {
        assert_eq!(module_name("kernel/fs/fuse/virtiofs.ko"), "virtiofs");
        assert_eq!(module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz"), "virtio_rng");
        assert_eq!(module_name("a.ko.zst"), "a");
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let dep = ModulesDep::parse(DEP);
        let (order, missing) = dep.load_order(&["virtio_pci", "virtiofs"]);
        assert!(missing.is_empty());
        let names: Vec<_> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(
            names,
            [
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_ring",
                "virtio",
                "virtio_pci",
                "fuse",
                "virtiofs"
            ]
        );
    }

    #[test]
    fn levels_hold_modules_whose_dependencies_are_all_below() {
        let dep = ModulesDep::parse(DEP);
        let (levels, missing) = dep.load_levels(&["virtio_pci", "virtiofs", "nosuch"]);
        assert_eq!(missing, ["nosuch"]);
        let names: Vec<Vec<String>> =
            levels.iter().map(|l| l.iter().map(|p| module_name(p)).collect()).collect();
        assert_eq!(
            names,
            [
                vec!["virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_ring", "fuse"],
                vec!["virtio"],
                vec!["virtio_pci", "virtiofs"],
            ]
        );
        let (order, _) = dep.load_order(&["virtio_pci", "virtiofs"]);
        assert_eq!(levels.concat().len(), order.len(), "each module once");
    }

    #[test]
    fn every_module_follows_its_dependencies() {
        let dep = ModulesDep::parse(DEP);
        let (order, _) = dep.load_order(&["virtiofs", "virtio_pci", "virtio-rng"]);
        for (i, path) in order.iter().enumerate() {
            for d in &dep.find_path(path).unwrap().deps {
                let at = order.iter().position(|p| p == d).unwrap();
                assert!(at < i, "{d} must load before {path}");
            }
        }
    }

    #[test]
    fn unknown_names_are_reported_as_missing() {
        let dep = ModulesDep::parse(DEP);
        let (order, missing) = dep.load_order(&["9p", "fuse"]);
        assert_eq!(order, ["kernel/fs/fuse/fuse.ko"]);
        assert_eq!(missing, ["9p"]);
    }

    #[test]
    fn subset_renders_in_file_order_and_parses_back() {
        let dep = ModulesDep::parse(DEP);
        let (order, _) = dep.load_order(&["virtiofs"]);
        let text = dep.render_subset(&order);
        assert!(text.starts_with("kernel/fs/fuse/fuse.ko:\n"));
        let back = ModulesDep::parse(&text);
        assert_eq!(back.load_order(&["virtiofs"]).0, order);
    }

    #[test]
    fn blank_and_malformed_lines_are_ignored() {
        let dep = ModulesDep::parse("\n# comment\n: x\na.ko:\n");
        assert_eq!(dep.entries.len(), 1);
    }
}
