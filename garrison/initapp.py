"""`garrison init`: find an app's WSGI entry point and write its garrison.toml.

This module owns the detection behind `garrison init` and nothing else:

* `scan` and `render_toml` are pure: they take file contents and return a
  `Detection` / TOML text, so every rule is unit-tested with in-memory dicts.
  User code is only *parsed* with `ast`; it is never imported or executed
  (importing an app runs its side effects: database connections, env lookups).
* `read_app_folder` and `run_init` are the thin I/O shell around them: read
  the few candidate files, write garrison.toml.

What is detected, in order of preference:

1. files: wsgi.py, app.py, main.py at the top of the folder, then each
   top-level package (alphabetically) via <pkg>/wsgi.py, <pkg>/app.py,
   <pkg>/__init__.py;
2. in a file: a module-level app object `NAME = Flask(...)` (or
   `flask.Flask(...)`, or an imported alias), else a module-level
   `def create_app(...)` factory, entered as `module:create_app()`.
"""

from __future__ import annotations

import ast
import os
import posixpath
import re
import tempfile
import tomllib
import warnings
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from garrison.config.model import RESERVED_NAMES
from garrison.errors import ConfigError, DetectError

__all__ = [
    "NOT_FOUND",
    "PACKAGE_FILES",
    "TOP_LEVEL_FILES",
    "Detection",
    "normalise_name",
    "read_app_folder",
    "render_toml",
    "run_init",
    "scan",
]

# Candidate modules at the top of the app folder, most specific first: a
# wsgi.py exists precisely to be the server's entry point.
TOP_LEVEL_FILES = ("wsgi.py", "app.py", "main.py")
# Candidate modules inside each top-level package, same reasoning.
PACKAGE_FILES = ("wsgi.py", "app.py", "__init__.py")
OTHER_FILES = ("requirements.txt", "pyproject.toml")

FACTORY = "create_app"
MAX_NAME = 32

NOT_FOUND = (
    "no WSGI app found: looked for a Flask app object or a create_app() factory in "
    "wsgi.py, app.py, main.py and packages; write garrison.toml by hand with "
    '[app] name = "..." and entry = "module:callable"'
)

# Folders that never hold the app's own code (virtualenvs, VCS, caches).
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})
# Candidate files are small; anything bigger is not an app module worth parsing.
MAX_READ = 1 << 20


@dataclass(frozen=True)
class Detection:
    """What `scan` found in an app folder (paths relative to it, POSIX style)."""

    name: str
    entry: str | None
    static: tuple[tuple[str, str], ...] = ()  # (url prefix, folder)
    requirements: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Found:
    """A WSGI entry point found in one module."""

    file: str
    module: str
    attr: str
    factory: bool
    flask_call: ast.Call | None  # the Flask(...) call, for its static_* keywords
    note: str


# --------------------------------------------------------------------------
# pure part


def scan(files: Mapping[str, str], dirs: Set[str] = frozenset(), folder_name: str = "app") -> Detection:
    """Detect name, entry point, static folders and requirements of an app.

    `files` maps relative POSIX paths of the candidate files (see
    `read_app_folder`) to their text; `dirs` holds the relative paths of the
    top-level folders and of the folders directly inside each package
    (e.g. {"static", "mypkg", "mypkg/static"}); `folder_name` is the app
    folder's own name, the fallback for the app name.
    """
    notes: list[str] = []
    pyproject = _parse_pyproject(files.get("pyproject.toml"), notes)

    found: _Found | None = None
    for path in _candidate_modules(files):
        found = _scan_module(path, files[path], notes)
        if found is not None:
            break
    if found is not None:
        notes.append(found.note)

    name = _app_name(pyproject, folder_name, notes)
    static = _static(found, dirs, notes) if found is not None else ()
    requirements = _requirements(files, pyproject, notes)
    if isinstance(pyproject.get("tool"), dict) and "garrison" in pyproject["tool"]:
        notes.append("pyproject.toml also has [tool.garrison]; garrison.toml takes precedence over it")

    return Detection(
        name=name,
        entry=None if found is None else f"{found.module}:{found.attr}{'()' if found.factory else ''}",
        static=static,
        requirements=requirements,
        notes=tuple(notes),
    )


