"""garrison.toml: finding it, parsing it, and turning every mistake into one line.

`load_config(path)` returns the frozen `Config`; `find_project(folder)` also
says where the file was and where the app's code lives. Errors read
`<file>: <key.path>: expected …, got …`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from garrison.config.model import App, Config, Gunicorn, Hooks, Host, Nginx, Server, Static
from garrison.errors import ConfigError

__all__ = [
    "App", "Config", "Gunicorn", "Hooks", "Host", "Nginx", "Server", "Static",
    "Project", "load_config", "parse_config", "find_project", "SAMPLE_APP_DIR",
]

SAMPLE_APP_DIR = Path(__file__).resolve().parent.parent / "sample_app"


@dataclass(frozen=True)
class Project:
    """A loaded config plus where it came from."""

    config: Config
    source: Path  # the garrison.toml or pyproject.toml it was read from
    root: Path  # absolute folder of the app's code

    @property
    def is_sample(self) -> bool:
        return self.source.parent == SAMPLE_APP_DIR


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _got(value: Any) -> str:
    from garrison.config.model import _got as got

    return got(value)


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a table",
    "dict_type": "a table",
    "model_attributes_type": "a table",
}


def _message(err: dict[str, Any], fields: dict[str, Any]) -> str:
    """One pydantic error as `key.path: expected …, got …`."""
    kind = err["type"]
    loc = tuple(err["loc"])
    where = _loc(loc)
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = _allowed_keys(parent)
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key{hint}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"{where}: {msg}" if where else msg
    if kind in _TYPE_WORDS:
        return f"{where}: expected {_TYPE_WORDS[kind]}, got {_got(err.get('input'))}"
    if kind == "literal_error":
        return f"{where}: expected {err['ctx']['expected']}, got {_got(err.get('input'))}"
    return f"{where}: {err['msg']}, got {_got(err.get('input'))}"


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the table at `parent` (e.g. ("gunicorn",))."""
    model: Any = Config
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        if inner:
            ann = next((a for a in inner if isinstance(a, type) and hasattr(a, "model_fields")), ann)
        if not hasattr(ann, "model_fields"):
            return []
        model = ann
    return list(model.model_fields)


_UNION_TAG = re.compile(r"^(literal\[.*\]|[A-Z]\w*|int|str|bool|none|function-.*)$")


def _clean(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors of a union field (e.g. tls: "letsencrypt" or a table) read as one field's errors:
    the branch tags leave the key path, and the branch that doesn't fit the value's type goes."""
    for e in errors:
        e["loc"] = tuple(p for p in e["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
    out = []
    for e in errors:
        is_literal_branch = e["type"] == "literal_error" and isinstance(e.get("input"), dict)
        if not is_literal_branch:
            out.append(e)
    return out or errors


def parse_config(data: dict[str, Any], source: str = "garrison.toml") -> Config:
    """Validate parsed TOML; raise ConfigError with one line per problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = _clean([dict(e) for e in exc.errors(include_url=False)])
        lines = list(dict.fromkeys(f"{source}: {_message(e, {})}" for e in errors))
        raise ConfigError("\n".join(lines)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `garrison init` in the app's folder to write one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise ConfigError(f"{path.name}: TOML syntax error: {exc}") from None


def load_config(path: Path) -> Config:
    """Load a garrison.toml, or the [tool.garrison] table of a pyproject.toml."""
    return load_project(path).config


def load_project(path: Path) -> Project:
    path = Path(path)
    data = _read_toml(path)
    label = path.name
    if path.name == "pyproject.toml":
        tool = data.get("tool", {}).get("garrison")
        if tool is None:
            raise ConfigError(f"{path.name}: no [tool.garrison] table; run `garrison init` to write garrison.toml")
        data = tool
        label = "pyproject.toml: tool.garrison"
    cfg = parse_config(data, label)
    root = (path.parent / cfg.app.root).resolve()
    if not root.is_dir():
        raise ConfigError(f"{label}: app.root: expected an existing folder, got \"{cfg.app.root}\" ({root} does not exist)")
    if cfg.app.requirements and not (root / cfg.app.requirements).is_file():
        raise ConfigError(
            f"{label}: app.requirements: expected a file in the app folder, got \"{cfg.app.requirements}\" "
            f"({root / cfg.app.requirements} does not exist); set it to \"\" if the app has none"
        )
    for i, st in enumerate(cfg.app.static):
        # A release hook may create the folder on the host: Django's collectstatic
        # fills STATIC_ROOT (usually git-ignored, so absent from the source) in each
        # new release before it takes traffic. Without a hook, nothing would.
        if cfg.hooks.release and not (root / st.path).exists():
            continue
        if not (root / st.path).is_dir():
            raise ConfigError(
                f"{label}: app.static[{i}].path: expected a folder in the app folder, got \"{st.path}\" "
                f"({root / st.path} does not exist)"
            )
    return Project(config=cfg, source=path.resolve(), root=root)


def find_project(folder: Path, *, config: Path | None = None, sample_if_missing: bool = False) -> Project:
    """The project for `folder`: its garrison.toml, else pyproject's [tool.garrison].

    With `sample_if_missing`, a folder with neither (and no app code) gets the
    bundled sample app, which is what `garrison up` on a fresh machine serves.
    """
    if config is not None:
        return load_project(config)
    folder = Path(folder)
    toml = folder / "garrison.toml"
    if toml.is_file():
        return load_project(toml)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject)
        if "garrison" in data.get("tool", {}):
            return load_project(pyproject)
    if sample_if_missing and not _looks_like_an_app(folder):
        return load_project(SAMPLE_APP_DIR / "garrison.toml")
    raise ConfigError(
        f"{toml}: not found; run `garrison init` here to write one (or run from a folder without an app to serve the sample app)"
    )


# Garrison's own checkout (where the README runs ./up): its pyproject.toml is the
# tool's, not an app's, so `up` there serves the sample app.
_OWN_CHECKOUT = Path(__file__).resolve().parents[2]


def _looks_like_an_app(folder: Path) -> bool:
    if folder.resolve() == _OWN_CHECKOUT and (_OWN_CHECKOUT / "garrison" / "sample_app").is_dir():
        return False
    return any((folder / n).exists() for n in ("app.py", "main.py", "wsgi.py", "manage.py", "requirements.txt", "pyproject.toml"))
