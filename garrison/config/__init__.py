"""garrison.toml's text → the frozen `Config`, every mistake turned into one line.

Pure: it is handed the file's text (or its parsed dict) and the name to put
in error messages, never a path to open. Finding and reading the file, and
checking that the folders it names exist, is `garrison.project`'s work.
Errors read `<file>: <key.path>: expected …, got …`.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from pydantic import ValidationError

from garrison.config.model import App, Config, Gunicorn, Hooks, Host, Nginx, Server, Static
from garrison.errors import ConfigError

__all__ = [
    "App", "Config", "Gunicorn", "Hooks", "Host", "Nginx", "Server", "Static",
    "parse_config", "parse_toml", "settings_table",
]


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


def parse_toml(text: str, name: str) -> dict[str, Any]:
    """A TOML file's text → its tables; a syntax error names the file (`name`) and the line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise ConfigError(f"{name}: TOML syntax error: {exc}") from None


def settings_table(data: dict[str, Any], name: str) -> tuple[dict[str, Any], str]:
    """Garrison's settings in a parsed file named `name`, and the label its errors start with.

    All of a garrison.toml; the [tool.garrison] table of a pyproject.toml.
    """
    if name == "pyproject.toml":
        tool = data.get("tool", {}).get("garrison")
        if tool is None:
            raise ConfigError(f"{name}: no [tool.garrison] table; run `garrison init` to write garrison.toml")
        return tool, "pyproject.toml: tool.garrison"
    return data, name
