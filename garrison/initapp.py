"""`garrison init`: find an app's WSGI or ASGI entry point and write its garrison.toml.

This module owns the detection behind `garrison init` and nothing else:

* `scan` and `render_toml` are pure: they take file contents and return a
  `Detection` / TOML text, so every rule is unit-tested with in-memory dicts.
  User code is only *parsed* with `ast`; it is never imported or executed
  (importing an app runs its side effects: database connections, env lookups).
* `read_app_folder` and `run_init` are the thin I/O shell around them: read
  the few candidate files (and the ones `wanted_files` asks for), write
  garrison.toml.

What is detected, in order of preference:

1. Django: a manage.py that sets DJANGO_SETTINGS_MODULE. The settings module
   production uses (DJANGO_SETTINGS_MODULE of the env file given to init, else
   the `settings` argument, else manage.py's default), followed through star
   and named imports and guarded `try: from .local import *` (when that file
   ships), gives the entry (WSGI_APPLICATION, else
   <settings package>.wsgi:application), the static folder (STATIC_URL served
   by nginx from STATIC_ROOT), the server names (ALLOWED_HOSTS), the release
   hook (collectstatic, migrate), and the data a release must not hold
   (SQLite files, MEDIA_ROOT). ROOT_URLCONF picks the health path. A value
   that can't be read statically is reported with its file and line.
2. Otherwise files: wsgi.py, asgi.py, app.py, main.py at the top of the
   folder, then each top-level package (alphabetically) via <pkg>/wsgi.py,
   <pkg>/asgi.py, <pkg>/app.py, <pkg>/main.py, <pkg>/__init__.py;
3. in a file: a module-level app object `NAME = Flask(...)` (WSGI), or
   `NAME = FastAPI(...)` / `Starlette(...)` / `Litestar(...)` / `Quart(...)` /
   `get_asgi_application()` ... (ASGI: gunicorn runs it with uvicorn workers),
   spelled plainly, as `module.Class(...)` or through an imported alias; an
   app class of another ASGI package, and a method called on such an object
   (`app = Framework([...]).app()`), count as ASGI too; else a module-level
   `def create_app(...)` factory, entered as `module:create_app()` (ASGI when
   the framework class it calls is). Flask/Quart static folders follow
   Flask's defaults; ASGI apps' `StaticFiles(directory=...)` mounts are handed
   to nginx. A Flask app's init-db-style CLI command becomes the
   `first_deploy` hook. When nothing is found, the refusal names the keys to
   write by hand: `entry` and, for ASGI, `worker_class = "uvicorn"`.
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
from typing import Any, NamedTuple

from pydantic import BaseModel

from garrison import source
from garrison.config.model import HOSTNAME_RE, RESERVED_NAMES, Gunicorn
from garrison.errors import ConfigError, DetectError

__all__ = [
    "DJANGO_RELEASE_HOOK",
    "NOT_FOUND",
    "not_found_message",
    "PACKAGE_FILES",
    "TOP_LEVEL_FILES",
    "Detection",
    "SettingsChoice",
    "choose_settings",
    "django_settings_module",
    "env_file_value",
    "normalise_name",
    "read_app_folder",
    "render_toml",
    "run_init",
    "scan",
    "wanted_files",
]

# Candidate modules at the top of the app folder, most specific first: a
# wsgi.py / asgi.py exists precisely to be the server's entry point.
TOP_LEVEL_FILES = ("wsgi.py", "asgi.py", "app.py", "main.py")
# Candidate modules inside each top-level package, same reasoning (FastAPI's
# "bigger applications" layout keeps the app in <pkg>/main.py).
PACKAGE_FILES = ("wsgi.py", "asgi.py", "app.py", "main.py", "__init__.py")
OTHER_FILES = ("requirements.txt", "pyproject.toml", "manage.py", "Procfile")
# Where queue workers are usually defined (read only to find them, never as the web app).
WORKER_FILES = ("celery.py", "tasks.py", "worker.py", "huey_app.py")

FACTORY = "create_app"
MAX_NAME = 32
DEFAULT_SERVER_NAMES = ("localhost",)

DJANGO_RELEASE_HOOK = "python manage.py collectstatic --noinput && python manage.py migrate --noinput"
# With no STATIC_ROOT in the settings (a fresh startproject), collectstatic gets one for its own
# run only: the folder nginx serves, in the release (settings are lazy until first read).
DJANGO_COLLECT_INTO = (
    "python manage.py shell -c \"import os; from django.conf import settings; settings.STATIC_ROOT = os.path.abspath('{path}'); "
    "from django.core.management import call_command; call_command('collectstatic', interactive=False, verbosity=0)\""
    " && python manage.py migrate --noinput"
)
DJANGO_MIGRATE_HOOK = "python manage.py migrate --noinput"
SETTINGS_VAR = "DJANGO_SETTINGS_MODULE"

NOT_FOUND = (
    "no app found: looked for a Django manage.py, an app object (Flask, FastAPI, Starlette, Litestar, Quart, Sanic, "
    "Django's get_asgi_application()...) or a create_app() factory in wsgi.py, asgi.py, app.py, main.py and packages; "
    "write garrison.toml by hand with [app] name = \"...\" and:"
)
ENTRY_HELP = '  [app] entry = "module:attr"  (the object the server calls, e.g. "main:app", or a factory "mypkg:create_app()")'
ASGI_HELP = '  [gunicorn] worker_class = "uvicorn"  (for an ASGI app: without it gunicorn serves it as WSGI and it fails to boot)'

# [gunicorn] keys shown commented out, with the model's default and help, in the
# garrison.toml init writes (worker_class too, unless init sets it).
GUNICORN_SHOWN = ("workers", "threads", "timeout")

# Folders that never hold the app's own code (virtualenvs, VCS, caches).
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})
# Candidate files are small; anything bigger is not an app module worth parsing.
MAX_READ = 1 << 20
# Settings modules star-importing each other: how deep `from .base import *` is followed.
MAX_SETTINGS_DEPTH = 4


@dataclass(frozen=True)
class _Framework:
    label: str
    asgi: bool  # served by gunicorn's uvicorn worker
    flask_static: bool  # static_folder/static_url_path defaults as Flask's
    # The bare class name counts even without a visible import (star imports,
    # re-exports); only for names no other library is likely to use ("App" is not one).
    plain: bool = True


# Qualified names of the classes (and functions) whose call makes the app object.
FRAMEWORKS: dict[str, _Framework] = {
    "flask.Flask": _Framework("Flask", asgi=False, flask_static=True),
    "quart.Quart": _Framework("Quart", asgi=True, flask_static=True),
    "fastapi.FastAPI": _Framework("FastAPI", asgi=True, flask_static=False),
    "starlette.applications.Starlette": _Framework("Starlette", asgi=True, flask_static=False),
    "litestar.Litestar": _Framework("Litestar", asgi=True, flask_static=False),
    "starlite.Starlite": _Framework("Starlite", asgi=True, flask_static=False),
    "sanic.Sanic": _Framework("Sanic", asgi=True, flask_static=False),
    "django.core.asgi.get_asgi_application": _Framework("Django", asgi=True, flask_static=False),
    "django.core.wsgi.get_wsgi_application": _Framework("Django", asgi=False, flask_static=False),
    "falcon.asgi.App": _Framework("Falcon", asgi=True, flask_static=False, plain=False),
    "falcon.App": _Framework("Falcon", asgi=False, flask_static=False, plain=False),
    "channels.routing.ProtocolTypeRouter": _Framework("Channels", asgi=True, flask_static=False),
}
# Packages whose app class is an ASGI app: `app = App(...)` or `app = Thing([...]).app()`
# with the class imported from one of them is ASGI even when the class is not listed above.
ASGI_PACKAGES = frozenset({
    "starlette", "fastapi", "litestar", "starlite", "quart", "sanic", "blacksheep", "esmerald", "lilya",
    "xpresso", "emmett", "emmett55", "muffin", "responder", "panther", "channels", "shiny", "socketio",
})
# Target or class names that say "this is the application" for such a generic call:
# `router = APIRouter()` in the same module must not become the entry.
APP_NAMES = frozenset({"app", "application", "asgi_app", "api"})
APP_CLASSES = frozenset({"App", "Application", "ASGIApp"})


@dataclass(frozen=True)
class Detection:
    """What `scan` found in an app folder (paths relative to it, POSIX style)."""

    name: str
    entry: str | None
    static: tuple[tuple[str, str], ...] = ()  # (url prefix, folder)
    requirements: str | None = None
    notes: tuple[str, ...] = ()
    worker_class: str | None = None  # "uvicorn" for ASGI apps; None: gunicorn's configured default
    release_hook: str | None = None
    first_deploy_hook: str | None = None  # a data initialiser (flask init-db): once per app, never on every release
    server_names: tuple[str, ...] = DEFAULT_SERVER_NAMES
    health_path: str = "/"
    framework: str | None = None  # "Django", "Flask", "FastAPI", ...
    asgi_hints: tuple[str, ...] = ()  # no entry found: "main.py imports litestar" (an ASGI framework)
    # Django: the settings module read, and the app's data that a release must not hold
    # (for persistence across deploys): SQLite files and MEDIA_ROOT, relative to the app root.
    settings_module: str | None = None
    sqlite_paths: tuple[str, ...] = ()
    media_root: str | None = None
    persist: tuple[str, ...] = ()  # what the app writes, kept across releases ([app] persist)
    new_requirements: str | None = None  # requirements.txt that init writes (a startproject has none)
    processes: tuple[tuple[str, str], ...] = ()  # (name, command): queue workers, from a Procfile or the code


@dataclass(frozen=True)
class _Found:
    """An entry point found in one module."""

    file: str
    module: str
    attr: str
    factory: bool
    app_call: ast.Call | None  # the Flask(...)/FastAPI(...) call, for its static_* keywords
    framework: _Framework | None  # None: a create_app() whose framework was not seen
    note: str
    mounts: tuple[tuple[str, str], ...] = ()  # StaticFiles mounts: (url, directory)
    websocket: bool = False  # the module declares a WebSocket endpoint


# --------------------------------------------------------------------------
# pure part


def scan(
    files: Mapping[str, str],
    dirs: Set[str] = frozenset(),
    folder_name: str = "app",
    *,
    settings: str | None = None,
    env_file: tuple[str, str] | None = None,
    shipped: Set[str] | None = None,
) -> Detection:
    """Detect name, entry point, static folders and requirements of an app.

    `files` maps relative POSIX paths of the candidate files (see
    `read_app_folder`) to their text; `dirs` holds the relative paths of the
    top-level folders and of the folders directly inside each package
    (e.g. {"static", "mypkg", "mypkg/static"}); `folder_name` is the app
    folder's own name, the fallback for the app name.

    Django only: `settings` is the settings module production uses (else
    manage.py's default); `env_file` is (name, text) of the env file the app
    will get on the server, whose DJANGO_SETTINGS_MODULE wins over both;
    `shipped` is the set of files a release contains (None: every file), so
    that a gitignored settings/local.py is not taken for production's.
    """
    notes: list[str] = []
    hints: tuple[str, ...] = ()
    first_deploy: str | None = None
    pyproject = _parse_pyproject(files.get("pyproject.toml"), notes)
    name = _app_name(pyproject, folder_name, notes)

    entry: str | None
    framework: str | None
    django = _scan_django(files, name, notes, choose_settings(files, settings, env_file, notes), shipped)
    if django is not None:
        entry, static, hook, server_names, health = django.entry, django.static, django.hook, django.names, django.health
        framework, worker_class = "Django", None
    else:
        found: _Found | None = None
        for path in _candidate_modules(files):
            found = _scan_module(path, files[path], notes)
            if found is not None:
                break
        if found is None:
            hints = tuple(_asgi_imports(files))
        if found is not None:
            notes.append(found.note)
        entry = None if found is None else f"{found.module}:{found.attr}{'()' if found.factory else ''}"
        static = _static(found, dirs, notes) if found is not None else ()
        framework = found.framework.label if found is not None and found.framework else None
        asgi = found is not None and found.framework is not None and found.framework.asgi
        worker_class = "uvicorn" if asgi else None
        if asgi:
            notes.append("ASGI app: gunicorn runs it with uvicorn workers (worker_class = \"uvicorn\")")
        hook, server_names, health = None, DEFAULT_SERVER_NAMES, "/"
        if found is not None and found.framework is not None and found.framework.label == "Flask":
            first_deploy = _flask_data_command(files, found, notes)

    requirements = _requirements(files, pyproject, notes)
    new_requirements = None
    if django is not None and requirements is None:
        version = _generated_by_django(files)
        if version:
            # A fresh startproject has no requirements at all; the version that generated it is
            # the one it was written for. init writes this file (and says so), nothing else.
            new_requirements, requirements = f"django=={version}\n", "requirements.txt"
            notes.append(f"requirements.txt written: django=={version}, the version that generated the project")
        else:
            notes.append("a Django project needs at least `django` in requirements.txt: the host's venv is built from it")
    if django is None and found is not None and found.websocket and worker_class == "uvicorn":
        _websocket_note(files, requirements, notes)
    if isinstance(pyproject.get("tool"), dict) and "garrison" in pyproject["tool"]:
        notes.append("pyproject.toml also has [tool.garrison]; garrison.toml takes precedence over it")

    persist = _persist(files, framework, django, notes)
    processes, procfile_release = _processes(files, requirements, notes)
    if procfile_release and not hook:
        hook = procfile_release
        notes.append(f"release hook from the Procfile: `{hook}`")
    return Detection(
        processes=processes,
        persist=persist,
        new_requirements=new_requirements,
        name=name,
        entry=entry,
        static=static,
        requirements=requirements,
        notes=tuple(dict.fromkeys(notes)),  # a settings file is reached by several imports: one note each
        worker_class=worker_class,
        asgi_hints=hints,
        release_hook=hook,
        first_deploy_hook=first_deploy,
        server_names=server_names,
        health_path=health,
        framework=framework,
        settings_module=django.settings if django else None,
        sqlite_paths=django.sqlite_paths if django else (),
        media_root=django.media_root if django else None,
    )


_CELERY_APP = re.compile(r"^(\w+)\s*=\s*Celery\(", re.M)
_HUEY_APP = re.compile(r"^(\w+)\s*=\s*(?:Redis|Sqlite|Memory|Priority\w*)?Huey\(", re.M)


def _module_of(path: str) -> str:
    return path[:-3].replace("/", ".").removesuffix(".__init__")


def _processes(files: Mapping[str, str], requirements: str | None,
               notes: list[str]) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Queue workers: a Procfile's entries (its `release:` becomes the release hook), else the
    Celery, Huey, Dramatiq or RQ worker the code or requirements show."""
    if "Procfile" in files:
        found, release = [], None
        for line in files["Procfile"].splitlines():
            name, sep, command = line.partition(":")
            name, command = name.strip(), command.strip()
            if not sep or not command or line.lstrip().startswith("#"):
                continue
            if name == "web":
                notes.append(f"Procfile web: `{command}`: Garrison runs the web server itself (gunicorn, [app] entry)")
            elif name == "release":
                release = command
            elif re.fullmatch(r"[a-z][a-z0-9_-]*", name):
                found.append((name, command))
        if found:
            notes.append("processes from the Procfile: " + ", ".join(n for n, _ in found))
        return tuple(found), release
    py = {p: t for p, t in files.items() if p.endswith(".py")}
    for path, text in py.items():
        if (m := _CELERY_APP.search(text)) and "celery" in text:
            cmd = f"celery -A {_module_of(path)}:{m.group(1)} worker --loglevel=INFO"
            notes.append(f"Celery app `{m.group(1)}` in {path}: [processes.worker] runs `{cmd}` (set its broker with garrison env set)")
            return (("worker", cmd),), None
        if (m := _HUEY_APP.search(text)) and "huey" in text:
            cmd = f"huey_consumer {_module_of(path)}.{m.group(1)}"
            notes.append(f"Huey instance `{m.group(1)}` in {path}: [processes.worker] runs `{cmd}`")
            return (("worker", cmd),), None
        if re.search(r"^\s*@(?:dramatiq\.)?actor\b", text, re.M) and "dramatiq" in text:
            cmd = f"dramatiq {_module_of(path)}"
            notes.append(f"Dramatiq actors in {path}: [processes.worker] runs `{cmd}`")
            return (("worker", cmd),), None
    reqs = files.get(requirements or "", "") + files.get("pyproject.toml", "")
    if re.search(r"(?im)^\s*\"?rq\b(?![-_])", reqs) and any("Queue(" in t for t in py.values()):
        cmd = "rq worker --url $REDIS_URL"
        notes.append(f"RQ queues in the code: [processes.worker] runs `{cmd}`; set REDIS_URL with garrison env set")
        return (("worker", cmd),), None
    return (), None


_INSTANCE_USE = re.compile(r"\binstance_path\b|instance_relative_config\s*=\s*True")


def _persist(files: Mapping[str, str], framework: str | None, django: Any, notes: list[str]) -> tuple[str, ...]:
    """What the app writes and must keep across releases: Flask's instance folder (where
    flaskr keeps its SQLite file), Django's SQLite files and MEDIA_ROOT inside the app."""
    found: list[str] = []
    if framework == "Flask" and any(_INSTANCE_USE.search(text) for path, text in files.items() if path.endswith(".py")):
        # Not installed as a package, Flask's instance folder is "instance" beside the app's module.
        found.append("instance")
        notes.append('Flask instance folder: kept across releases ([app] persist = ["instance"])')
    if django is not None:
        found += [*django.sqlite_paths, *([django.media_root] if django.media_root else [])]
        if django.sqlite_paths or django.media_root:
            notes.append(f"Django data kept across releases: [app] persist = [{', '.join(_toml_str(p) for p in found)}]")
    # Nested paths collapse into their folder (persist paths must not nest).
    kept = [p for p in dict.fromkeys(found) if not any(p != q and p.startswith(q + "/") for q in found)]
    return tuple(kept)


def _asgi_imports(files: Mapping[str, str]) -> Iterable[str]:
    """"main.py imports litestar" for each candidate module importing an ASGI framework."""
    for path in _candidate_modules(files):
        tree = _parse(path, files[path], None)
        tops = set()
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops.add(node.module.split(".", 1)[0])
            elif isinstance(node, ast.Import):
                tops.update(a.name.split(".", 1)[0] for a in node.names)
        for top in sorted(tops & ASGI_PACKAGES):
            yield f"{path} imports {top}"


def not_found_message(d: Detection) -> str:
    """The refusal when no entry point was found: what to write by hand, one line per key."""
    asgi = ASGI_HELP
    if d.asgi_hints:
        asgi += f"; this looks like an ASGI app: {', '.join(d.asgi_hints)}"
    return "\n".join((NOT_FOUND, ENTRY_HELP, asgi))


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


def _parse(path: str, source: str, notes: list[str] | None) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            # The user's invalid escapes etc. are not ours to report.
            warnings.simplefilter("ignore")
            return ast.parse(source, filename=path)
    except (SyntaxError, ValueError, RecursionError) as exc:  # ValueError: NUL bytes
        if notes is not None:
            line = getattr(exc, "lineno", None)
            notes.append(f"skipped {path}: cannot be parsed as Python" + (f" (line {line})" if line else ""))
        return None


def _scan_module(path: str, source: str, notes: list[str]) -> _Found | None:
    """The app object (preferred) or the factory defined at module level."""
    tree = _parse(path, source, notes)
    if tree is None:
        return None
    aliases = _import_aliases(tree)
    module = _module_name(path)
    mounts, websocket = _asgi_extras(tree, aliases), _has_websocket(tree, aliases)
    factory: _Found | None = None
    generic: _Found | None = None
    objects: dict[str, tuple[ast.Call, _Framework]] = {}  # names bound to objects of ASGI packages
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == FACTORY and factory is None:
            call, fw = _first_app_call(node, aliases)
            note = f"found {fw.label + ' ' if fw else ''}app factory `{FACTORY}()` in {path}"
            if _required_args(node.args):
                # gunicorn calls it with exactly what entry spells out.
                note += f" (it takes required arguments: add them to entry, e.g. {module}:{FACTORY}('prod'))"
            factory = _Found(path, module, FACTORY, True, call, fw, note, mounts, websocket)
            continue
        else:
            continue
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            continue
        made = _app_call(value, aliases, names)
        if made is None and isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            # `server = Framework([...])` then `app = server.app()`: the method's result is the app.
            owner = value.func.value.id if isinstance(value.func.value, ast.Name) else None
            if owner in objects:
                call, fw = objects[owner]
                made = call, fw, f" (the result of `{owner}.{value.func.attr}()`, a {fw.label} object)"
        if isinstance(value, ast.Call) and (fw := _generic_asgi(value, aliases, names, method=True)) is not None:
            objects.update({n: (value, fw) for n in names})
        if made is not None:
            call, fw, how = made
            # `app = application = Flask(...)`: the first plain name is the entry.
            found = _Found(
                path, module, names[0], False, call, fw, f"found {fw.label} app `{names[0]}` in {path}{how}", mounts, websocket
            )
            if fw in FRAMEWORKS.values() or how:
                return found
            # An app class of an ASGI package init does not know: a later `app = obj.app()` wins.
            generic = generic or found
    return generic or factory


def _app_call(value: ast.expr, aliases: Mapping[str, str], names: list[str]) -> tuple[ast.Call, _Framework, str] | None:
    """The framework call that makes a module-level app object, with how it was recognised.

    `Flask(...)`, `FastAPI(...)`, `get_asgi_application()`: a listed framework.
    `Thing([...]).app()`: a method called on an ASGI framework's object; what it
    returns is taken as the ASGI app (for WSGI frameworks such a call is usually
    something else: `Flask(...).test_client()`).
    `App(...)` imported from an ASGI package not listed: ASGI, when the class or
    the target says it is the application.
    """
    if not isinstance(value, ast.Call):
        return None
    fw = _framework(value, aliases)
    if fw is not None:
        return value, fw, ""
    if isinstance(value.func, ast.Attribute) and isinstance(value.func.value, ast.Call):
        inner = value.func.value
        fw = _framework(inner, aliases) or _generic_asgi(inner, aliases, names, method=True)
        if fw is not None and fw.asgi:
            return inner, fw, f" (the result of `.{value.func.attr}()` on a {fw.label} object)"
        return None
    fw = _generic_asgi(value, aliases, names, method=False)
    return (value, fw, "") if fw is not None else None


def _generic_asgi(call: ast.Call, aliases: Mapping[str, str], names: list[str], method: bool) -> _Framework | None:
    qual = _qualified(call.func, aliases) or ""
    package, _, cls = qual.rpartition(".")
    top = package.split(".", 1)[0]
    if top not in ASGI_PACKAGES or not cls[:1].isupper():
        return None
    if not (method or cls in APP_CLASSES or any(n in APP_NAMES for n in names)):
        return None
    return _Framework(f"{top} ({cls})", asgi=True, flask_static=False)


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> qualified name, from the module's imports.

    The plain spellings (Flask, FastAPI, flask, fastapi...) count even without a
    visible import (star imports, re-exports), as the detection rules promise.
    """
    aliases: dict[str, str] = {}
    for qual, fw in FRAMEWORKS.items():
        if fw.plain:
            aliases[qual.rsplit(".", 1)[1]] = qual
        top = qual.split(".", 1)[0]
        aliases[top] = top
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:  # `import starlette.applications` binds `starlette`
                    top = a.name.split(".", 1)[0]
                    aliases[top] = top
    return aliases


def _dotted(expr: ast.expr) -> str | None:
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


def _qualified(expr: ast.expr, aliases: Mapping[str, str]) -> str | None:
    dotted = _dotted(expr)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    head = aliases.get(head, head)
    return f"{head}.{rest}" if rest else head


def _framework(call: ast.Call, aliases: Mapping[str, str]) -> _Framework | None:
    return FRAMEWORKS.get(_qualified(call.func, aliases) or "")


def _first_app_call(fn: ast.AST, aliases: Mapping[str, str]) -> tuple[ast.Call | None, _Framework | None]:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            fw = _framework(node, aliases)
            if fw is not None:
                return node, fw
    return None, None


def _is_static_files(node: ast.AST, aliases: Mapping[str, str]) -> str | None:
    """The literal directory of a `StaticFiles(directory="...")` call, else None."""
    if not isinstance(node, ast.Call):
        return None
    qual = _qualified(node.func, aliases) or ""
    if qual.rsplit(".", 1)[-1] != "StaticFiles":
        return None
    value: ast.expr | None = node.args[0] if node.args else None
    for kw in node.keywords:
        if kw.arg == "directory":
            value = kw.value
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    return None


def _asgi_extras(tree: ast.Module, aliases: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """`app.mount("/static", StaticFiles(directory="static"))` and
    `Mount("/static", app=StaticFiles(directory="static"))`: (url, directory)."""
    mounts = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_mount_method = isinstance(func, ast.Attribute) and func.attr == "mount"
        is_mount_route = (_qualified(func, aliases) or "").rsplit(".", 1)[-1] == "Mount"
        if not (is_mount_method or is_mount_route) or not node.args:
            continue
        url = node.args[0]
        if not (isinstance(url, ast.Constant) and isinstance(url.value, str)):
            continue
        target = node.args[1] if len(node.args) > 1 else None
        for kw in node.keywords:
            if kw.arg == "app":
                target = kw.value
        directory = _is_static_files(target, aliases) if target is not None else None
        if directory is not None:
            mounts.append((url.value, directory))
    return tuple(mounts)


def _has_websocket(tree: ast.Module, aliases: Mapping[str, str]) -> bool:
    """`@app.websocket("/ws")`, `WebSocketRoute(...)` or `add_websocket_route(...)` anywhere."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("websocket", "websocket_route", "add_websocket_route"):
            return True
        if isinstance(node, ast.Call) and (_qualified(node.func, aliases) or "").endswith("WebSocketRoute"):
            return True
    return False


def _websocket_note(files: Mapping[str, str], requirements: str | None, notes: list[str]) -> None:
    text = files.get(requirements or "", "").lower()
    if not re.search(r"^\s*(websockets|wsproto|uvicorn\[[^\]]*standard)", text, re.M):
        notes.append(
            "the app has WebSocket endpoints: uvicorn needs `websockets` (or `wsproto`) in the requirements "
            "to accept them; without it upgrades get 404"
        )


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
    """The static folders nginx should serve."""
    if found.framework is not None and not found.framework.flask_static:
        return _mounted_static(found, dirs, notes)
    return _flask_static(found, dirs, notes)


def _mounted_static(found: _Found, dirs: Set[str], notes: list[str]) -> tuple[tuple[str, str], ...]:
    """StaticFiles mounts of an ASGI app: the directory is relative to the working
    directory, which is the release (the app root) under gunicorn."""
    out: list[tuple[str, str]] = []
    for url, directory in found.mounts:
        path = posixpath.normpath(directory)
        url = "/" + url.strip("/") + "/"
        if path.startswith("/") or path == ".." or path.startswith("../"):
            notes.append(f"static mount {url} serves {directory}, outside the app folder: left to the app")
        elif url == "//":
            notes.append(f"static files of {path}/ are mounted at /: left to the app")
        elif path not in dirs:
            notes.append(f"static mount {url}: {path}/ does not exist; left to the app")
        elif url not in {u for u, _ in out}:
            notes.append(f"static files: {path}/ (mounted at {url}) served by nginx at {url}")
            out.append((url, path))
    return tuple(out)


def _flask_static(found: _Found, dirs: Set[str], notes: list[str]) -> tuple[tuple[str, str], ...]:
    """The static folder nginx should serve, following Flask's own defaults.

    Flask resolves static_folder against the folder of the module (or package)
    that creates the app, and serves it at "/" + the folder's basename unless
    static_url_path says otherwise.
    """
    base = PurePosixPath(found.file).parent
    folder = _keyword(found.app_call, "static_folder")
    url = _keyword(found.app_call, "static_url_path")
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


# --------------------------------------------------------------------------
# Django (pure): settings are read with ast, a small evaluator follows the
# usual spellings of paths (BASE_DIR / "x", os.path.join(BASE_DIR, "x")).
#
# Which settings: the ones production runs with. DJANGO_SETTINGS_MODULE from
# the env file given to init (what `garrison env set` puts in the process
# environment wins over manage.py's and wsgi.py's setdefault), else the module
# named with `settings`, else manage.py's default. A settings package
# (base.py, dev.py, production.py, each ending in `try: from .local import *`)
# is followed through its star imports, in the order Python runs them.

MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Last parts of a settings module name that say "not for production".
DEV_SETTINGS = frozenset({"dev", "development", "devel", "local", "test", "tests", "testing", "settings_dev"})
PROD_SETTINGS = ("production", "prod", "live", "deploy")
# Exceptions a guarded import catches when the module does not exist.
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def django_settings_module(manage_py: str) -> str | None:
    """The settings module manage.py sets: os.environ.setdefault("DJANGO_SETTINGS_MODULE", "x.settings")."""
    tree = _parse("manage.py", manage_py, None)
    if tree is None:
        return None
    for node in ast.walk(tree):
        value: ast.expr | None = None
        if isinstance(node, ast.Call) and len(node.args) >= 2 and _const_str(node.args[0]) == SETTINGS_VAR:
            if isinstance(node.func, ast.Attribute) and node.func.attr == "setdefault":
                value = node.args[1]
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]  # os.environ["DJANGO_SETTINGS_MODULE"] = "x.settings"
            if isinstance(t, ast.Subscript) and _const_str(t.slice) == SETTINGS_VAR:
                value = node.value
        module = _const_str(value) if value is not None else None
        if module and MODULE_RE.fullmatch(module):
            return module
    return None


