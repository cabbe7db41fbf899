# kdf's gdb commands, loaded as the module `kdf` by the init file `kdf gdb`
# writes (which then calls kdf.setup with the run's modules).
#
# lx-symbols-runtime [DIR...]: module symbols that follow the kernel. It
# arms a breakpoint on do_init_module, where a module is laid out in memory
# and not yet initialised, and there adds the module's .ko with every section
# at its address (.init.text too, so a breakpoint in a module's __init hits);
# modules already loaded get theirs at once. It works before the kernel runs
# (the CPU at its reset vector, nothing mapped): then it only arms the
# breakpoint, a hardware one, which needs no memory to patch.
#
# It differs from the kernel's lx-symbols (scripts/gdb/linux/symbols.py),
# which reads the module list first (that fails before the kernel runs) and
# maps only .text, .data, .rodata, .bss and a few more sections.

import os
import re

import gdb


class Modules:
    """Where each module's .ko is: the --module files, then the directories."""

    def __init__(self, files, dirs, orders):
        self.files = dict(files)
        self.dirs = list(dirs)
        self.orders = list(orders)
        self.index = None

    def add_dirs(self, dirs):
        for d in dirs:
            d = os.path.abspath(os.path.expanduser(d))
            if d not in self.dirs:
                self.dirs.append(d)
        self.index = None

    def _scan(self):
        # name (with '-' read as '_', as the kernel does) -> .ko file
        index = {}
        for d in self.dirs:
            for root, _, names in os.walk(d):
                for n in names:
                    if n.endswith(".ko"):
                        index.setdefault(n[:-3].replace("-", "_"), os.path.join(root, n))
        # A kernel build directory's own modules, listed in modules.order
        # (foo/bar.o since 6.2, foo/bar.ko before).
        for order in self.orders:
            try:
                with open(order) as f:
                    lines = f.read().split()
            except OSError:
                continue
            top = os.path.dirname(order)
            for line in lines:
                stem = re.sub(r"\.(o|ko)$", "", line)
                name = os.path.basename(stem).replace("-", "_")
                index.setdefault(name, os.path.join(top, stem + ".ko"))
        self.index = index

    def find(self, name):
        if name in self.files and os.path.exists(self.files[name]):
            return self.files[name]
        if self.index is None or name not in self.index:
            self._scan()
        path = self.index.get(name)
        return path if path and os.path.exists(path) else None


def kernel_up():
    """Whether the kernel's memory is mapped: its module list reads."""
    try:
        return int(gdb.parse_and_eval("modules")["next"]) != 0
    except gdb.error:
        return False


def set_breakpoint(spec, internal=False, cls=gdb.Breakpoint):
    """A breakpoint that can be inserted now: before the kernel runs, a
    software breakpoint cannot be written into unmapped memory (KVM), so it is
    a hardware one."""
    hardware = not kernel_up() and hasattr(gdb, "BP_HARDWARE_BREAKPOINT")
    kind = gdb.BP_HARDWARE_BREAKPOINT if hardware else gdb.BP_BREAKPOINT
    return cls(spec, type=kind, internal=internal)


def module_list():
    """Every loaded module, as a `struct module *`."""
    head = gdb.parse_and_eval("modules")
    module_ptr = gdb.lookup_type("struct module").pointer()
    offset = int(gdb.Value(0).cast(module_ptr)["list"].address)
    node = head["next"]
    while int(node) != int(head.address):
        yield gdb.Value(int(node) - offset).cast(module_ptr)
        node = node["next"]


def sections(mod):
    """A module's sections and their addresses, as /sys/module/M/sections
    shows them, read from the module's section attributes."""
    out = {}
    try:
        attrs = mod["sect_attrs"]
        if int(attrs) == 0:
            return out
        table = attrs["grp"]["bin_attrs"]
        i = 0
        while int(table[i]) != 0:
            attr = table[i].dereference()
            address = int(attr["private"])
            if address == 0:
                # Before Linux 6.14 the address followed the attribute.
                holder = gdb.lookup_type("struct module_sect_attr").pointer()
                address = int(table[i].cast(holder)["address"])
            out[attr["attr"]["name"].string()] = address
            i += 1
    except gdb.error:
        pass
    return out


def text_address(mod, sects):
    if ".text" in sects:
        return sects[".text"]
    try:
        return int(mod["mem"][0]["base"])  # MOD_TEXT, since 6.4
    except gdb.error:
        return int(mod["core_layout"]["base"])


class ModuleLoadHook(gdb.Breakpoint):
    """Stops silently in do_init_module, loads the module's symbols, goes on."""

    command = None

    def stop(self):
        try:
            self.command.load(gdb.parse_and_eval("mod"))
        except gdb.error as e:
            gdb.write("kdf: cannot load a module's symbols: {}\n".format(e))
        return False


class LxSymbolsRuntime(gdb.Command):
    """Load module symbols now and whenever a module loads, every section.

Usage: lx-symbols-runtime [DIR...]
Searches the --module files of the run, the --module-dir directories of
kdf gdb, the kernel build's modules.order and the DIRs given (recursively)
for MODULE.ko. Works before the kernel runs: it then waits for modules to
load. Breakpoints in a module (its __init function too) can be set before it
loads: they are pending until its symbols arrive."""

    def __init__(self, modules):
        super().__init__("lx-symbols-runtime", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)
        self.modules = modules
        self.loaded = {}  # module name -> text address its symbols are at
        self.hook = None

    def invoke(self, arg, from_tty):
        self.modules.add_dirs(gdb.string_to_argv(arg))
        if self.hook is not None and self.hook.is_valid():
            self.hook.delete()
        ModuleLoadHook.command = self
        self.hook = set_breakpoint("do_init_module", internal=True, cls=ModuleLoadHook)
        self.hook.silent = True
        if not kernel_up():
            gdb.write("kdf: the kernel is not running yet; module symbols load as modules load\n")
            return
        for mod in module_list():
            self.load(mod)

    def load(self, mod):
        name = mod["name"].string()
        path = self.modules.find(name)
        if path is None:
            gdb.write("kdf: no {}.ko found for module {} (lx-symbols-runtime DIR adds a directory)\n".format(name, name))
            return
        sects = sections(mod)
        text = text_address(mod, sects)
        if name in self.loaded:
            gdb.execute("remove-symbol-file -a {:#x}".format(self.loaded.pop(name)), to_string=True)
        args = ["add-symbol-file", quote(path), "{:#x}".format(text)]
        for sect, address in sorted(sects.items()):
            if sect != ".text" and address != 0:
                args += ["-s", sect, "{:#x}".format(address)]
        gdb.execute(" ".join(args), to_string=True)
        self.loaded[name] = text
        gdb.write("kdf: loaded the symbols of {} from {}\n".format(name, path))


def quote(path):
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def setup(files, dirs, orders):
    """Called by kdf's init file with the run's module files and directories."""
    LxSymbolsRuntime(Modules(files, dirs, orders))
