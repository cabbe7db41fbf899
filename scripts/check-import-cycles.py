#!/usr/bin/env python3
"""Fails when two modules of a Rust crate import each other.

Usage: check-import-cycles.py [CRATE_SRC_DIR...]   (default: kdf/src
kdf-init/src kdf-proto/src, relative to the repository root)
       check-import-cycles.py --self-test

Every .rs file under a source directory is a module: src/main.rs or src/lib.rs
is the crate root (printed `crate`), foo.rs and foo/mod.rs are `foo`,
foo/bar.rs is `foo::bar`. A file imports a module when its code names a path
through it: `use crate::a::b`, `use crate::{a, b::c}`, `crate::a::f()`,
`super::x`, `self::x` (super and self resolved from the file's module), or
`child::f()` through one of its own child modules. A path names the deepest
module file it goes through, so `crate::run::say` is module `run` unless
`run/say.rs` exists. A parent and its children are distinct modules; `mod b;`
is not an import, nor is `pub use b::X` unless the module's own code uses `X`
(lib.rs publishing its modules' API). Comments, strings and the
`#[cfg(test)] mod tests` block are ignored (tests may `use super::*`).

Each strongly connected set of modules (a cycle) is printed as
`import cycle in <dir>: a -> b -> a`, and the exit status is 1; with none,
`no import cycles in <dirs>` and status 0. A missing directory is status 2.
"""

import os
import re
import sys
import tempfile
from collections import deque

ROOT = "crate"
ROOT_FILES = ("main.rs", "lib.rs")


def module_of(rel_path):
    """The module path (a tuple of names; () is the crate root) of a file
    given relative to the crate's source directory."""
    parts = rel_path.replace(os.sep, "/").split("/")
    last = parts[-1][: -len(".rs")]
    if len(parts) == 1 and parts[-1] in ROOT_FILES:
        return ()
    if last == "mod":
        return tuple(parts[:-1])
    return tuple(parts[:-1]) + (last,)


RAW_STRING = re.compile(r'b?r#*"')


def strip_comments_and_strings(text):
    """The source with comments and string/char literals blanked out; line
    breaks are kept so lines still line up."""
    out = []
    i, n = 0, len(text)

    def blank(chunk):
        out.append("".join(c if c == "\n" else " " for c in chunk))

    while i < n:
        c = text[i]
        prev = text[i - 1] if i else ""
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(text[i:end])
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(text[i:j])
            i = j
        elif c in "br" and not (prev.isalnum() or prev == "_") and RAW_STRING.match(text, i):
            opening = RAW_STRING.match(text, i).group(0)
            hashes = opening.count("#")
            end = text.find('"' + "#" * hashes, i + len(opening))
            end = n if end < 0 else end + 1 + hashes
            blank(text[i:end])
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(text[i : j + 1])
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{e9}'), or a lifetime ('a) left alone.
            m = re.match(r"'(\\'|\\[^'\n]*|[^'\\\n])'", text[i:])
            if m:
                blank(m.group(0))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


