"""The app's lockfile: what the server must install to get exactly the locked versions.

Pure: every function takes file texts (or a venv's `pip freeze` text) and
returns data; nothing here reads a file or runs a command.

An app may lock its dependencies in one of four ways, honoured in this order
of precedence by `detect`:

1. `uv.lock` (TOML, beside pyproject.toml): `[[package]]` tables with name,
   version and source; the project itself is the package whose source is
   `{ editable = "." }` (it has a build backend) or `{ virtual = "." }` (it
   has none); forked resolutions repeat a name with `resolution-markers`.
2. `poetry.lock` (TOML, beside pyproject.toml): `[[package]]` tables with
   name and version, optional `markers` (a string, or one per group in lock
   format 2.1) and `[package.source]` for git, path, url or private indexes.
3. `Pipfile.lock` (JSON): the `default` section maps names to
   `{"version": "==x", "markers": ..., "extras": [...]}` (or git/path/file
   entries); it is already the whole production closure, as `pipenv sync`
   installs it.
4. A requirements file in which every requirement is pinned: `name==version`,
   optionally with extras, an environment marker and `--hash=` options (what
   pip-compile, `uv pip compile` and `uv export` write).

The result is a `LockPlan`. Its `constraints` text pins every locked package
(`name==version`, names normalised, markers kept where the lock has them):
given to pip or uv with `-c`, the resolver can pick no other version of any
of them, also for what Garrison adds (gunicorn and its worker); if an
addition needs another version, the install fails instead of silently
moving the app's own dependencies. What to install besides the constraints
is the project itself (uv/poetry projects with a build backend), the
project's direct dependencies (projects without one: uv's virtual
projects, poetry's package-mode = false), the Pipfile.lock's default
section, or the pinned requirements file itself. `install_steps` spells
the install as pip/uv arguments.

`lock_mismatches` compares a built venv (`pip freeze`) with the lock, and
`explain_version_changes` says, one line per package, which version
Garrison's additions changed when there is no lock to hold them.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from garrison.errors import ConfigError

__all__ = [
    "LOCKFILES",
    "LockPlan",
    "LockfileError",
    "Pin",
    "detect",
    "explain_version_changes",
    "lock_mismatches",
    "normalise",
    "parse_freeze",
    "plan_pipfile_lock",
    "plan_poetry_lock",
    "plan_requirements",
    "plan_uv_lock",
    "unpinned_line",
]

# The lockfiles `detect` looks for, in order of precedence.
LOCKFILES = ("uv.lock", "poetry.lock", "Pipfile.lock")
PYPI = "https://pypi.org/simple"


class LockfileError(ConfigError):
    """A lockfile that can't be read: one line naming the file and what to do."""