def env_file_value(text: str, key: str) -> str | None:
    """KEY's value in a .env-style text (KEY=value, `export KEY=value`, quoted or not, # comments); last one wins."""
    value = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, rest = line.partition("=")
        if not sep or name.strip() != key:
            continue
        rest = rest.strip()
        if rest[:1] in ("'", '"') and rest[1:].find(rest[0]) >= 0:
            value = rest[1 : 1 + rest[1:].find(rest[0])]
        else:
            value = rest.split(" #", 1)[0].strip()
    return value


@dataclass(frozen=True)
class SettingsChoice:
    """Which settings module init reads, and why (see the section comment above)."""

    module: str | None
    source: str  # "the env file .env.production", "--settings", "manage.py's default"
    default: str | None  # manage.py's default


def choose_settings(
    files: Mapping[str, str], settings: str | None = None, env_file: tuple[str, str] | None = None,
    notes: list[str] | None = None,
) -> SettingsChoice:
    """The settings module production uses: env file, else `settings`, else manage.py's default."""
    notes = [] if notes is None else notes
    default = django_settings_module(files.get("manage.py", ""))
    if settings is not None and not MODULE_RE.fullmatch(settings):
        notes.append(f"--settings {settings!r} is not a dotted module name (e.g. mysite.settings.production): ignored")
        settings = None
    if env_file is not None:
        name, text = env_file
        value = env_file_value(text, SETTINGS_VAR)
        if value is not None and MODULE_RE.fullmatch(value):
            if settings is not None and settings != value:
                notes.append(f"--settings {settings} ignored: {name} sets {SETTINGS_VAR}={value}, which production uses")
            return SettingsChoice(value, f"{SETTINGS_VAR} in {name}", default)
        if value is not None:
            notes.append(f"{name}: {SETTINGS_VAR}={value!r} is not a dotted module name: ignored")
    if settings is not None:
        return SettingsChoice(settings, "--settings", default)
    return SettingsChoice(default, "manage.py's default", default)