TESTS_ATTR = re.compile(r"#\[cfg\(test\)\]")
TESTS_MOD = re.compile(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+tests\b")


def without_tests(code):
    """`code` with every `#[cfg(test)] mod tests { ... }` block (or
    `mod tests;` line) removed."""
    out, pos = [], 0
    for m in TESTS_ATTR.finditer(code):
        if m.start() < pos:
            continue
        decl = TESTS_MOD.match(code, m.end())
        if not decl:
            continue
        j = decl.end()
        while j < len(code) and code[j] not in "{;":
            j += 1
        if j < len(code) and code[j] == "{":
            depth = 0
            while j < len(code):
                depth += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
                if depth == 0:
                    break
        out.append(code[pos : m.start()])
        out.append("\n" * code.count("\n", m.start(), j))
        pos = j + 1
    out.append(code[pos:])
    return "".join(out)


def expand_use_tree(tree):
    """The paths a use tree names: `crate::{a, b::{c, self}, d as e}` gives
    `crate::a`, `crate::b::c`, `crate::b` and `crate::d as e`."""
    tree = re.sub(r"\s*(::|\{|\}|,)\s*", r"\1", " ".join(tree.split()))
    return [p for p in _expand(tree) if p]


def _split_top(group):
    parts, depth, start = [], 0, 0
    for i, c in enumerate(group):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(group[start:i])
            start = i + 1
    parts.append(group[start:])
    return [p for p in parts if p]


def _expand(tree):
    brace = tree.find("{")
    if brace < 0:
        return [re.sub(r"::self\b", "", tree)]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    paths = []
    for part in _split_top(inner):
        for sub in _expand(part):
            if sub == "self" or sub.startswith("self "):
                paths.append(prefix.rstrip(":") + sub[len("self") :])
            else:
                paths.append(prefix + sub)
    return paths


USE = re.compile(r"(\bpub\b(?:\s*\([^)]*\))?\s+)?\buse\s+([^;]*);")
PATH = re.compile(r"(?<![\w:$])(crate|super|self)((?:\s*::\s*(?:\w+|\*))+)")
# `pub(in crate::a)` restricts visibility; it imports nothing.
VISIBILITY = re.compile(r"\bpub\s*\(\s*in\s+[^)]*\)")


def paths_in(code, children=()):
    """Every path in `code` that starts at `crate`, `super`, `self` or one of
    the module's `children` (a child path gets a leading `self`), as
    `(segments, reexport)`: `reexport` is true for a `pub use` of a name the
    module's own code does not use."""
    found = []
    code = VISIBILITY.sub("pub", code)
    rest = USE.sub(" ", code)
    for m in USE.finditer(code):
        tree = m.group(2).strip()
        if tree.startswith("::"):
            continue  # an external crate
        for path in expand_use_tree(tree):
            path, _, alias = path.partition(" as ")
            segments = path.split("::")
            local = alias or segments[-1]
            used = local != "*" and re.search(rf"\b{re.escape(local)}\b", rest) is not None
            found.append((segments, bool(m.group(1)) and not used))
    for m in PATH.finditer(rest):
        found.append(([m.group(1)] + re.sub(r"\s", "", m.group(2)).split("::")[1:], False))
    if children:
        names = "|".join(sorted(children))
        child_path = re.compile(rf"(?<![\w:$.])(?:{names})(?:\s*::\s*(?:\w+|\*))+")
        for m in child_path.finditer(rest):
            found.append((re.sub(r"\s", "", m.group(0)).split("::"), False))
    resolved = []
    for segments, reexport in found:
        if segments[0] in children:
            segments = ["self"] + segments
        if segments[0] in ("crate", "super", "self"):
            resolved.append((segments, reexport))
    return resolved


def resolve(module, segments):
    """The absolute path (a tuple) that `segments` names from `module`, or
    None when it climbs above the crate root."""
    if segments[0] == "crate":
        return tuple(segments[1:])
    base = list(module)
    rest = segments
    if rest[0] == "self":
        rest = rest[1:]
    while rest and rest[0] == "super":
        if not base:
            return None
        base.pop()
        rest = rest[1:]
    return tuple(base) + tuple(rest)


def deepest_module(path, modules):
    for k in range(len(path), 0, -1):
        if path[:k] in modules:
            return path[:k]
    return ()


def module_graph(src_dir):
    """{module: set of modules it imports} for the crate in `src_dir`."""
    files = {}
    for dirpath, _, names in os.walk(src_dir):
        for name in sorted(names):
            if name.endswith(".rs"):
                full = os.path.join(dirpath, name)
                files[module_of(os.path.relpath(full, src_dir))] = full
    graph = {m: set() for m in files}
    for module, full in files.items():
        with open(full, encoding="utf-8") as f:
            code = without_tests(strip_comments_and_strings(f.read()))
        children = {m[-1] for m in graph if m[:-1] == module and m}
        for segments, reexport in paths_in(code, children):
            path = resolve(module, segments)
            if path is None:
                continue
            target = deepest_module(path, graph)
            # Publishing a descendant's item, like declaring the descendant,
            # is the module tree's shape, not a use of it.
            descendant = target[: len(module)] == module and len(target) > len(module)
            if target != module and not (reexport and descendant):
                graph[module].add(target)
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iteratively: the components of more than one node."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def shortest_cycle(graph, component, start):
    """The shortest cycle through `start` within `component`."""
    members = set(component)
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return list(reversed(path)) + [start]
            if nxt in members and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError("a strongly connected component has a cycle through each member")


def cycles(graph):
    """Cycles that together cover every module that is on one."""
    result = []
    for component in strongly_connected(graph):
        covered = set()
        for start in component:
            if start not in covered:
                cycle = shortest_cycle(graph, component, start)
                covered.update(cycle)
                result.append(cycle)
    return result


def top_level(graph):
    """The graph between the crate's top-level modules (`kbuild`, `cli`, ...):
    each module stands for itself and everything below it, so `kbuild::build
    -> cli::kernel` and `cli -> kbuild::fragment` make `kbuild` and `cli`
    import each other although no two files do."""
    top = {}
    for module, targets in graph.items():
        node = module[:1]
        top.setdefault(node, set())
        for t in targets:
            if t[:1] != node:
                top[node].add(t[:1])
    return top


def name(module):
    return "::".join(module) if module else ROOT


def check(dirs, out=sys.stdout):
    """Prints the verdict for `dirs`; returns the exit status."""
    missing = [d for d in dirs if not os.path.isdir(d)]
    if missing:
        print(f"error: no such directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    status = 0
    for d in dirs:
        graph = module_graph(d)
        for cycle in cycles(graph):
            print(f"import cycle in {d}: {' -> '.join(name(m) for m in cycle)}", file=out)
            status = 1
        for cycle in cycles(top_level(graph)):
            print(f"import cycle between top-level modules in {d}: {' -> '.join(name(m) for m in cycle)}", file=out)
            status = 1
    if status == 0:
        print(f"no import cycles in {' '.join(dirs)}", file=out)
    return status


SELF_TESTS = {
    # Each case fails when the thing it names is done wrong.
    "two modules importing each other are a cycle": (
        {
            "main.rs": "mod a;\nmod b;\nfn main() { a::f(); }\n",
            "a.rs": (
                "const Q: char = '\"';\n"
                "fn id<'a>(s: &'a str) -> &'a str { s }\n"
                "use crate::b::X;\npub fn f() {}\n"
            ),
            "b.rs": "pub struct X;\nfn g() { crate::a::f() }\n",
        },
        ["a -> b -> a"],
    ),
    "mod declarations, comments and strings are no imports": (
        {
            "lib.rs": "pub mod a;\npub mod b;\n",
            "a/mod.rs": (
                "//! Uses [`crate::b`].\n"
                "mod c;\n"
                "/* crate::b::f() /* nested */ crate::b::f() */\n"
                "const S: &str = \"crate::b::f\";\n"
                "const R: &str = r#\"crate::b::\"f\"#;\n"
                "pub struct X;\n"
            ),
            "a/c.rs": "use super::X;\npub struct Y;\n",
            "b.rs": "use crate::a::{self, X};\npub fn f() {}\n",
        },
        [],
    ),
    "use super::* in a tests block is ignored": (
        {
            "main.rs": "mod a;\nmod b;\n",
            "a.rs": "pub fn f() {}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::g;\n}\n",
            "b.rs": "use super::a::f;\npub fn g() { f() }\n",
        },
        [],
    ),
    "a parent using its child through a plain path imports it": (
        {
            "main.rs": "mod kernel;\nmod run;\n",
            "kernel/mod.rs": "pub mod build_dir;\npub struct Kernel;\nfn f() { build_dir::resolve() }\n",
            "kernel/build_dir.rs": "use crate::run::which;\npub fn resolve() {}\n",
            "run.rs": "use crate::kernel::Kernel;\npub fn which() {}\n",
        },
        ["kernel -> kernel::build_dir -> run -> kernel"],
    ),
    "re-exporting a child's item is no import of it": (
        {
            "lib.rs": "mod codec;\npub use codec::{Frame, Reader as R};\npub const MAX: usize = 1;\n",
            "codec.rs": "use crate::MAX;\npub struct Frame;\npub struct Reader;\n",
        },
        [],
    ),
    "using a re-exported item imports it": (
        {
            "lib.rs": "mod codec;\npub use codec::{Frame, Reader as R};\npub fn f(_: R) {}\n",
            "codec.rs": "pub struct Frame;\npub struct Reader;\npub const N: usize = crate::MAX;\n",
        },
        ["crate -> codec -> crate"],
    ),
    "braced groups, deep paths and the root take part in cycles": (
        {
            "main.rs": "mod run;\nmod vm;\npub struct Cli;\nfn main() { crate::run::start() }\n",
            "run/mod.rs": "mod say;\nuse crate::{vm::{qemu::argv, Spec}};\npub fn start() {}\n",
            "run/say.rs": "pub fn say() {}\n",
            "vm/mod.rs": "mod qemu;\npub struct Spec;\n",
            "vm/qemu.rs": "use crate::run::say::say;\nuse crate::Cli as C;\npub fn argv() {}\n",
        },
        ["crate -> run -> vm::qemu -> crate"],
    ),
}


TOP_LEVEL_TESTS = {
    "top-level modules importing each other through different files are a cycle": (
        {
            "main.rs": "mod cli;\nmod kbuild;\n",
            "cli/mod.rs": "pub mod kernel;\nuse crate::kbuild::fragment::Entry;\n",
            "cli/kernel.rs": "pub struct Args;\n",
            "kbuild/mod.rs": "pub mod fragment;\npub mod build;\n",
            "kbuild/fragment.rs": "pub struct Entry;\n",
            "kbuild/build.rs": "use crate::cli::kernel::Args;\n",
        },
        ["cli -> kbuild -> cli"],
    ),
    "imports in one direction between top-level modules are fine": (
        {
            "main.rs": "mod cli;\nmod kbuild;\n",
            "cli/mod.rs": "use crate::kbuild::fragment::Entry;\n",
            "kbuild/mod.rs": "pub mod fragment;\n",
            "kbuild/fragment.rs": "pub struct Entry;\n",
        },
        [],
    ),
}


def self_test():
    """Builds small crates in a temporary directory and checks each verdict."""
    failures = 0
    for title, (files, expected) in TOP_LEVEL_TESTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                with open(os.path.join(tmp, rel), "w", encoding="utf-8") as f:
                    f.write(text)
            got = [" -> ".join(name(m) for m in c) for c in cycles(top_level(module_graph(tmp)))]
        if got != expected:
            failures += 1
            print(f"self-test FAILED: {title}: expected {expected}, got {got}")
    for title, (files, expected) in SELF_TESTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                with open(os.path.join(tmp, rel), "w", encoding="utf-8") as f:
                    f.write(text)
            got = [" -> ".join(name(m) for m in c) for c in cycles(module_graph(tmp))]
        if got != expected:
            failures += 1
            print(f"self-test FAILED: {title}: expected {expected}, got {got}")
    total = len(SELF_TESTS) + len(TOP_LEVEL_TESTS)
    print(f"self-test: {total - failures} of {total} cases passed")
    return 1 if failures else 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    if any(a.startswith("-") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    if not argv:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        os.chdir(root)
        argv = ["kdf/src", "kdf-init/src", "kdf-proto/src"]
    return check(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
