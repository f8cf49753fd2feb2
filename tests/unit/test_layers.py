"""The layers of docs/architecture.md, checked on the source with `ast`.

Pure packages (config, layout, render, commands, facts, diagnose) turn values
into values: they import no module that reaches a machine (processes,
sockets, SSH, the filesystem), none of the layers above them, and call
nothing that touches a file. Every import counts, at module level or inside a
function (an import in a function body is still a dependency; it only runs
later). And no module of garrison/ may take part in an import cycle.

The checks read source only; nothing is imported. Each one has a twin that
feeds it a small violating source, so a checker that stopped seeing anything
could not pass unnoticed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "garrison"

PURE = ("garrison.config", "garrison.layout", "garrison.render", "garrison.commands", "garrison.facts", "garrison.diagnose")
# What a pure module may import from Garrison: the other pure layers and the error types.
PURE_MAY_IMPORT = (*PURE, "garrison.errors")

# Modules whose whole purpose is to reach outside the process. Pure code handles host
# paths as strings with posixpath (pure string functions), so `os` and `pathlib`'s
# concrete paths have no place in it either.
IO_MODULES = (
    "subprocess", "socket", "asyncssh", "paramiko", "os", "shutil", "tempfile", "glob", "fcntl", "pwd", "grp",
    "signal", "select", "selectors", "pty", "mmap", "http", "urllib", "ssl", "requests", "ftplib", "smtplib",
    "multiprocessing", "threading", "asyncio", "importlib", "pkgutil", "sqlite3", "dbm", "shelve", "webbrowser",
)
# pathlib's pure classes do no I/O; Path and its concrete kin do.
PURE_PATHLIB = ("PurePath", "PurePosixPath", "PureWindowsPath")

# Methods of pathlib.Path (or anything file-like) that touch the filesystem. Names that
# are also common pure methods (str.replace, re.Match.group, …) cannot be told apart
# by syntax and are left out: the import rules above already keep Path itself out.
FILE_METHODS = frozenset({
    "read_text", "read_bytes", "write_text", "write_bytes", "open", "exists", "iterdir", "glob", "rglob", "walk",
    "stat", "lstat", "is_file", "is_dir", "is_symlink", "is_socket", "is_fifo", "is_mount", "mkdir", "rmdir",
    "unlink", "touch", "chmod", "lchmod", "symlink_to", "hardlink_to", "readlink", "resolve", "absolute",
    "expanduser", "samefile", "cwd", "home",
})
# os.path / posixpath functions that look at the filesystem (posixpath's string functions are fine).
PATH_IO_FUNCTIONS = frozenset({
    "exists", "lexists", "isfile", "isdir", "islink", "ismount", "isjunction", "getsize", "getmtime", "getatime",
    "getctime", "realpath", "abspath", "samefile", "expanduser", "expandvars",
})
# Builtins that do I/O. (print would write to a stream: output is the CLI's job.)
IO_BUILTINS = frozenset({"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint"})
# Loaders that read templates from disk.
FILE_LOADERS = frozenset({"PackageLoader", "FileSystemLoader", "ModuleLoader"})

# (file relative to garrison/, what) → why it is allowed. An entry that matches
# nothing any more fails the test, so this list only shrinks with the code.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("render/__init__.py", "jinja2.PackageLoader"): (
        "the templates are Garrison's own package data, read-only and the same on every machine: "
        "part of the code, not state of a host or of the user's folder; rendering stays a function "
        "of (Config, Layout)"
    ),
}


@dataclass(frozen=True)
class Found:
    file: str  # relative to garrison/
    line: int
    what: str  # e.g. "subprocess", "garrison.hosts", "open()", "Path.read_text", "jinja2.PackageLoader"
    why: str

    def __str__(self) -> str:
        return f"garrison/{self.file}:{self.line}: {self.what} ({self.why})"


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def sources() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield module_name(path), path


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def in_layer(module: str, layers: tuple[str, ...]) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def imports(tree: ast.AST, module: str, package: bool) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, imported module, names taken from it) for every import in tree, function bodies included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # A relative import: resolve it against this module's package.
                base = module.split(".") if package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, tuple(alias.name for alias in node.names)


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def impurities(source: str, file: str, module: str, package: bool = False) -> list[Found]:
    """What in a pure module's source reaches outside the process or up the layers."""
    tree = ast.parse(source, filename=file)
    found: list[Found] = []
    for line, target, names in imports(tree, module, package):
        top = target.split(".")[0]
        if in_layer(target, IO_MODULES):
            found.append(Found(file, line, target, "I/O module"))
        elif top == "pathlib" and (not names or any(n not in PURE_PATHLIB for n in names)):
            concrete = [n for n in names if n not in PURE_PATHLIB]
            found.append(Found(file, line, ".".join(["pathlib", *concrete[:1]]), "touches files"))
        elif top == "garrison":
            # `from garrison import hosts` names a module too.
            targets = [f"{target}.{n}" for n in names] if target == "garrison" and names else [target]
            for t in targets:
                if not in_layer(t, PURE_MAY_IMPORT):
                    found.append(Found(file, line, t, "not a pure layer"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = dotted(func)
        if isinstance(func, ast.Name) and func.id in IO_BUILTINS:
            found.append(Found(file, node.lineno, f"{func.id}()", "I/O builtin"))
        elif isinstance(func, ast.Attribute) and name and name.rsplit(".", 1)[0] in ("os.path", "posixpath", "ntpath") \
                and func.attr in PATH_IO_FUNCTIONS:
            found.append(Found(file, node.lineno, name, "touches files"))
        elif isinstance(func, ast.Attribute) and func.attr in FILE_LOADERS:
            found.append(Found(file, node.lineno, name or func.attr, "reads files"))
        elif isinstance(func, ast.Attribute) and func.attr in FILE_METHODS:
            found.append(Found(file, node.lineno, f"{name or '….' + func.attr}()", "touches files"))
        elif isinstance(func, ast.Name) and func.id in FILE_LOADERS:
            found.append(Found(file, node.lineno, func.id, "reads files"))
    return found


def pure_sources() -> Iterator[tuple[str, Path]]:
    for module, path in sources():
        if in_layer(module, PURE):
            yield module, path


def test_the_pure_layers_are_found() -> None:
    # Guards the walk: with no files found, the layering test would pass vacuously.
    found = {m for m, _ in pure_sources()}
    assert {"garrison.config", "garrison.config.model", "garrison.layout", "garrison.render", "garrison.commands",
            "garrison.facts", "garrison.facts.doctor", "garrison.diagnose", "garrison.diagnose.rules"} <= found


def test_pure_layers_do_no_io_and_import_nothing_above_them() -> None:
    seen: set[tuple[str, str]] = set()
    bad = []
    for module, path in pure_sources():
        file = str(path.relative_to(PACKAGE))
        for f in impurities(path.read_text(encoding="utf-8"), file, module, is_package(path)):
            if (f.file, f.what) in EXCEPTIONS:
                seen.add((f.file, f.what))
            else:
                bad.append(str(f))
    assert not bad, "pure layers reaching outside the process or up the layers:\n" + "\n".join(bad)
    stale = [f"{file}: {what}" for file, what in EXCEPTIONS if (file, what) not in seen]
    assert not stale, "exceptions that match nothing any more (remove them): " + ", ".join(stale)


VIOLATIONS = {
    "import subprocess": "subprocess",
    "import socket as s": "socket",
    "def f():\n    import asyncssh": "asyncssh",
    "from os import listdir": "os",
    "import os.path": "os.path",
    "from pathlib import Path": "pathlib.Path",
    "from garrison.hosts import Executor": "garrison.hosts",
    "def f():\n    from garrison.workflows.up import Up": "garrison.workflows.up",
    "from garrison import cli": "garrison.cli",
    "from garrison.steps import slot": "garrison.steps",
    "from garrison.project import find_project": "garrison.project",
    "from .. import hosts": "garrison.hosts",
    "def f(p):\n    return open(p).read()": "open()",
    "def f(p):\n    return p.read_text()": "p.read_text()",
    "def f(p):\n    return p.parent.exists()": "p.parent.exists()",
    "def f(Path, p):\n    return Path(p).is_dir()": "….is_dir()",
    "def f(p):\n    return [c for c in p.iterdir()]": "p.iterdir()",
    "def f(path):\n    return path.stat().st_mode": "path.stat()",
    "import posixpath\ndef f(p):\n    return posixpath.isfile(p)": "posixpath.isfile",
    "def f(os):\n    return os.path.exists('/x')": "os.path.exists",
    "import jinja2\nL = jinja2.FileSystemLoader('/tmp')": "jinja2.FileSystemLoader",
    "def f():\n    print('hi')": "print()",
}


@pytest.mark.parametrize("source", list(VIOLATIONS))
def test_the_layering_check_sees_each_kind_of_violation(source: str) -> None:
    found = impurities(source, "facts/x.py", "garrison.facts.x")
    assert VIOLATIONS[source] in [f.what for f in found], found


def test_the_layering_check_allows_pure_code() -> None:
    source = (
        "import posixpath, re, json\nfrom pathlib import PurePosixPath\nfrom garrison.config import Config\n"
        "from garrison.errors import ConfigError\nfrom garrison import layout\n"
        "def f(p, m):\n    return posixpath.join(p, 'x').replace('a', 'b') + m.group(1) + str(PurePosixPath(p).name)\n"
    )
    assert impurities(source, "facts/x.py", "garrison.facts.x") == []


# ---- import cycles ----------------------------------------------------------------------------

# Cycles that exist today, hidden in function bodies (issue 12). TODO(lead): remove once
# the step refactor lands; an entry that is no longer a cycle fails the test, so it
# cannot outlive the cycle.
KNOWN_CYCLES: dict[frozenset[str], str] = {
}


def import_graph(files: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """module → {module it imports: line}, for modules among `files` (name → (source, is package))."""
    graph: dict[str, dict[str, int]] = {m: {} for m in files}
    for module, (source, package) in files.items():
        for line, target, names in imports(ast.parse(source), module, package):
            # `from a import b` imports the module a.b when there is one, else takes a name from a.
            candidates = [f"{target}.{n}" for n in names if f"{target}.{n}" in files] if names else []
            for t in candidates or ([target] if target in files else []):
                if t != module:
                    graph[module].setdefault(t, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Each strongly connected group of modules, as one cycle through it: [a, b, …, a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(g)) for g in groups]


def _one_cycle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return paths[v] + [start]
                if w in group and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {group}")


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + f" -> {cycle[-1]}"


def garrison_files() -> dict[str, tuple[str, bool]]:
    return {m: (p.read_text(encoding="utf-8"), is_package(p)) for m, p in sources()}


def test_no_import_cycles_in_garrison() -> None:
    graph = import_graph(garrison_files())
    assert len(graph) > 25 and sum(len(e) for e in graph.values()) > 50  # the graph was really built
    found = cycles(graph)
    new = [describe(graph, c) for c in found if frozenset(c) not in KNOWN_CYCLES]
    assert not new, "import cycles (function-level imports included):\n" + "\n".join(new)
    gone = [" <-> ".join(sorted(k)) for k in KNOWN_CYCLES if k not in {frozenset(c) for c in found}]
    assert not gone, "these cycles are gone: remove them from KNOWN_CYCLES: " + "; ".join(gone)


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    files = {
        "garrison.a": ("from garrison.b import x\n", False),
        "garrison.b": ("x = 1\ndef f():\n    from garrison import c\n", False),
        "garrison.c": ("import garrison.a\n", False),
        "garrison.d": ("from garrison import a\n", False),  # imports into the cycle, not part of it
        "garrison.p": ("from garrison.p import sub\n", True),  # a package importing its own submodule
        "garrison.p.sub": ("from garrison.p import helper\n", False),  # … which takes a name from it
    }
    graph = import_graph(files)
    found = cycles(graph)
    assert [frozenset(c) for c in found] == [frozenset({"garrison.a", "garrison.b", "garrison.c"}), frozenset({"garrison.p", "garrison.p.sub"})]
    assert describe(graph, found[0]) == "garrison.a (line 1) -> garrison.b (line 3) -> garrison.c (line 1) -> garrison.a"
    assert cycles(import_graph({k: v for k, v in files.items() if k != "garrison.c"})) == [["garrison.p", "garrison.p.sub", "garrison.p"]]


def test_argv_is_built_in_commands_or_facts_not_inline() -> None:
    """`host.run((...))` with a literal argv outside commands/ and facts/ fails: argv lives there,
    where unit tests compare the tuples."""
    inline = []
    for path in sorted((REPO / "garrison").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        # hosts/ runs them; source.py asks git on the deploying machine, not a host.
        if rel.startswith(("garrison/commands/", "garrison/facts/", "garrison/hosts/")) or rel == "garrison/source.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                    and node.args and isinstance(node.args[0], ast.Tuple | ast.List)):
                inline.append(f"{rel}:{node.lineno}")
    assert inline == [], "argv built inline (move it to garrison/commands/ or facts/): " + ", ".join(inline)