def _settings_advice(files: Mapping[str, str], choice: SettingsChoice, notes: list[str]) -> None:
    """Say when production may run other settings than the ones init read."""
    module = choice.module or ""
    if choice.source == "--settings" and module != choice.default:
        # manage.py and wsgi.py only setdefault(): the server's environment decides.
        notes.append(
            f"production must run {module} too: `garrison env set {SETTINGS_VAR}={module}` "
            f"(manage.py defaults to {choice.default})"
        )
    if choice.source != "manage.py's default" or module.rpartition(".")[2] not in DEV_SETTINGS:
        return
    package = module.rpartition(".")[0]
    prod = next((f"{package}.{p}" for p in PROD_SETTINGS if _module_file(files, f"{package}.{p}")), None)
    hint = f"`garrison init --settings {prod}`" if prod else "`garrison init --settings MODULE`"
    notes.append(
        f"settings {module} (manage.py's default) look like development settings; if production uses others, run "
        f"{hint} and set them on the server with `garrison env set {SETTINGS_VAR}=...`"
    )


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _module_paths(module: str) -> tuple[str, str]:
    base = module.replace(".", "/")
    return f"{base}.py", f"{base}/__init__.py"


def _module_file(files: Mapping[str, str], module: str) -> str | None:
    return next((p for p in _module_paths(module) if p in files), None)