def _candidate_modules(files: Mapping[str, str]) -> Iterable[str]:
    """Candidate module paths present in `files`, in order of preference."""
    for f in TOP_LEVEL_FILES:
        if f in files:
            yield f
    packages = sorted(
        {p.parts[0] for p in map(PurePosixPath, files) if len(p.parts) == 2 and p.parts[0].isidentifier()}
    )
    for pkg in packages:
        # Without __init__.py the folder is not a regular package: its modules
        # would not import as pkg.module from the app root.
        if f"{pkg}/__init__.py" not in files:
            continue
        for f in PACKAGE_FILES:
            path = f"{pkg}/{f}"
            if path in files:
                yield path


def _module_name(path: str) -> str:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _scan_module(path: str, source: str, notes: list[str]) -> _Found | None:
    """The app object (preferred) or the factory defined at module level."""
    try:
        with warnings.catch_warnings():
            # The user's invalid escapes etc. are not ours to report.
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError) as exc:  # ValueError: NUL bytes
        line = getattr(exc, "lineno", None)
        notes.append(f"skipped {path}: cannot be parsed as Python" + (f" (line {line})" if line else ""))
        return None

    class_names, module_names = _flask_aliases(tree)
    module = _module_name(path)
    factory: _Found | None = None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.FunctionDef) and node.name == FACTORY and factory is None:
            note = f"found app factory `{FACTORY}()` in {path}"
            if _required_args(node.args):
                # gunicorn calls it with exactly what entry spells out.
                note += f" (it takes required arguments: add them to entry, e.g. {module}:{FACTORY}('prod'))"
            factory = _Found(path, module, FACTORY, True, _first_flask_call(node, class_names, module_names), note)
            continue
        else:
            continue
        if isinstance(value, ast.Call) and _is_flask(value.func, class_names, module_names):
            # `app = application = Flask(...)`: the first plain name is the entry.
            for target in targets:
                if isinstance(target, ast.Name):
                    return _Found(path, module, target.id, False, value, f"found Flask app `{target.id}` in {path}")
    return factory


def _flask_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to flask.Flask and to the flask module by the imports."""
    # The plain spellings count even without a visible import (star imports,
    # re-exports), as the detection rules promise.
    class_names, module_names = {"Flask"}, {"flask"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "flask" and node.level == 0:
            class_names.update(a.asname or a.name for a in node.names if a.name == "Flask")
        elif isinstance(node, ast.Import):
            module_names.update(a.asname for a in node.names if a.name == "flask" and a.asname)
    return class_names, module_names


def _is_flask(func: ast.expr, class_names: set[str], module_names: set[str]) -> bool:
    if isinstance(func, ast.Name):
        return func.id in class_names
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "Flask"
        and isinstance(func.value, ast.Name)
        and func.value.id in module_names
    )


def _first_flask_call(fn: ast.FunctionDef, class_names: set[str], module_names: set[str]) -> ast.Call | None:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and _is_flask(node.func, class_names, module_names):
            return node
    return None


def _required_args(args: ast.arguments) -> bool:
    positional = args.posonlyargs + args.args
    kw_required = any(d is None for d in args.kw_defaults)
    return len(positional) > len(args.defaults) or kw_required


# Markers for a keyword argument of Flask(...): not given / not a literal.
_ABSENT: Any = object()
_DYNAMIC: Any = object()


def _keyword(call: ast.Call | None, name: str) -> Any:
    """A keyword argument's literal value, or _ABSENT / _DYNAMIC."""
    for kw in call.keywords if call is not None else ():
        if kw.arg == name:
            try:
                return ast.literal_eval(kw.value)
            except (ValueError, TypeError, RecursionError):
                return _DYNAMIC
    return _ABSENT