def normalise(name: str) -> str:
    """A distribution name as indexes compare them (PEP 503): "Flask_SQLAlchemy" -> "flask-sqlalchemy"."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


@dataclass(frozen=True)
class Pin:
    """One locked package: `name==version`, under an environment marker when the lock has one."""

    name: str  # normalised
    version: str
    marker: str | None = None

    @property
    def line(self) -> str:
        return f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")


@dataclass(frozen=True)
class LockPlan:
    """What the server installs to get exactly the locked versions."""

    kind: str  # "uv.lock", "poetry.lock", "Pipfile.lock" or "requirements"
    lockfile: str  # the file read, relative to the app root
    pins: tuple[Pin, ...]
    # Install the app folder itself (a pyproject.toml with a build backend) ...
    project: bool = False
    # ... else these requirement lines (written to a file for `-r`) ...
    requirements: tuple[str, ...] = ()
    # ... or the app's own pinned requirements file, as it is.
    requirements_file: str | None = None
    # The requirements file has --hash options: pip checks every hash, and refuses a
    # requirement without one in the same install (Garrison's additions go in a second step).
    hashed: bool = False
    index_urls: tuple[str, ...] = ()  # indexes other than PyPI that the lock resolved from
    notes: tuple[str, ...] = ()

    @property
    def constraints(self) -> str:
        """A constraints file (`-c`): one `name==version` line per locked package."""
        return "".join(p.line + "\n" for p in self.pins)

    def versions(self) -> dict[str, set[str]]:
        """Locked versions by normalised name (a forked lock has several)."""
        out: dict[str, set[str]] = {}
        for p in self.pins:
            out.setdefault(p.name, set()).add(p.version)
        return out

    def install_steps(
        self, root: str, constraints_path: str, requirements_path: str | None, additions: Sequence[str]
    ) -> list[tuple[str, ...]]:
        """Arguments for `pip install` / `uv pip install`, one tuple per command, in order.

        `root`: the release folder on the host; `constraints_path`: where
        `constraints` was written; `requirements_path`: where `requirements`
        was written (when there are any); `additions`: what Garrison adds
        (e.g. "gunicorn>=23").
        """
        c = ("-c", constraints_path)
        if self.requirements_file is not None:
            req = ("-r", f"{root}/{self.requirements_file}")
            if self.hashed:
                # Hash-checking mode covers a whole command: the app's file alone, then the
                # additions, held to the same versions by the constraints.
                return [req] + ([(*c, *additions)] if additions else [])
            return [(*c, *req, *additions)]
        if self.project:
            return [(*c, root, *additions)]
        if self.requirements:
            if requirements_path is None:
                raise ValueError("requirements_path is needed: this plan installs requirement lines")
            return [(*c, "-r", requirements_path, *additions)]
        return [(*c, *additions)] if additions else []


# --------------------------------------------------------------------------
# detection


def detect(files: Mapping[str, str], requirements: str | None = "requirements.txt") -> LockPlan | None:
    """The lock plan for an app, by precedence, or None when nothing is locked.

    `files` maps app-relative paths to texts; the ones read are uv.lock,
    poetry.lock, Pipfile.lock, pyproject.toml and `requirements` (the app's
    requirements file, when it names one). Raises LockfileError for a
    lockfile that can't be read.
    """
    pyproject = files.get("pyproject.toml")
    for name in LOCKFILES:
        if name not in files:
            continue
        if name in ("uv.lock", "poetry.lock") and pyproject is None:
            tool = "uv lock" if name == "uv.lock" else "poetry lock"
            raise LockfileError(f"{name}: found without the pyproject.toml it locks; add it, or delete {name} (`{tool}`)")
        if name == "uv.lock":
            return plan_uv_lock(files[name], pyproject or "")
        if name == "poetry.lock":
            return plan_poetry_lock(files[name], pyproject or "")
        return plan_pipfile_lock(files[name])
    if requirements and requirements.endswith(".txt") and requirements in files:
        return plan_requirements(files[requirements], requirements)
    return None


# --------------------------------------------------------------------------
# uv.lock


def _toml(text: str, name: str, tool: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockfileError(f"{name}: not valid TOML ({exc}); regenerate it with `{tool}`") from None


def _packages(data: Mapping[str, Any], name: str, tool: str) -> list[dict[str, Any]]:
    packages = data.get("package", [])
    if not isinstance(packages, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("version", ""), str)
        for p in packages
    ):
        raise LockfileError(f"{name}: [[package]] tables without a name and version; regenerate it with `{tool}`")
    return packages


def _index(url: str) -> str | None:
    """A registry URL other than PyPI's, else None."""
    url = url.rstrip("/")
    return None if url in (PYPI, "https://pypi.org/simple", "https://pypi.python.org/simple") else url


def plan_uv_lock(text: str, pyproject_text: str, lockfile: str = "uv.lock") -> LockPlan:
    data = _toml(text, lockfile, "uv lock")
    packages = _packages(data, lockfile, "uv lock")
    project = _toml(pyproject_text, "pyproject.toml", "uv lock").get("project", {})
    project_name = normalise(project.get("name", "")) if isinstance(project, dict) else ""
    notes: list[str] = []
    if isinstance(data.get("version"), int) and data["version"] > 1:
        notes.append(f"{lockfile}: lock format version {data['version']}; Garrison knows version 1, read as such")

    def local(p: Mapping[str, Any]) -> bool:
        source = p.get("source", {})
        return isinstance(source, dict) and bool({"editable", "virtual", "directory", "path"} & set(source))

    root = next((p for p in packages if normalise(p["name"]) == project_name and local(p)), None)
    root = root or next((p for p in packages if p.get("source") in ({"virtual": "."}, {"editable": "."})), None)
    if root is None:
        raise LockfileError(
            f"{lockfile}: does not lock the project of pyproject.toml ({project_name or 'no [project] name'}); "
            "run `uv lock` in the app folder"
        )
    _check_fresh(root, project, lockfile, notes)

    pins, indexes = [], []
    for p in packages:
        source = p.get("source", {})
        if not isinstance(source, dict) or p is root:
            continue
        if "registry" in source:
            markers = p.get("resolution-markers")
            marker = _any_of(markers) if isinstance(markers, list) and markers else None
            pins.append(Pin(normalise(p["name"]), p["version"], marker))
            if (url := _index(str(source["registry"]))) is not None:
                indexes.append(url)
        elif not local(p):  # git, url: installed from the project's own reference, not pinned by version
            notes.append(f"{lockfile}: {p['name']} comes from {_describe(source)}: installed as the project declares it")

    editable = root.get("source") == {"editable": "."}
    requirements: tuple[str, ...] = ()
    if not editable:
        # A virtual project has no build backend: install its direct dependencies, held by the pins.
        by_name = {normalise(p["name"]): p for p in packages}
        requirements = tuple(_uv_requirement(d, by_name, lockfile, notes) for d in root.get("dependencies", []))
    return LockPlan(
        kind="uv.lock",
        lockfile=lockfile,
        pins=tuple(pins),
        project=editable,
        requirements=tuple(r for r in requirements if r),
        index_urls=tuple(dict.fromkeys(indexes)),
        notes=tuple(notes),
    )