def _import_base(path: str, node: ast.ImportFrom) -> str:
    """The dotted module an ImportFrom reads from, relative imports resolved against `path`'s package."""
    if node.level == 0:
        return node.module or ""
    package = _module_name(path) if path.endswith("/__init__.py") else _module_name(path).rpartition(".")[0]
    parts = package.split(".") if package else []
    parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
    return ".".join(parts + ([node.module] if node.module else []))


def _settings_imports(path: str, tree: ast.Module) -> list[str]:
    """Modules a settings file imports from (`from .base import *`, also inside try/if), as dotted names."""
    return [m for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and (m := _import_base(path, node))]


class _Bind(NamedTuple):
    """Where a setting got its value: the expression (None when it can't be
    followed statically: bound in an if/for/try, `+=`), the file and line."""

    expr: ast.expr | None
    file: str
    line: int
    # The names of the module that assigned it: BASE_DIR in base.py's expressions is
    # base.py's, also when production.py imports only STATIC_ROOT from it.
    scope: dict[str, _Bind] | None = None


_Env = dict[str, _Bind]


def _bind_path(bind: _Bind, env: _Env) -> str | None:
    """The path a setting's expression evaluates to, in the module that assigned it."""
    return _path_of(bind.expr, bind.file, bind.scope if bind.scope is not None else env)