def _static(found: _Found, dirs: Set[str], notes: list[str]) -> tuple[tuple[str, str], ...]:
    """The static folder nginx should serve, following Flask's own defaults.

    Flask resolves static_folder against the folder of the module (or package)
    that creates the app, and serves it at "/" + the folder's basename unless
    static_url_path says otherwise.
    """
    base = PurePosixPath(found.file).parent
    folder = _keyword(found.flask_call, "static_folder")
    url = _keyword(found.flask_call, "static_url_path")
    if folder is None:
        notes.append(f"no static folder: static_folder=None in {found.file}")
        return ()
    if url is None:  # Flask's default, spelled out
        url = _ABSENT
    if not all(v is _ABSENT or isinstance(v, str) for v in (folder, url)):
        notes.append(f"static_folder/static_url_path in {found.file} are computed; assumed Flask's defaults")
        folder = url = _ABSENT

    if folder is _ABSENT:
        folder = "static"
        # A package app may also keep its assets next to the package, at the root.
        candidates = [str(base / folder)] + (["static"] if base != PurePosixPath(".") else [])
    else:
        candidates = [posixpath.normpath(str(base / folder))]
    path = next((c for c in candidates if c in dirs), None)
    if path is None:
        notes.append(f"no static folder: {candidates[0]}/ does not exist")
        return ()
    url = "/" + (PurePosixPath(folder).name if url is _ABSENT else url).strip("/") + "/"
    if url == "//":
        # Static files at the site root would shadow every app route in nginx.
        notes.append(f"static files of {path}/ are served at / by Flask; not handed to nginx")
        return ()
    notes.append(f"static files: {path}/ served by nginx at {url}")
    return ((url, path),)


def _parse_pyproject(text: str | None, notes: list[str]) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        notes.append(f"ignored pyproject.toml: not valid TOML ({exc})")
        return {}


def _project_table(pyproject: Mapping[str, Any]) -> Mapping[str, Any]:
    project = pyproject.get("project")
    return project if isinstance(project, dict) else {}


def _requirements(files: Mapping[str, str], pyproject: Mapping[str, Any], notes: list[str]) -> str | None:
    if "requirements.txt" in files:
        notes.append("dependencies: requirements.txt")
        return "requirements.txt"
    deps = _project_table(pyproject).get("dependencies")
    if isinstance(deps, list) and deps:
        notes.append("dependencies: [project] dependencies of pyproject.toml")
        return "pyproject.toml"
    notes.append("dependencies: none found (no requirements.txt, no [project] dependencies)")
    return None


def normalise_name(raw: str) -> str:
    """A valid Unix user / service name from any string ("My App!" -> "my_app_")."""
    name = re.sub(r"[^a-z0-9_-]", "_", raw.strip().lower())
    if not name:
        return "app"
    if not re.match(r"[a-z_]", name[0]):
        # A leading digit or "-" is not allowed by useradd; keep the rest.
        name = "_" + name if name[0].isdigit() else "_" + name[1:]
    return name[:MAX_NAME]


def _app_name(pyproject: Mapping[str, Any], folder_name: str, notes: list[str]) -> str:
    raw = _project_table(pyproject).get("name")
    source = "the [project] name of pyproject.toml"
    if not isinstance(raw, str) or not raw.strip():
        raw, source = folder_name, "the folder name"
    name = normalise_name(raw)
    if name in RESERVED_NAMES:
        # e.g. a folder called "nginx": the name would collide with a system user.
        name = f"{name}_app"
    notes.append(f"name `{name}` from {source}" + ("" if name == raw else f" ({raw!r})"))
    return name