def _check_fresh(root: Mapping[str, Any], project: Any, lockfile: str, notes: list[str]) -> None:
    """uv records the project's requirements in the lock: a different set means a stale lock."""
    meta = root.get("metadata", {})
    locked = meta.get("requires-dist") if isinstance(meta, dict) else None
    declared = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(locked, list) or not isinstance(declared, list):
        return
    locked_names = {normalise(d["name"]) for d in locked if isinstance(d, dict) and isinstance(d.get("name"), str)}
    declared_names = {normalise(m.group(1)) for d in declared if isinstance(d, str) and (m := _NAME_RE.match(d))}
    if locked_names != declared_names:
        missing = sorted(declared_names - locked_names) or sorted(locked_names - declared_names)
        raise LockfileError(
            f"{lockfile}: out of date with pyproject.toml (differs in {', '.join(missing)}); run `uv lock` and commit it"
        )


def _uv_requirement(dep: Any, by_name: Mapping[str, Mapping[str, Any]], lockfile: str, notes: list[str]) -> str:
    if not isinstance(dep, dict) or not isinstance(dep.get("name"), str):
        raise LockfileError(f"{lockfile}: a dependency of the project has no name; regenerate it with `uv lock`")
    name = normalise(dep["name"])
    extras = dep.get("extra") or []
    spec = name + (f"[{','.join(sorted(extras))}]" if extras else "")
    source = by_name.get(name, {}).get("source", {})
    if isinstance(source, dict) and "git" in source:
        url, _, commit = str(source["git"]).partition("#")
        spec += f" @ git+{url.split('?', 1)[0]}@{commit}" if commit else f" @ git+{url}"
    elif isinstance(source, dict) and "url" in source:
        spec += f" @ {source['url']}"
    elif isinstance(source, dict) and not ({"registry"} & set(source)):
        notes.append(f"{lockfile}: {name} is a local package ({_describe(source)}): not installed; add it to the app")
        return ""
    marker = dep.get("marker")
    return spec + (f" ; {marker}" if isinstance(marker, str) and marker else "")


def _describe(source: Mapping[str, Any]) -> str:
    kind, value = next(iter(source.items()), ("?", "?"))
    return f"{kind} {value}"


def _any_of(markers: Iterable[str]) -> str:
    markers = [m for m in markers if isinstance(m, str) and m]
    return markers[0] if len(markers) == 1 else " or ".join(f"({m})" for m in markers)


# --------------------------------------------------------------------------
# poetry.lock