class _Settings:
    """Module-level names of a settings module, run in the order Python runs them.

    `shipped`: the app files a release contains (None: all). A guarded
    `try: from .local import *` whose module is not shipped (.gitignore) runs
    its except branch, as it will on the server.
    """

    def __init__(self, files: Mapping[str, str], shipped: Set[str] | None, notes: list[str]) -> None:
        self.files, self.shipped, self.notes = files, shipped, notes
        self.cache: dict[str, _Env] = {}

    def module(self, module: str) -> str | None:
        path = _module_file(self.files, module)
        if path is not None and self.shipped is not None and path not in self.shipped:
            self.notes.append(f"{path} is not deployed (.gitignore): its settings are not what production runs")
            return None
        return path

    def env(self, path: str, stack: tuple[str, ...] = ()) -> _Env:
        if path in self.cache:
            return self.cache[path]
        env: _Env = {}
        tree = _parse(path, self.files[path], None)
        if tree is not None and len(stack) <= MAX_SETTINGS_DEPTH:
            self._run(tree.body, path, env, stack + (path,))
        self.cache[path] = env
        return env

    def _run(self, body: list[ast.stmt], path: str, env: _Env, stack: tuple[str, ...]) -> None:
        for node in body:
            if isinstance(node, ast.ImportFrom):
                self._import(node, path, env, stack)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    for name, whole in _targets(t):
                        env[name] = _Bind(node.value if whole else None, path, node.lineno, env)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                env[node.target.id] = _Bind(node.value, path, node.lineno, env)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                env[node.target.id] = _Bind(None, path, node.lineno)  # ALLOWED_HOSTS += [...]: no longer a literal
            elif isinstance(node, ast.Try) and _guarded_import(node):
                missing = [m for m in _imported_modules(node.body, path) if self._local(m) and self.module(m) is None]
                if missing:
                    handler = next(h for h in node.handlers if _catches_import_error(h))
                    self._run(handler.body, path, env, stack)
                else:
                    self._run(node.body + node.orelse, path, env, stack)
                self._run(node.finalbody, path, env, stack)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.Match)):
                self._unknown(node, path, env, stack)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                env[node.name] = _Bind(None, path, node.lineno)

    def _local(self, module: str) -> bool:
        """A module of the app's own packages (not django, not a library)."""
        top = module.split(".", 1)[0]
        return any(f.startswith(top + "/") or f == top + ".py" for f in self.files)

    def _import(self, node: ast.ImportFrom, path: str, env: _Env, stack: tuple[str, ...]) -> None:
        module = _import_base(path, node)
        other = self.module(module) if module else None
        if other is None or other in stack:
            if other is None and any(a.name == "*" for a in node.names) and self._local(module):
                self.notes.append(f"{path} line {node.lineno}: `from {'.' * node.level}{node.module or ''} import *` "
                                  "names a module init can't find: its settings are not read")
            return
        names = self.env(other, stack)
        if any(a.name == "*" for a in node.names):
            # A star import copies the public names (no __all__ in settings modules).
            env.update({k: v for k, v in names.items() if not k.startswith("_")})
        else:
            for a in node.names:
                if a.name in names:
                    env[a.asname or a.name] = names[a.name]

    def _unknown(self, node: ast.stmt, path: str, env: _Env, stack: tuple[str, ...]) -> None:
        """Names bound under a condition init doesn't evaluate (if DEBUG:, for, with): not literals."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                env[sub.id] = _Bind(None, path, sub.lineno)
            elif isinstance(sub, ast.ImportFrom) and any(a.name == "*" for a in sub.names):
                other = self.module(_import_base(path, sub))
                names = self.env(other, stack) if other is not None and other not in stack else {}
                for name in names or ("STATIC_ROOT", "STATIC_URL", "MEDIA_ROOT", "ALLOWED_HOSTS", "DEBUG", "DATABASES"):
                    env[name] = _Bind(None, path, sub.lineno)


def _targets(target: ast.expr) -> Iterable[tuple[str, bool]]:
    """Names an assignment target binds, and whether it gets the whole value (not `a, b = ...`)."""
    if isinstance(target, ast.Name):
        yield target.id, True
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            for name, _ in _targets(elt.value if isinstance(elt, ast.Starred) else elt):
                yield name, False


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any((_dotted(t) or "").rsplit(".", 1)[-1] in IMPORT_ERRORS for t in types)


def _guarded_import(node: ast.Try) -> bool:
    """`try: from .local import *  except ImportError: pass` and its spellings."""
    simple = all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)) for s in node.body)
    return simple and any(_catches_import_error(h) for h in node.handlers)


def _imported_modules(body: list[ast.stmt], path: str) -> list[str]:
    out = []
    for s in body:
        if isinstance(s, ast.ImportFrom):
            out.append(_import_base(path, s))
        elif isinstance(s, ast.Import):
            out += [a.name for a in s.names]
    return [m for m in out if m]


def _where(name: str, env: _Env, settings: str) -> str:
    """`mysite/settings/base.py line 12` for a setting, or the settings file when it is not set."""
    bind = env.get(name)
    return f"{bind.file} line {bind.line}" if bind is not None else settings


_UNKNOWN: Any = object()


def _literal(name: str, env: _Env, depth: int = 0) -> Any:
    """A setting's literal value (lists, strings, bools, dicts), _ABSENT or _UNKNOWN."""
    if name not in env:
        return _ABSENT
    expr, scope = env[name].expr, env[name].scope
    if expr is None:
        return _UNKNOWN
    if isinstance(expr, ast.Name) and depth < 5:
        return _literal(expr.id, scope if scope is not None else env, depth + 1)
    try:
        return ast.literal_eval(expr)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return _UNKNOWN


def _path_of(expr: ast.expr | None, file: str, env: _Env, depth: int = 0) -> str | None:
    """A path expression as a POSIX path relative to the app root ("/..." when
    absolute), or None when it can't be known without running the code."""
    if expr is None or depth > 20:
        return None
    d = depth + 1
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        # A relative path resolves against the working directory: the release.
        return posixpath.normpath(expr.value) if expr.value else None
    if isinstance(expr, ast.Name):
        if expr.id == "__file__":
            return file
        if expr.id in env:
            bind = env[expr.id]
            return _path_of(bind.expr, bind.file, bind.scope if bind.scope is not None else env, d)
        return None
    if isinstance(expr, ast.Attribute) and expr.attr == "parent":
        inner = _path_of(expr.value, file, env, d)
        return None if inner is None else _parent(inner)
    if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Attribute) and expr.value.attr == "parents":
        inner = _path_of(expr.value.value, file, env, d)
        n = expr.slice.value if isinstance(expr.slice, ast.Constant) and isinstance(expr.slice.value, int) else None
        if inner is None or n is None or n < 0:
            return None
        for _ in range(n + 1):
            inner = _parent(inner)
        return inner
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
        return _join(_path_of(expr.left, file, env, d), [expr.right], file, env, d)
    if isinstance(expr, ast.JoinedStr) and expr.values and isinstance(expr.values[0], ast.FormattedValue):
        # f"{BASE_DIR}/static"
        rest = expr.values[1:]
        if all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in rest):
            head = _path_of(expr.values[0].value, file, env, d)
            tail = "".join(v.value for v in rest).lstrip("/")  # type: ignore[attr-defined]
            return None if head is None else posixpath.normpath(posixpath.join(head, tail) if tail else head)
        return None
    if isinstance(expr, ast.Call):
        func = _dotted(expr.func) or ""
        last = func.rsplit(".", 1)[-1]
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in ("resolve", "absolute", "expanduser") and not expr.args:
            return _path_of(expr.func.value, file, env, d)
        if isinstance(expr.func, ast.Attribute) and expr.func.attr == "joinpath":
            return _join(_path_of(expr.func.value, file, env, d), expr.args, file, env, d)
        if last in ("str", "abspath", "realpath", "normpath", "fspath") and len(expr.args) == 1:
            return _path_of(expr.args[0], file, env, d)
        if last == "dirname" and len(expr.args) == 1:
            inner = _path_of(expr.args[0], file, env, d)
            return None if inner is None else _parent(inner)
        if (last == "join" and func.endswith("path.join")) or last in ("Path", "PurePath", "PosixPath"):
            if not expr.args:
                return None
            return _join(_path_of(expr.args[0], file, env, d), expr.args[1:], file, env, d)
        if func in ("os.environ.get", "environ.get", "os.getenv", "getenv") and len(expr.args) == 2:
            # os.environ.get("DATABASE_NAME", BASE_DIR / "db.sqlite3"): the default is what the
            # release gets unless `garrison env set` names another path.
            return _path_of(expr.args[1], file, env, d)
    return None


def _parent(path: str) -> str:
    return "/" if path == "/" else posixpath.normpath(posixpath.join(path, ".."))


def _join(head: str | None, parts: Iterable[ast.expr], file: str, env: _Env, depth: int) -> str | None:
    if head is None:
        return None
    for part in parts:
        value = _const_str(part)
        if value is None:
            value = _path_of(part, file, env, depth)
        if value is None:
            return None
        head = posixpath.join(head, value)  # an absolute part replaces the head, as in Python
    return posixpath.normpath(head)