def _toml_str(value: str) -> str:
    """A TOML basic string (escapes quotes, backslashes and control characters)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    # Notes can quote user-controlled names; a newline would end the comment.
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


def _line(assignment: str, comment: str) -> str:
    """`key = value` with its comment aligned, as in the documented example."""
    return f"{assignment:<28} # {comment}" if comment else assignment


def render_toml(d: Detection) -> str:
    """The commented garrison.toml for a detection (raises DetectError without an entry)."""
    if d.entry is None:
        raise DetectError(NOT_FOUND)
    lines = [
        "# garrison.toml, written by `garrison init`. Edit freely; `garrison init --force` rewrites it.",
        "# What was detected:",
        *(f"#   - {_comment(n)}" for n in d.notes),
        "# docs/garrison.example.toml lists every key with its default.",
        "",
        "[app]",
        _line(f"name = {_toml_str(d.name)}", "required: Unix user and service name"),
        _line(f"entry = {_toml_str(d.entry)}", "required: WSGI entry, module:callable (or module:factory())"),
        _line('root = "."', "app folder, relative to this file"),
        _line(f"requirements = {_toml_str(d.requirements or '')}", 'or "pyproject.toml", or "" for none'),
        _line('health_path = "/"', "path that must answer 2xx once deployed"),
    ]
    for i, (url, path) in enumerate(d.static):
        lines += [
            "",
            _line("[[app.static]]", "one table per static folder served by nginx itself" if i == 0 else ""),
            f"url = {_toml_str(url)}",
            f"path = {_toml_str(path)}",
        ]
    lines += [
        "",
        "[server]",
        _line('names = ["localhost"]', "nginx server_name values"),
        "port = 80",
        _line("# default = false", "true: this site answers requests for unknown hosts (default_server)"),
        _line(f"# user = {_toml_str(d.name)}", "app user (default: the app name)"),
        _line(f"# base = {_toml_str('/srv/' + d.name)}", "where releases live"),
        "",
        "[gunicorn]",
        _line('# worker_class = "gevent"', "sync | gthread | gevent"),
        _line('# workers = "auto"', "2 x CPU + 1, computed on the host"),
        "# timeout = 30",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# I/O part


def _skipped(entry: os.DirEntry[str]) -> bool:
    return entry.name.startswith(".") or entry.name in SKIP_DIRS or not entry.is_dir()


def _subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if not _skipped(e))


def _read(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(MAX_READ).decode("utf-8", errors="replace")
    except OSError as exc:
        raise DetectError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def read_app_folder(root: Path) -> tuple[dict[str, str], set[str]]:
    """Read the candidate files of an app folder, and list its folders.

    Returns (files, dirs) as `scan` expects them: files maps relative POSIX
    paths to text for the top-level candidates and, for each top-level
    package, its candidate modules; dirs holds every top-level folder and the
    folders directly inside packages. Hidden folders, virtualenvs, caches and
    node_modules are skipped.
    """
    root = Path(root)
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for name in TOP_LEVEL_FILES + OTHER_FILES:
        if (root / name).is_file():
            files[name] = _read(root / name)
    for d in _subdirs(root):
        dirs.add(d)
        if not d.isidentifier() or not (root / d / "__init__.py").is_file():
            continue
        for name in PACKAGE_FILES:
            if (root / d / name).is_file():
                files[f"{d}/{name}"] = _read(root / d / name)
        dirs.update(f"{d}/{sub}" for sub in _subdirs(root / d))
    return files, dirs


def run_init(folder: Path, force: bool = False) -> tuple[Path, Detection]:
    """Detect the app in `folder` and write folder/garrison.toml.

    Raises ConfigError if garrison.toml exists and not `force`, DetectError if
    no entry point is found (nothing is written then).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DetectError(f"{folder}: not a folder; run `garrison init` in the app's folder")
    target = folder / "garrison.toml"
    if target.exists() and not force:
        raise ConfigError("garrison.toml: already exists; pass --force to overwrite it")
    files, dirs = read_app_folder(folder)
    detection = scan(files, dirs, folder.resolve().name)
    text = render_toml(detection)  # raises DetectError when no entry was found
    # Write then rename: an interrupted init never leaves half a config behind.
    fd, tmp = tempfile.mkstemp(prefix=".garrison.toml.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the config is not secret
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, detection
