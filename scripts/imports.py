#!/usr/bin/env python3
"""The import graph between the source files of a crate, and its cycles.

    scripts/imports.py [--list] CRATE_SRC...     (e.g. kleened/src klee/src)

Every path a file names (`use` statements and paths written in code: `crate::a::b`, `super::x`,
`self::y`, and a child module's name) is resolved to the file that defines the item: the
deepest module file the path reaches, then through that file's `pub use` re-exports to the file
the item comes from. Declaring a child module (`mod x;`) and re-exporting an item (`pub use`) are
not imports. A child naming its parent's items (`super::Engine` in `engine/exec/mod.rs`) is
counted apart: a folder is one module whose children see its private items, so such names are
the module's inside and do not count towards a cycle. Test code (`#[cfg(test)]` modules and files only tests reach) is left out: it
may look at anything.

Prints the number of files and imports, every cycle (strongly connected group of files), the
same for the crate's top-level modules (a cycle there is a module importing from one that
imports it, so neither is below the other), and exits 1 when there is a cycle. `--list` also prints each file's imports.
"""

import os
import re
import sys

USE = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
PATH = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def strip_tests(text):
    """The text without `#[cfg(test)]` items (a module, a function, a `use`) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    marker = re.compile(r"#\[cfg\(test\)\]")
    while True:
        m = marker.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        j = m.end()
        # The item ends at its `;` or at the brace that closes its body.
        depth, k = 0, j
        while k < len(text):
            c = text[k]
            if c == ";" and depth == 0:
                k += 1
                break
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
            k += 1
        i = k


def expand(tree):
    """`a::{b, c::{d, e}}` as the paths it names: ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [re.sub(r"as[A-Za-z_0-9]+$", "", tree.split(" as ")[0])]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += c == "{"
        depth -= c == "}"
        cur += c
    parts.append(cur)
    paths = []
    for part in filter(None, parts):
        for p in expand(part):
            paths.append(prefix + p if p != "self" else prefix.rstrip(":"))
    return paths


class Crate:
    def __init__(self, src):
        self.src = src.rstrip("/")
        self.files = {}  # module path (tuple) -> file
        self.modules = {}  # file -> module path
        root = "lib.rs" if os.path.exists(f"{self.src}/lib.rs") else "main.rs"
        self.walk((), f"{self.src}/{root}")

    def walk(self, module, path):
        self.files[module] = path
        self.modules[path] = module
        text = strip_tests(open(path).read())
        here = os.path.dirname(path)
        base = os.path.basename(path)
        folder = here if base in ("mod.rs", "lib.rs", "main.rs") else path[:-3]
        for name in MOD.findall(text):
            for candidate in (f"{folder}/{name}.rs", f"{folder}/{name}/mod.rs"):
                if os.path.exists(candidate):
                    self.walk(module + (name,), candidate)
                    break

    def absolute(self, module, path):
        """A `crate::`/`super::`/`self::`/child path of `module` as an absolute tuple."""
        parts = path.split("::")
        if parts[0] == "crate":
            return tuple(parts[1:])
        current = list(module)
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                current.pop()
        return tuple(current + parts)

    def reexports(self, module):
        """Names the file of `module` re-exports: name -> the absolute path it comes from."""
        text = strip_tests(open(self.files[module]).read())
        found = {}
        for vis, tree in USE.findall(text):
            if not vis:
                continue
            for p in expand(tree):
                first = p.split("::")[0]
                if first not in ("crate", "super", "self") and module + (first,) in self.files:
                    p = "self::" + p
                if not p.startswith(("crate", "super", "self")):
                    continue
                found[p.split("::")[-1]] = self.absolute(module, p)
        return found

    def resolve(self, target, seen=()):
        """The file defining `target` (an absolute path), through re-exports."""
        for n in range(len(target), -1, -1):
            module = target[:n]
            if module in self.files:
                rest = target[n:]
                if rest and module not in seen:
                    via = self.reexports(module).get(rest[0])
                    if via and via != target:
                        return self.resolve(via + rest[1:], seen + (module,))
                return self.files[module]
        return None

    def imports(self, path):
        module = self.modules[path]
        text = strip_tests(open(path).read())
        names = set()
        for vis, tree in USE.findall(text):
            if vis:
                # A re-export presents an item; whoever names it is resolved to where it is.
                continue
            for p in expand(tree):
                first = p.split("::")[0]
                if first not in ("crate", "super", "self") and module + (first,) in self.files:
                    p = "self::" + p
                if p.startswith(("crate", "super", "self")):
                    names.add(p)
        names.update(PATH.findall(USE.sub(lambda m: "" if m.group(1) else m.group(0), text)))
        targets, inside = set(), set()
        for name in names:
            target = self.absolute(module, name)
            file = self.resolve(target)
            if not file or file == path:
                continue
            # A child naming its parent's items is the module's inside (a folder is one module:
            # its children see its private items); only the other imports can make a cycle.
            if self.modules[file] == module[: len(self.modules[file])]:
                inside.add(file)
            else:
                targets.add(file)
        return targets, inside


def cycles(graph):
    """Strongly connected groups of more than one file (Tarjan)."""
    index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return groups


def main(args):
    listing = "--list" in args
    srcs = [a for a in args if a != "--list"]
    if not srcs:
        print(__doc__.strip())
        return 2
    found = 0
    for src in srcs:
        crate = Crate(src)
        both = {path: crate.imports(path) for path in crate.modules}
        graph = {path: targets for path, (targets, _) in both.items()}
        edges = sum(len(t) for t in graph.values())
        inside = sum(len(i) for _, i in both.values())
        groups = cycles(graph)
        print(
            f"{src}: {len(graph)} files, {edges} imports between them (and {inside} of a child "
            f"naming its parent's items), {len(groups)} cycles"
        )
        if listing:
            for path in sorted(graph):
                print(f"  {path}")
                for target in sorted(graph[path]):
                    print(f"    -> {target}")
        # The same graph between the crate's top-level modules (its folders and top files).
        room = lambda f: "::".join(crate.modules[f][:1]) or "(crate root)"
        rooms = {}
        for a, targets in graph.items():
            for b in targets:
                if room(a) != room(b):
                    rooms.setdefault(room(a), set()).add(room(b))
        room_groups = cycles(rooms)
        print(
            f"  between its {len(set(map(room, graph)))} top-level modules: "
            f"{sum(len(t) for t in rooms.values())} imports, {len(room_groups)} cycles"
        )
        for group in room_groups:
            print(f"  cycle of modules: {' <-> '.join(group)}")
        groups += room_groups
        for group in groups:
            if not group[0].endswith(".rs"):
                continue
            print(f"  cycle: {' <-> '.join(group)}")
            for a in group:
                for b in sorted(graph[a] & set(group)):
                    print(f"    {a} -> {b}")
        found += len(groups)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