def _inside(path: str) -> bool:
    return not (path.startswith("/") or path == ".." or path.startswith("../") or path == ".")


def _host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Django's validate_host: "*", an exact name, or ".example.com" (and subdomains)."""
    host = host.lower()
    for p in (p.lower() for p in patterns):
        if p == "*" or p == host or (p.startswith(".") and (host.endswith(p) or host == p[1:])):
            return True
    return False


@dataclass(frozen=True)
class _Django:
    entry: str
    static: tuple[tuple[str, str], ...]
    hook: str
    names: tuple[str, ...]
    health: str
    sqlite_paths: tuple[str, ...]
    media_root: str | None
    settings: str


def _scan_django(
    files: Mapping[str, str], name: str, notes: list[str], choice: SettingsChoice, shipped: Set[str] | None
) -> _Django | None:
    """Entry, static folder, release hook, server names, health path and data paths of a Django project, or None."""
    if "manage.py" not in files:
        return None
    module = choice.module
    if module is None:
        notes.append(f"manage.py does not set {SETTINGS_VAR}: not treated as a Django project")
        return None
    reader = _Settings(files, shipped, notes)
    settings = reader.module(module)
    env: _Env = reader.env(settings) if settings is not None else {}
    where = settings or f"{_module_paths(module)[0]} (not found)"
    package = module.rpartition(".")[0] or module

    # Entry: WSGI_APPLICATION = "mysite.wsgi.application" -> mysite.wsgi:application.
    wsgi = _literal("WSGI_APPLICATION", env)
    if isinstance(wsgi, str) and re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", wsgi):
        mod, _, attr = wsgi.rpartition(".")
        entry = f"{mod}:{attr}"
        source = "WSGI_APPLICATION"
    else:
        # Django's own default: what `startproject` writes next to the settings.
        entry = f"{package.split('.')[0]}.wsgi:application"
        source = "the startproject layout (WSGI_APPLICATION not found)"
    notes.append(f"found Django project: settings {module} ({where}, {choice.source}), entry {entry} from {source}")
    _settings_advice(files, choice, notes)

    # Static files: collectstatic copies them into STATIC_ROOT, nginx serves that at STATIC_URL.
    apps = _literal("INSTALLED_APPS", env)
    staticfiles = not isinstance(apps, (list, tuple)) or any(
        isinstance(a, str) and a.startswith("django.contrib.staticfiles") for a in apps
    )
    static: tuple[tuple[str, str], ...] = ()
    if staticfiles:
        static = _django_static(env, where, notes)
        hook = DJANGO_RELEASE_HOOK
        if static and ("STATIC_ROOT" not in env or _literal("STATIC_ROOT", env) in ("", None)):
            hook = DJANGO_COLLECT_INTO.format(path=static[0][1])
    else:
        notes.append("django.contrib.staticfiles is not in INSTALLED_APPS: no collectstatic, no static folder")
        hook = DJANGO_MIGRATE_HOOK
    notes.append(f"release hook: `{hook}` runs in each new release before it takes traffic")

    names = _django_hosts(env, where, notes)
    if _literal("DEBUG", env) is True:
        notes.append(
            f"DEBUG = True in {_where('DEBUG', env, where)}: set DEBUG = False in production (then Django needs "
            "ALLOWED_HOSTS and leaves static files to nginx)"
        )
    sqlite_paths = _django_sqlite(env, where, name, notes)
    media_root = _django_media(env, where, name, notes)
    health = _django_health(files, env, notes)
    return _Django(entry, static, hook, names, health, sqlite_paths, media_root, module)


def _django_static(env: _Env, where: str, notes: list[str]) -> tuple[tuple[str, str], ...]:
    url = _literal("STATIC_URL", env)
    if not isinstance(url, str) or not url.strip("/"):
        notes.append(
            f"STATIC_URL in {_where('STATIC_URL', env, where)} is not a literal path: no static folder for nginx; "
            "add [[app.static]] by hand"
        )
        return ()
    if re.match(r"^([a-z]+:)?//", url):
        notes.append(f"STATIC_URL = {url!r} is another server (a CDN): nginx serves no static folder")
        return ()
    url = "/" + url.strip("/") + "/"
    if "STATIC_ROOT" not in env or _literal("STATIC_ROOT", env) in ("", None):
        # Where `BASE_DIR / "staticfiles"` lands: usually the project root, next to manage.py.
        base = _path_of(ast.Name("BASE_DIR", ast.Load()), "", env)
        path = "staticfiles"
        if base is not None and (base == "." or _inside(base)):
            path = posixpath.normpath(posixpath.join(base, "staticfiles"))
        notes.append(
            f"STATIC_ROOT is not set in {where}: the release hook gives collectstatic {path}/ for its run, "
            f'and nginx serves that at {url} (or set STATIC_ROOT = BASE_DIR / "staticfiles" there)'
        )
        return ((url, path),)
    bind = env["STATIC_ROOT"]
    at = _where("STATIC_ROOT", env, where)
    folder = _bind_path(bind, env)
    if folder is None:
        notes.append(
            f"STATIC_ROOT in {at} is computed: no static folder for nginx; set it to a folder of the project "
            f'(STATIC_ROOT = BASE_DIR / "staticfiles") or add [[app.static]] by hand'
        )
        return ()
    if not _inside(folder):
        notes.append(
            f"STATIC_ROOT in {at} is {folder}, outside the app folder: nginx serves the release's files; "
            f'set STATIC_ROOT = BASE_DIR / "staticfiles"'
        )
        return ()
    notes.append(f"static files: collectstatic fills {folder}/ (STATIC_ROOT, {at}), served by nginx at {url} (STATIC_URL)")
    return ((url, folder),)


def _django_hosts(env: _Env, where: str, notes: list[str]) -> tuple[str, ...]:
    """Server names from ALLOWED_HOSTS, and a warning when Django would answer 400."""
    hosts = _literal("ALLOWED_HOSTS", env)
    at = _where("ALLOWED_HOSTS", env, where)
    fix = "add the [server] names to ALLOWED_HOSTS"
    if hosts is _ABSENT or hosts is _UNKNOWN or not isinstance(hosts, (list, tuple)):
        if hosts is _ABSENT:
            hosts = []
        else:
            notes.append(
                f"ALLOWED_HOSTS in {at} is computed: make sure it includes the [server] names, or Django answers "
                "400 Bad Request to them (and to garrison's health check)"
            )
            return DEFAULT_SERVER_NAMES
    patterns = [h for h in hosts if isinstance(h, str)]
    names: list[str] = []
    for h in patterns:
        candidate = h[1:] if h.startswith(".") else h
        if candidate != "*" and HOSTNAME_RE.match(candidate) and candidate not in names:
            names.append(candidate)
    if not patterns:
        notes.append(
            f"ALLOWED_HOSTS is empty in {at}: with DEBUG = False Django answers 400 Bad Request to every host, "
            f'including garrison\'s health check; {fix}, e.g. ALLOWED_HOSTS = ["{DEFAULT_SERVER_NAMES[0]}"]'
        )
        return DEFAULT_SERVER_NAMES
    if "*" in patterns:
        notes.append(f"ALLOWED_HOSTS in {at} accepts any Host ('*'): list your domain names instead")
    if not names:
        return DEFAULT_SERVER_NAMES
    uncovered = [n for n in names if not _host_allowed(n, patterns)]
    if uncovered:  # cannot happen for names taken from the patterns; kept as the rule's statement
        notes.append(f"ALLOWED_HOSTS does not cover {', '.join(uncovered)}: Django answers 400 Bad Request; {fix}")
    notes.append(f"server names {', '.join(names)} from ALLOWED_HOSTS ({at})")
    return tuple(names)