def plan_poetry_lock(text: str, pyproject_text: str, lockfile: str = "poetry.lock") -> LockPlan:
    data = _toml(text, lockfile, "poetry lock")
    packages = _packages(data, lockfile, "poetry lock")
    pyproject = _toml(pyproject_text, "pyproject.toml", "poetry lock")
    notes: list[str] = []
    pins, indexes, direct_refs = [], [], {}
    for p in packages:
        if not isinstance(p.get("version"), str):
            raise LockfileError(f"{lockfile}: package {p['name']} has no version; regenerate it with `poetry lock`")
        source = p.get("source")
        name = normalise(p["name"])
        if isinstance(source, dict) and source.get("type") not in (None, "legacy"):
            # git, directory, file, url: no version an index could serve.
            direct_refs[name] = source
            notes.append(f"{lockfile}: {p['name']} comes from {source.get('type')} {source.get('url', '?')}")
            continue
        if isinstance(source, dict) and (url := _index(str(source.get("url", "")))) is not None:
            indexes.append(url)
        markers = p.get("markers")
        if isinstance(markers, dict):  # lock format 2.1: one marker per dependency group
            marker = _any_of(dict.fromkeys(str(m) for m in markers.values())) or None
        else:
            marker = markers if isinstance(markers, str) and markers else None
        pins.append(Pin(name, p["version"], marker))

    tool = pyproject.get("tool", {}).get("poetry", {}) if isinstance(pyproject.get("tool"), dict) else {}
    packaged = tool.get("package-mode", True) is not False and "build-system" in pyproject
    requirements: tuple[str, ...] = ()
    if not packaged:
        requirements = _poetry_direct(pyproject, tool, direct_refs, notes)
    return LockPlan(
        kind="poetry.lock",
        lockfile=lockfile,
        pins=tuple(pins),
        project=packaged,
        requirements=requirements,
        index_urls=tuple(dict.fromkeys(indexes)),
        notes=tuple(notes),
    )


def _poetry_direct(
    pyproject: Mapping[str, Any], tool: Mapping[str, Any], refs: Mapping[str, Any], notes: list[str]
) -> tuple[str, ...]:
    """The project's main dependencies as requirement lines; versions come from the pins."""
    project = pyproject.get("project", {})
    declared = project.get("dependencies") if isinstance(project, dict) else None
    if isinstance(declared, list) and declared:  # Poetry 2 reads PEP 621 [project] dependencies
        return tuple(d for d in declared if isinstance(d, str))
    out = []
    deps = tool.get("dependencies", {})
    for raw, spec in (deps.items() if isinstance(deps, dict) else ()):
        name = normalise(raw)
        if name == "python":
            continue
        specs = spec if isinstance(spec, list) else [spec]  # multiple-constraints dependencies
        for one in specs:
            table = one if isinstance(one, dict) else {}
            if table.get("optional"):
                continue  # installed only through an extra the server does not ask for
            extras = table.get("extras") or []
            line = name + (f"[{','.join(sorted(extras))}]" if extras else "")
            if "git" in table or name in refs:
                src = refs.get(name, {})
                url = table.get("git") or src.get("url", "")
                rev = src.get("resolved_reference") or table.get("rev") or table.get("tag") or table.get("branch")
                line += f" @ git+{url}" + (f"@{rev}" if rev else "")
            elif "path" in table or "url" in table:
                notes.append(f"pyproject.toml: {raw} is a local path or URL dependency: install it by hand")
                continue
            marker = table.get("markers")
            out.append(line + (f" ; {marker}" if isinstance(marker, str) and marker else ""))
    return tuple(dict.fromkeys(out))


# --------------------------------------------------------------------------
# Pipfile.lock