def _django_sqlite(env: _Env, where: str, name: str, notes: list[str]) -> tuple[str, ...]:
    """SQLite databases inside the release (paths relative to the app root), with a warning each.

    A release is replaced by every deploy and is not writable by the app: a
    database there loses its data. `garrison` can keep such files outside the
    release; until then the note says where to point NAME.
    """
    if "DATABASES" not in env:
        return ()
    bind = env["DATABASES"]
    at = _where("DATABASES", env, where)
    if not isinstance(bind.expr, ast.Dict):
        url = _sqlite_url_default(bind.expr, bind.file, bind.scope if bind.scope is not None else env) if bind.expr is not None else None
        if url is None:
            notes.append(f"DATABASES in {at} is computed: check that it is not an SQLite file inside the release")
            return ()
        db, how = url
        return _sqlite_in_release([db] if db is not None else [], at, name, notes, how)
    found: list[str] = []
    for key, value in zip(bind.expr.keys, bind.expr.values, strict=True):
        alias = _const_str(key) or "?"
        if isinstance(value, ast.Dict):
            fields = {_const_str(k): v for k, v in zip(value.keys, value.values, strict=True)}
            engine = _const_str(fields.get("ENGINE"))
            if engine is None:
                notes.append(f"DATABASES[{alias!r}] ENGINE in {at} is computed: check it is not SQLite inside the release")
                continue
            if not engine.endswith(("sqlite3", "spatialite")):
                continue
            db = _path_of(fields.get("NAME"), bind.file, bind.scope if bind.scope is not None else env)
            if db is None:
                notes.append(
                    f"DATABASES[{alias!r}] NAME in {at} is computed: if that SQLite file is inside the release, each "
                    f"deploy loses it; point it at /srv/{name}/shared/"
                )
                continue
            found.append(db)
        else:
            url = _sqlite_url_default(value, bind.file, bind.scope if bind.scope is not None else env)
            if url is not None and url[0] is not None:
                found.append(url[0])
            elif url is None:
                notes.append(f"DATABASES[{alias!r}] in {at} is computed: check that it is not an SQLite file inside the release")
    return _sqlite_in_release(found, at, name, notes, "")


def _sqlite_in_release(paths: list[str], at: str, name: str, notes: list[str], how: str) -> tuple[str, ...]:
    inside = tuple(dict.fromkeys(p for p in paths if _inside(p)))
    for db in inside:
        notes.append(
            f"the SQLite database {db} ({at}{how}) is in the app's folder: kept across releases in /srv/{name}/shared/ "
            f"([app] persist), so the app can write it and no deploy replaces it"
        )
    return inside


def _sqlite_url_default(expr: ast.expr, file: str, env: _Env) -> tuple[str | None, str] | None:
    """A database URL's SQLite default: dj_database_url.config(default="sqlite:///..."), env.db(default=...).

    (path or None when it is not SQLite, how it was found), or None when no URL is visible.
    """
    for node in ast.walk(expr):
        url: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "://" in node.value:
            url = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and _const_str(node.values[0]):
            head = _const_str(node.values[0]) or ""
            if head.startswith("sqlite:///"):
                # f"sqlite:///{BASE_DIR / 'db.sqlite3'}": evaluate the rest as a path.
                rest = ast.JoinedStr(values=node.values[1:])
                tail = head[len("sqlite:///") :]
                if len(node.values) == 1:
                    path = posixpath.normpath(tail) if tail else None
                else:
                    path = None if tail else _path_of(rest, file, env)
                return (None if path is None else path), " (the default database URL, unless the environment sets one)"
            continue
        if url is None:
            continue
        if not url.startswith("sqlite:"):
            return None, ""
        path = url.split(":///", 1)[1] if ":///" in url else ""
        # sqlite:////abs/path is absolute; sqlite:///rel is relative to the working directory: the release.
        return (posixpath.normpath(path) if path else None), " (the default database URL, unless the environment sets one)"
    return None


def _django_media(env: _Env, where: str, name: str, notes: list[str]) -> str | None:
    """MEDIA_ROOT relative to the app root when it is inside the release (uploads lost at each deploy)."""
    if "MEDIA_ROOT" not in env:
        return None
    bind = env["MEDIA_ROOT"]
    at = _where("MEDIA_ROOT", env, where)
    path = _bind_path(bind, env)
    if path is None:
        if _literal("MEDIA_ROOT", env) != "":
            notes.append(f"MEDIA_ROOT in {at} is computed: uploads must go to a folder outside the release")
        return None
    if not _inside(path):
        return None
    notes.append(
        f"MEDIA_ROOT in {at} is {path}/, in the app's folder: uploads are kept across releases in "
        f"/srv/{name}/shared/{path} ([app] persist)"
    )
    return path


def _django_health(files: Mapping[str, str], env: _Env, notes: list[str]) -> str:
    """"/" when ROOT_URLCONF routes it; the admin's login page when only the admin is mounted."""
    urlconf = _literal("ROOT_URLCONF", env)
    path = _module_file(files, urlconf) if isinstance(urlconf, str) else None
    tree = _parse(path, files[path], None) if path is not None else None
    if tree is None:
        return "/"
    admin: str | None = None
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = (_dotted(node.func) or "").rsplit(".", 1)[-1]
        route = _const_str(node.args[0])
        if func == "path" and route == "":
            return "/"
        if func in ("re_path", "url") and route is not None and route in ("^$", "^", ""):
            return "/"
        if func == "path" and route and len(node.args) > 1 and (_dotted(node.args[1]) or "").endswith("admin.site.urls"):
            admin = "/" + route.strip("/") + "/login/"
    if admin is not None:
        notes.append(f"no view at / in {path}: the health check uses the admin's login page {admin}")
        return admin
    notes.append(f"no view at / found in {path}: set app.health_path to a page that answers 200")
    return "/"


# Flask CLI commands that create (or reset) the app's data: a first_deploy hook,
# never a release hook (the Flask tutorial's init-db drops its tables).
DATA_COMMAND_RE = re.compile(
    r"^(init|initiali[sz]e|create|setup|bootstrap|seed)[-_]?(the[-_]?)?(db|database|tables|schema|data)$|^seed$"
)
# click >= 8.2 drops these suffixes from a command named after its function; older click keeps them.
CLICK_SUFFIXES = ("_command", "_cmd", "_group", "_grp")


def _local_imports(path: str, tree: ast.Module, files: Mapping[str, str]) -> list[str]:
    """Modules of the app's own packages that a module imports (anywhere, also inside create_app)."""
    package = _module_name(path) if path.endswith("/__init__.py") else _module_name(path).rpartition(".")[0]
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import db` names a submodule; `from .db import x` names an attribute.
            out += [base] + [f"{base}.{a.name}" if base else a.name for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    local = {PurePosixPath(f).parts[0] for f in files if f.endswith("/__init__.py")}
    return [m for m in dict.fromkeys(out) if m and m.split(".", 1)[0] in local]


def _flask_data_command(files: Mapping[str, str], found: _Found, notes: list[str]) -> str | None:
    """`flask --app <module> init-db` when the app registers an init-db-style click command."""
    tree = _parse(found.file, files[found.file], None)
    paths = [found.file] + [p for m in (_local_imports(found.file, tree, files) if tree else []) if (p := _module_file(files, m))]
    trees = [(p, t) for p in dict.fromkeys(paths) if (t := _parse(p, files[p], None)) is not None]
    registered = set()  # names passed to app.cli.add_command(...)
    for _, t in trees:
        for node in ast.walk(t):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_command":
                if node.args and (command := (_dotted(node.args[0]) or "").rsplit(".", 1)[-1]):
                    registered.add(command)
    for path, t in trees:
        for fn in ast.walk(t):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for dec in fn.decorator_list:
                call = dec if isinstance(dec, ast.Call) else None
                func = _dotted(call.func if call else dec) or ""
                on_app = func.endswith(".cli.command")  # @app.cli.command("init-db"): registered by definition
                if not (on_app or func in ("click.command", "command")) or (not on_app and fn.name not in registered):
                    continue
                name = _const_str(call.args[0]) if call is not None and call.args else None
                for kw in call.keywords if call is not None else ():
                    if kw.arg == "name":
                        name = _const_str(kw.value)
                if name is None:
                    if fn.name.endswith(CLICK_SUFFIXES) and DATA_COMMAND_RE.match(fn.name.rsplit("_", 1)[0]):
                        notes.append(
                            f"{path} line {dec.lineno}: the command `{fn.name}` looks like a data initialiser, but its "
                            "name depends on click's version; give it one (@click.command(\"init-db\")) or set "
                            "[hooks] first_deploy by hand"
                        )
                        return None
                    name = fn.name.lower().replace("_", "-")
                if DATA_COMMAND_RE.match(name):
                    module, attr = found.module, found.attr
                    if found.factory and _required_factory_args(files, found):
                        notes.append(
                            f"{path} line {dec.lineno}: `{name}` initialises data, but {attr}() takes required arguments: "
                            f"set [hooks] first_deploy = \"flask --app '{module}:{attr}(...)' {name}\" by hand"
                        )
                        return None
                    # `flask --app pkg` finds `app`/`application` and create_app()/make_app() itself.
                    target = module if attr in ("app", "application", "create_app", "make_app") else f"{module}:{attr}"
                    hook = f"flask --app {target} {name}"
                    notes.append(
                        f"first_deploy hook: `{hook}` ({path} line {dec.lineno}) runs once, before the first release "
                        "takes traffic; as a release hook it would wipe the data on every deploy"
                    )
                    return hook
    return None


def _required_factory_args(files: Mapping[str, str], found: _Found) -> bool:
    tree = _parse(found.file, files[found.file], None)
    return any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == found.attr and _required_args(n.args)
        for n in (tree.body if tree else ())
    )


def wanted_files(
    files: Mapping[str, str], settings: str | None = None, env_file: tuple[str, str] | None = None
) -> list[str]:
    """Further files `scan` would read, given the ones read so far: a Django
    project's settings modules (the one production uses, see `scan`, and every
    module it imports from, also in try/if blocks) and its URLconf; else the
    app's own modules that the candidate modules import (where a Flask app
    registers its CLI commands)."""
    want: list[str] = []
    if "manage.py" not in files:
        for path in _candidate_modules(files):
            tree = _parse(path, files[path], None)
            for imported in _local_imports(path, tree, files) if tree is not None else ():
                if _module_file(files, imported) is None:
                    want += _module_paths(imported)
        return [w for w in dict.fromkeys(want) if w not in files]
    module = choose_settings(files, settings, env_file).module
    if module is None:
        return []
    settings_file = _module_file(files, module)
    if settings_file is None:
        return list(_module_paths(module))
    top = module.split(".", 1)[0]
    package, _, last = module.rpartition(".")
    if last in DEV_SETTINGS and package:
        # Development settings chosen by default: look for the production module to name it.
        want += [p for prod in PROD_SETTINGS for p in _module_paths(f"{package}.{prod}")]
    seen, todo = set(), [settings_file]
    while todo:
        path = todo.pop()
        if path in seen or path not in files:
            continue
        seen.add(path)
        tree = _parse(path, files[path], None)
        for other in _settings_imports(path, tree) if tree is not None else ():
            if other.split(".", 1)[0] != top:
                continue  # django.*, libraries: not the app's files
            found = _module_file(files, other)
            if found is None:
                want += _module_paths(other)
            else:
                todo.append(found)
    urlconf = _literal("ROOT_URLCONF", _Settings(files, None, []).env(settings_file))
    if isinstance(urlconf, str) and _module_file(files, urlconf) is None:
        want += _module_paths(urlconf)
    return [w for w in dict.fromkeys(want) if w not in files]


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


_GENERATED_BY = re.compile(r"Generated by 'django-admin startproject' using Django (\d+\.\d+(?:\.\d+)?)")


def _generated_by_django(files: Mapping[str, str]) -> str | None:
    for path, text in files.items():
        if path.endswith("settings.py") or "/settings/" in path:
            m = _GENERATED_BY.search(text[:2000])
            if m:
                return m.group(1)
    return None


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


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_str(value)
    raise TypeError(f"no TOML spelling for {value!r}")  # a model default init does not show


def _model_default(model: type[BaseModel], key: str) -> str:
    """`# key = <default>  # <help>`, both read from the config model, so the
    comments init writes cannot drift from what Garrison really does."""
    field = model.model_fields[key]
    return _line(f"# {key} = {_toml_value(field.default)}", field.description or "")


def render_toml(d: Detection) -> str:
    """The commented garrison.toml for a detection (raises DetectError without an entry)."""
    if d.entry is None:
        raise DetectError(not_found_message(d))
    lines = [
        "# garrison.toml, written by `garrison init`. Edit freely; `garrison init --force` rewrites it.",
        "# What was detected:",
        *(f"#   - {_comment(n)}" for n in d.notes),
        "# docs/garrison.example.toml lists every key with its default.",
        "",
        "[app]",
        _line(f"name = {_toml_str(d.name)}", "required: Unix user and service name"),
        _line(f"entry = {_toml_str(d.entry)}", "required: WSGI/ASGI entry, module:callable (or module:factory())"),
        _line('root = "."', "app folder, relative to this file"),
        _line(f"requirements = {_toml_str(d.requirements or '')}", 'or "pyproject.toml", or "" for none'),
        _line(f"health_path = {_toml_str(d.health_path)}", "path that must answer 2xx once deployed"),
    ]
    if d.persist:
        shown = ", ".join(_toml_str(p) for p in d.persist)
        lines.append(_line(f"persist = [{shown}]", "data the app writes: kept in shared/, linked from each release"))
    for i, (url, path) in enumerate(d.static):
        lines += [
            "",
            _line("[[app.static]]", "one table per static folder served by nginx itself" if i == 0 else ""),
            f"url = {_toml_str(url)}",
            f"path = {_toml_str(path)}",
        ]
    names = ", ".join(_toml_str(n) for n in d.server_names)
    lines += [
        "",
        "[server]",
        _line(f"names = [{names}]", "nginx server_name values"),
        "port = 80",
        _line("# default = false", "true: this site answers requests for unknown hosts (default_server)"),
        _line(f"# user = {_toml_str(d.name)}", "app user (default: the app name)"),
        _line(f"# base = {_toml_str('/srv/' + d.name)}", "where releases live"),
        "",
        "[gunicorn]",
    ]
    if d.worker_class:
        lines.append(_line(f"worker_class = {_toml_str(d.worker_class)}", "ASGI app: uvicorn workers (uvicorn-worker)"))
    else:
        lines.append(_model_default(Gunicorn, "worker_class"))
    lines += [*(_model_default(Gunicorn, key) for key in GUNICORN_SHOWN), ""]
    for name, command in d.processes:
        lines += [
            _line(f"[processes.{name}]", "a worker beside the web server, restarted with each release"),
            f"command = {_toml_str(command)}",
            "",
        ]
    if d.release_hook or d.first_deploy_hook:
        lines.append("[hooks]")
    if d.release_hook:
        lines += [
            "# Runs as the app user in EVERY new release (its venv, shared/.env) before it takes traffic:",
            "# it must be idempotent.",
            f"release = {_toml_str(d.release_hook)}",
        ]
    if d.first_deploy_hook:
        lines += [
            "# Runs once per app, before its first release takes traffic; never again while its data exists.",
            f"first_deploy = {_toml_str(d.first_deploy_hook)}",
        ]
    if d.release_hook or d.first_deploy_hook:
        lines.append("")
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


def read_app_folder(
    root: Path, settings: str | None = None, env_file: tuple[str, str] | None = None
) -> tuple[dict[str, str], set[str]]:
    """Read the candidate files of an app folder, and list its folders.

    Returns (files, dirs) as `scan` expects them: files maps relative POSIX
    paths to text for the top-level candidates, for each top-level package
    its candidate modules, and what `wanted_files` asks for (a Django
    project's settings and URLconf); dirs holds every top-level folder and the
    folders directly inside packages. Hidden folders, virtualenvs, caches and
    node_modules are skipped.
    """
    root = Path(root)
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for name in TOP_LEVEL_FILES + OTHER_FILES + WORKER_FILES:
        if (root / name).is_file():
            files[name] = _read(root / name)
    for d in _subdirs(root):
        dirs.add(d)
        if not d.isidentifier() or not (root / d / "__init__.py").is_file():
            continue
        for name in (*PACKAGE_FILES, *WORKER_FILES):
            if (root / d / name).is_file():
                files[f"{d}/{name}"] = _read(root / d / name)
        dirs.update(f"{d}/{sub}" for sub in _subdirs(root / d))
    for _ in range(MAX_SETTINGS_DEPTH + 2):  # each round follows one more import
        new = [w for w in wanted_files(files, settings, env_file) if (root / w).is_file()]
        if not new:
            break
        for w in new:
            files[w] = _read(root / w)
    return files, dirs


def run_init(
    folder: Path, force: bool = False, settings: str | None = None, env_file: Path | None = None
) -> tuple[Path, Detection]:
    """Detect the app in `folder` and write folder/garrison.toml.

    Django: `settings` names the settings module production uses (`garrison
    init --settings`); `env_file` is a local copy of the env file the server
    gets (`garrison env set`), whose DJANGO_SETTINGS_MODULE wins (the server's
    own shared/.env can't be read from here).

    Raises ConfigError if garrison.toml exists and not `force`, or the env
    file can't be read; DetectError if no entry point is found (nothing is
    written then).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DetectError(f"{folder}: not a folder; run `garrison init` in the app's folder")
    target = folder / "garrison.toml"
    if target.exists() and not force:
        raise ConfigError("garrison.toml: already exists; pass --force to overwrite it")
    env: tuple[str, str] | None = None
    if env_file is not None:
        try:
            env = (str(env_file), Path(env_file).read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise ConfigError(f"{env_file}: cannot be read ({exc.strerror or exc}); give the env file the app gets on the server") from None
    files, dirs = read_app_folder(folder, settings, env)
    # What a release ships (.gitignore applied): a gitignored settings/local.py stays on this machine.
    shipped = set(source.app_files(folder)) if "manage.py" in files else None
    detection = scan(files, dirs, folder.resolve().name, settings=settings, env_file=env, shipped=shipped)
    text = render_toml(detection)  # raises DetectError when no entry was found
    if detection.new_requirements and not (folder / "requirements.txt").exists():
        (folder / "requirements.txt").write_text(detection.new_requirements, encoding="utf-8")
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