def plan_pipfile_lock(text: str, lockfile: str = "Pipfile.lock") -> LockPlan:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(f"{lockfile}: not valid JSON (line {exc.lineno}); regenerate it with `pipenv lock`") from None
    default = data.get("default") if isinstance(data, dict) else None
    if not isinstance(default, dict):
        raise LockfileError(f'{lockfile}: no "default" section; regenerate it with `pipenv lock`')
    notes: list[str] = []
    pins, lines = [], []
    for raw, entry in sorted(default.items(), key=lambda item: normalise(item[0])):
        if not isinstance(entry, dict):
            raise LockfileError(f"{lockfile}: the entry of {raw} is not a table; regenerate it with `pipenv lock`")
        name = normalise(raw)
        extras = entry.get("extras") or []
        spec = name + (f"[{','.join(sorted(extras))}]" if extras else "")
        marker = entry.get("markers") if isinstance(entry.get("markers"), str) else None
        version = entry.get("version")
        if isinstance(version, str) and version.startswith("=="):
            pins.append(Pin(name, version[2:], marker))
            spec += version
        elif "git" in entry:
            spec += f" @ git+{entry['git']}" + (f"@{entry['ref']}" if entry.get("ref") else "")
        elif "file" in entry:
            spec += f" @ {entry['file']}"
        else:
            # {"path": ".", "editable": true}: the app itself, which runs from its release folder.
            notes.append(f"{lockfile}: {raw} is a local path ({entry.get('path', '?')}): not installed")
            continue
        lines.append(spec + (f" ; {marker}" if marker else ""))
    meta = data.get("_meta", {})
    sources = meta.get("sources", []) if isinstance(meta, dict) else []
    indexes = [u for s in sources if isinstance(s, dict) and (u := _index(str(s.get("url", "")))) is not None]
    # The default section is the whole production closure (what `pipenv sync` installs): every line goes in.
    return LockPlan(
        kind="Pipfile.lock",
        lockfile=lockfile,
        pins=tuple(pins),
        requirements=tuple(lines),
        index_urls=tuple(indexes),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------
# pinned requirements files

_NAME_RE = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?\s*"
    r"===?\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*(?:;\s*(?P<marker>.+?))?$"
)
# Options a pinned file may carry without loosening a pin.
_GLOBAL_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--trusted-host", "--find-links", "-f", "--require-hashes",
                   "--no-binary", "--only-binary", "--prefer-binary", "--pre")


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, line) with `\\` continuations joined and comments removed."""
    start = 0
    parts: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not parts:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        joined = " ".join(p.strip() for p in parts).strip()
        parts = []
        if joined:
            yield start, joined
    if parts and (joined := " ".join(p.strip() for p in parts).strip()):
        yield start, joined


def unpinned_line(text: str) -> tuple[int, str] | None:
    """The first requirement that is not `name==version` (line number, text), or None when all are pinned."""
    for number, line in _logical_lines(text):
        if line.startswith(_GLOBAL_OPTIONS):
            continue
        requirement = re.sub(r"\s--hash[=\s]\S+", "", " " + line).strip()
        if not _PIN_RE.match(requirement):
            return number, line
    return None


def plan_requirements(text: str, path: str = "requirements.txt") -> LockPlan | None:
    """A plan for a fully pinned requirements file, or None when any requirement is not pinned."""
    if unpinned_line(text) is not None:
        return None
    pins, indexes, hashed = [], [], False
    for _, line in _logical_lines(text):
        option = re.match(r"^(--index-url|-i|--extra-index-url)[=\s]+(\S+)", line)
        if option:
            if (url := _index(option.group(2))) is not None:
                indexes.append(url)
            continue
        if line.startswith(_GLOBAL_OPTIONS):
            continue
        hashed = hashed or "--hash" in line
        m = _PIN_RE.match(re.sub(r"\s--hash[=\s]\S+", "", " " + line).strip())
        assert m is not None  # unpinned_line checked every requirement
        pins.append(Pin(normalise(m["name"]), m["version"], m["marker"]))
    if not pins:
        return None
    return LockPlan(
        kind="requirements",
        lockfile=path,
        pins=tuple(pins),
        requirements_file=path,
        hashed=hashed,
        index_urls=tuple(dict.fromkeys(indexes)),
    )


# --------------------------------------------------------------------------
# what a venv got


def parse_freeze(text: str) -> dict[str, str]:
    """`pip freeze` / `uv pip freeze` output -> {normalised name: version}; URL and editable lines are skipped."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*(\S+)\s*$", line)
        if m:
            out[normalise(m.group(1))] = m.group(2)
    return out


def lock_mismatches(plan: LockPlan, freeze_text: str) -> list[str]:
    """One line per installed package whose version is not the locked one."""
    locked = plan.versions()
    lines = []
    for name, version in sorted(parse_freeze(freeze_text).items()):
        if name in locked and version not in locked[name]:
            want = " or ".join(sorted(locked[name]))
            lines.append(f"{name} {version} installed, {plan.lockfile} locks {want}")
    return lines


def explain_version_changes(
    alone: Mapping[str, str],
    with_additions: Mapping[str, str],
    additions: Sequence[str],
    per_addition: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """One line per package whose version Garrison's additions changed.

    `alone`: what the app's own requirements resolve to; `with_additions`:
    what they resolve to with `additions` (e.g. "gunicorn[gevent]");
    `per_addition`, when known: the resolution with each addition on its own,
    which names the addition that moved a package. Without it, every addition
    is named. Names are compared normalised: "werkzeug 3.1.3 → 2.3.8 because
    of gunicorn[gevent]".
    """
    before = {normalise(k): v for k, v in alone.items()}
    after = {normalise(k): v for k, v in with_additions.items()}
    lines = []
    for name in sorted(before.keys() & after.keys()):
        if before[name] == after[name]:
            continue
        causes = list(additions)
        if per_addition:
            moved = [a for a in additions if {normalise(k): v for k, v in per_addition.get(a, {}).items()}.get(name) not in (None, before[name])]
            causes = moved or causes
        lines.append(f"{name} {before[name]} → {after[name]} because of {', '.join(causes)}")
    return lines
