"""garrison.toml → Config: the documented example, one-line errors, defaults.

Every bad input must give exactly one line, `<file>: <key.path>: expected …`,
so that the user can find and fix it without reading a traceback.
"""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from garrison.config import (
    App,
    Config,
    Gunicorn,
    Host,
    Static,
    parse_config,
    parse_toml,
    settings_table,
)
from garrison.errors import ConfigError
from garrison.project import find_project, load_config, load_project

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "garrison.example.toml"
APP = {"name": "myapp", "entry": "main:app"}


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return str(exc.value)


# --- docs/garrison.example.toml ------------------------------------------------------

HEADER_RE = re.compile(r"^\[\[?(?P<table>[a-z_.]+)\]\]?$")
# An active `key = value` line, or a setting commented out as `# key = value`.
KEY_RE = re.compile(r"^(?P<hash># )?(?P<key>[a-z_]+) = (?P<value>.+)$")


class ExampleKey(typing.NamedTuple):
    path: str  # e.g. "gunicorn.workers", "hosts.name"
    lineno: int  # 0-based
    commented: bool
    value: str


def example_lines() -> list[str]:
    return EXAMPLE.read_text(encoding="utf-8").splitlines()


def example_keys() -> list[ExampleKey]:
    """Every key of the example, active or commented out, with its table's path."""
    table = ""
    keys = []
    for i, line in enumerate(example_lines()):
        if m := HEADER_RE.match(line):
            table = named_table(m["table"])
            keys.append(ExampleKey(table, i, False, ""))
        elif m := KEY_RE.match(line):
            path = f"{table}.{m['key']}" if table else m["key"]
            keys.append(ExampleKey(path, i, bool(m["hash"]), m["value"]))
            if m["value"].startswith("{"):
                # An inline table documents its own keys too, e.g. tls = {cert = "...", key = "..."}.
                for inner in re.findall(r"([a-z_]+) = ", m["value"]):
                    keys.append(ExampleKey(f"{path}.{inner}", i, bool(m["hash"]), ""))
    return keys


def named_table(table: str) -> str:
    """[processes.worker] documents the keys of any [processes.NAME]: its path is "processes"."""
    first, _, _ = table.partition(".")
    field = Config.model_fields.get(first)
    if field is not None and typing.get_origin(field.annotation) is dict:
        return first
    return table


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside `App`, `tuple[Static, ...]`, `Host | None`, …, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (model := nested_model(arg)) is not None:
            return model
    return None


def model_key_paths(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        paths.append(prefix + name)
        if (inner := nested_model(field.annotation)) is not None:
            paths += model_key_paths(inner, f"{prefix}{name}.")
    return paths


def test_model_walk_finds_nested_tables() -> None:
    # Guards the walk below: if it stopped recursing, the example check would pass vacuously.
    paths = model_key_paths()
    for expected in ("app.name", "app.static.url", "server.base", "gunicorn.workers", "nginx.gzip", "hosts.roles"):
        assert expected in paths
    assert len(paths) > 45


def test_example_parses_with_two_hosts_and_a_static_folder() -> None:
    cfg = parse_config(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")), EXAMPLE.name)
    assert cfg.app.static == (Static(),)
    assert [h.name for h in cfg.hosts] == ["web1", "web2"]
    assert all(h.address.startswith("203.0.113.") for h in cfg.hosts)


def test_example_names_every_key_of_the_model() -> None:
    in_example = {k.path for k in example_keys()}
    missing = [p for p in model_key_paths() if p not in in_example]
    assert not missing, f"{EXAMPLE.name} does not document: {', '.join(missing)}"


def test_example_names_no_key_the_model_lacks() -> None:
    # Active keys are caught by parse_config (unknown key); this catches stale commented-out ones.
    known = set(model_key_paths())
    stale = [f"line {k.lineno + 1}: {k.path}" for k in example_keys() if k.path not in known]
    assert not stale, f"{EXAMPLE.name} documents keys the model does not have: {stale}"


def test_every_example_key_has_a_comment_with_its_default() -> None:
    lines = example_lines()
    seen: set[str] = set()
    undocumented = []
    for key in example_keys():
        if key.path in seen:
            continue  # the second [[hosts]] example
        seen.add(key.path)
        above = []
        i = key.lineno - 1
        while i >= 0 and lines[i].startswith("#") and not KEY_RE.match(lines[i]):
            above.append(lines[i])
            i -= 1
        if not above or "default" not in " ".join(above):
            undocumented.append(key.path)
    assert not undocumented, f"keys without a comment saying what they do and their default: {undocumented}"


def test_example_sets_every_setting_to_its_default() -> None:
    cfg = parse_config(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")), EXAMPLE.name)
    differ = []
    tables = [name for name, field in Config.model_fields.items() if nested_model(field.annotation) is field.annotation]
    assert {"app", "server", "gunicorn", "nginx"} <= set(tables)
    for table in tables:
        section = getattr(cfg, table)
        for key, field in type(section).model_fields.items():
            if field.is_required() or (table, key) == ("app", "static"):
                continue  # required keys and the [[app.static]] example have no default to match
            if getattr(section, key) != field.default:
                differ.append(f"{table}.{key} = {getattr(section, key)!r}, default {field.default!r}")
    assert not differ, differ


COMMENTED = [k for k in example_keys() if k.commented and k.value]  # inline-table keys ride on their line


def test_example_has_commented_settings() -> None:
    assert {k.path for k in COMMENTED} >= {"server.user", "server.base", "gunicorn.socket", "gunicorn.bind"}


@pytest.mark.parametrize("key", COMMENTED, ids=[k.path for k in COMMENTED])
def test_each_commented_example_value_is_valid(key: ExampleKey) -> None:
    lines = example_lines()
    lines[key.lineno] = lines[key.lineno].removeprefix("# ")
    cfg = parse_config(tomllib.loads("\n".join(lines)), EXAMPLE.name)
    node: Any = cfg
    for part in key.path.split("."):
        node = getattr(node, part)
        if isinstance(node, tuple) and node and isinstance(node[0], BaseModel):
            node = node[0]
        if isinstance(node, dict) and node:  # [processes.NAME]: the example's one table
            node = next(iter(node.values()))
    if isinstance(node, BaseModel):
        node = node.model_dump()
    if isinstance(node, tuple):  # TOML's arrays are the model's tuples
        node = list(node)
    assert node == tomllib.loads(f"v = {key.value}")["v"]


# --- bad input: one line each, naming the key ---------------------------------------

def bad(name: str, data: dict[str, Any], message: str, **kw: Any) -> Any:
    return pytest.param(data, message, id=name, **kw)


BAD = [
    # unknown keys name the key and list the allowed ones
    # (the allowed keys are the model's own, in its order)
    bad(
        "unknown-top-level-key",
        {"app": APP, "bogus": 1},
        f"garrison.toml: bogus: unknown key; allowed keys: {', '.join(Config.model_fields)}",
    ),
    bad(
        "unknown-key-in-table",
        {"app": {**APP, "colour": "red"}},
        f"garrison.toml: app.colour: unknown key; allowed keys: {', '.join(App.model_fields)}",
    ),
    bad(
        "unknown-key-in-array-of-tables",
        {"app": APP, "hosts": [{"name": "web1", "address": "203.0.113.10", "adress": "x"}]},
        f"garrison.toml: hosts[0].adress: unknown key; allowed keys: {', '.join(Host.model_fields)}",
    ),
    # wrong types
    bad(
        "string-for-int",
        {"app": APP, "gunicorn": {"timeout": "30"}},
        'garrison.toml: gunicorn.timeout: expected a positive integer, got "30"',
    ),
    bad(
        "int-for-string",
        {"app": APP, "nginx": {"client_max_body_size": 10}},
        'garrison.toml: nginx.client_max_body_size: expected an nginx size such as "10m" or "512k", got 10',
    ),
    bad(
        "yes-for-bool",
        {"app": APP, "server": {"default": "yes"}},
        'garrison.toml: server.default: expected true or false, got "yes"',
    ),
    bad(
        "string-for-table",
        {"app": APP, "server": "example.com"},
        'garrison.toml: server: expected a table, got "example.com"',
    ),
    bad("missing-app", {}, "garrison.toml: app: required key is missing"),
    # the entry point
    bad(
        "entry-without-colon",
        {"app": {"name": "myapp", "entry": "main"}},
        'garrison.toml: app.entry: expected "module:callable", e.g. "main:app", got "main"',
    ),
    # the app name becomes a Unix user and a service name
    *[
        bad(
            f"name-{why}",
            {"app": {"name": name, "entry": "main:app"}},
            "garrison.toml: app.name: expected a Unix user and service name (lowercase letter or _, "
            f'then a-z 0-9 _ -, at most 32 characters), got "{name}"',
        )
        for why, name in (("uppercase", "MyApp"), ("space", "my app"), ("too-long", "a" * 33))
    ],
    bad(
        "name-reserved",
        {"app": {"name": "root", "entry": "main:app"}},
        'garrison.toml: app.name: expected a name that is not a system user or service, got "root"',
    ),
    # paths stay inside the app root
    bad(
        "static-escapes-root",
        {"app": {**APP, "static": [{"path": "../x"}]}},
        'garrison.toml: app.static[0].path: expected a path inside the app root, got "../x" which escapes it',
    ),
    bad(
        "requirements-escape-root",
        {"app": {**APP, "requirements": "../r.txt"}},
        'garrison.toml: app.requirements: expected a path inside the app root, got "../r.txt" which escapes it',
    ),
    # ports
    *[
        bad(
            f"port-{shown}",
            {"app": APP, "server": {"port": port}},
            f"garrison.toml: server.port: expected a port number from 1 to 65535, got {shown}",
        )
        for port, shown in ((0, "0"), (70000, "70000"), (True, "true"))
    ],
    bad(
        "ssh-port-bool",
        {"app": APP, "hosts": [{"name": "web1", "address": "203.0.113.10", "port": False}]},
        "garrison.toml: hosts[0].port: expected a port number from 1 to 65535, got false",
    ),
    # gunicorn
    bad(
        "socket-and-bind",
        {"app": APP, "gunicorn": {"socket": "/srv/myapp/sockets", "bind": "127.0.0.1:9000"}},
        "garrison.toml: gunicorn: expected either socket (a unix socket) or bind (a TCP port), not both",
    ),
    bad(
        "workers-x",
        {"app": APP, "gunicorn": {"workers": "x"}},
        'garrison.toml: gunicorn.workers: expected a positive integer or "auto", got "x"',
    ),
    bad(
        "workers-zero",
        {"app": APP, "gunicorn": {"workers": 0}},
        'garrison.toml: gunicorn.workers: expected a positive integer or "auto", got 0',
    ),
    bad(
        "duplicate-host-names",
        {"app": APP, "hosts": [{"name": "web1", "address": "203.0.113.10"}, {"name": "web1", "address": "203.0.113.11"}]},
        'garrison.toml: hosts: expected unique host names, got "web1" twice',
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_input_gives_one_line_naming_the_key(data: dict[str, Any], message: str) -> None:
    got = config_error(data)
    assert got == message
    assert "\n" not in got


def test_several_problems_give_one_line_each() -> None:
    got = config_error({"app": APP, "gunicorn": {"workers": "x", "timeout": "y"}})
    assert got.splitlines() == [
        'garrison.toml: gunicorn.workers: expected a positive integer or "auto", got "x"',
        'garrison.toml: gunicorn.timeout: expected a positive integer, got "y"',
    ]


# --- files on disk ------------------------------------------------------------------


def write_app(folder: Path) -> None:
    (folder / "main.py").write_text("app = None\n")
    (folder / "requirements.txt").write_text("flask\n")
    (folder / "static").mkdir()


def test_missing_file_says_to_run_init(tmp_path: Path) -> None:
    path = tmp_path / "garrison.toml"
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not found")
    assert "run `garrison init`" in msg
    assert "\n" not in msg


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "garrison.toml"
    path.write_text('[app]\nname = "myapp"\nentry = \n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert msg.startswith("garrison.toml: TOML syntax error: ")
    assert "line 3" in msg
    assert "\n" not in msg


def test_text_is_parsed_without_a_file() -> None:
    # garrison.config is pure: the caller reads the file and passes its text and name.
    with pytest.raises(ConfigError) as exc:
        parse_toml('[app]\nentry = \n', "elsewhere.toml")
    assert str(exc.value).startswith("elsewhere.toml: TOML syntax error: ") and "line 2" in str(exc.value)
    data = parse_toml(PYPROJECT, "pyproject.toml")
    table, label = settings_table(data, "pyproject.toml")
    assert label == "pyproject.toml: tool.garrison"
    assert parse_config(table, label).gunicorn.workers == 3
    assert settings_table({"app": {}}, "garrison.toml") == ({"app": {}}, "garrison.toml")
    with pytest.raises(ConfigError, match=r"^pyproject.toml: no \[tool.garrison\] table"):
        settings_table({"project": {"name": "x"}}, "pyproject.toml")


def test_load_config_reads_a_garrison_toml(tmp_path: Path) -> None:
    write_app(tmp_path)
    (tmp_path / "garrison.toml").write_text('[app]\nname = "myapp"\nentry = "main:app"\n[[app.static]]\n')
    project = load_project(tmp_path / "garrison.toml")
    assert project.config.app.name == "myapp"
    assert project.root == tmp_path.resolve()


def test_load_project_checks_the_static_folder_exists(tmp_path: Path) -> None:
    write_app(tmp_path)
    (tmp_path / "garrison.toml").write_text('[app]\nname = "myapp"\nentry = "main:app"\n[[app.static]]\npath = "assets"\n')
    with pytest.raises(ConfigError) as exc:
        load_project(tmp_path / "garrison.toml")
    assert str(exc.value).startswith('garrison.toml: app.static[0].path: expected a folder in the app folder, got "assets"')
    assert "\n" not in str(exc.value)


PYPROJECT = """\
[project]
name = "myapp"
version = "1"

[tool.garrison.app]
name = "myapp"
entry = "main:app"

[[tool.garrison.app.static]]
path = "static"

[tool.garrison.gunicorn]
workers = 3
"""


def test_tool_garrison_in_pyproject_is_read(tmp_path: Path) -> None:
    write_app(tmp_path)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    project = load_project(tmp_path / "pyproject.toml")
    assert project.config.app.name == "myapp"
    assert project.config.gunicorn.workers == 3
    assert project.source == (tmp_path / "pyproject.toml").resolve()
    # With no garrison.toml, the folder's pyproject.toml is the project.
    assert find_project(tmp_path).config == project.config


def test_errors_in_tool_garrison_name_the_table(tmp_path: Path) -> None:
    write_app(tmp_path)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace("workers = 3", 'workers = "x"'))
    with pytest.raises(ConfigError) as exc:
        load_project(tmp_path / "pyproject.toml")
    assert str(exc.value) == (
        'pyproject.toml: tool.garrison: gunicorn.workers: expected a positive integer or "auto", got "x"'
    )


def test_pyproject_without_tool_garrison_is_an_error(tmp_path: Path) -> None:
    write_app(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "myapp"\n')
    with pytest.raises(ConfigError) as exc:
        load_project(tmp_path / "pyproject.toml")
    msg = str(exc.value)
    assert msg.startswith("pyproject.toml: no [tool.garrison] table")
    assert "garrison init" in msg
    assert "\n" not in msg


# --- the model itself ---------------------------------------------------------------


def test_config_is_frozen() -> None:
    cfg = parse_config({"app": APP})
    with pytest.raises(ValidationError):
        cfg.app.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        cfg.gunicorn = Gunicorn(workers=3)  # type: ignore[misc]
    assert cfg.app.name == "myapp" and cfg.gunicorn.workers == "auto"


def test_user_and_base_default_to_the_app_name() -> None:
    cfg = parse_config({"app": APP})
    assert cfg.server.user is None and cfg.server.base is None
    assert cfg.user == "myapp"
    assert cfg.base == "/srv/myapp"


def test_user_and_base_can_be_set() -> None:
    cfg = parse_config({"app": APP, "server": {"user": "web", "base": "/opt/myapp/"}})
    assert cfg.user == "web"
    assert cfg.base == "/opt/myapp"


@pytest.mark.parametrize(
    ("gunicorn", "jitter"),
    [
        ({}, 0),  # max_requests defaults to 0: no recycling, no jitter
        ({"max_requests": 1000}, 100),
        ({"max_requests": 55}, 5),
        ({"max_requests": 0}, 0),
        ({"max_requests_jitter": 7}, 7),
        ({"max_requests": 1000, "max_requests_jitter": 0}, 0),  # 0 is a value, not "unset"
    ],
)
def test_jitter_defaults_to_a_tenth_of_max_requests(gunicorn: dict[str, int], jitter: int) -> None:
    assert parse_config({"app": APP, "gunicorn": gunicorn}).gunicorn.jitter == jitter


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"app": {"name": "a", "entry": "m:a", "static": [{"url": "/", "path": "s"}]}},
         'garrison.toml: app.static: expected a static URL below "/"'),
        ({"app": {"name": "a", "entry": "m:a", "static": [{"url": "/s/", "path": "s"}, {"url": "/s", "path": "t"}]}},
         'garrison.toml: app.static: expected a different url for each static folder, got "/s/" twice'),
        ({"app": {"name": "a", "entry": "m:a"}, "gunicorn": {"socket": "/run/a"}},
         "garrison.toml: gunicorn.socket: expected a folder of the app's own that survives a reboot"),
        ({"app": {"name": "a", "entry": "m:a"}, "gunicorn": {"socket": "/"}},
         "garrison.toml: gunicorn.socket: expected a folder of the app's own"),
        ({"app": {"name": "a", "entry": "m:a"}, "hooks": {"release": "a\nb"}},
         "garrison.toml: hooks.release: expected a one-line shell command"),
        ({"app": {"name": "a", "entry": "m:a"}, "gunicorn": {"bind": "0.0.0.0:9000"}},
         "garrison.toml: gunicorn.bind: expected a loopback or private address: gunicorn must never face the internet"),
        ({"app": {"name": "a", "entry": "m:a"}, "gunicorn": {"bind": "8.8.8.8:9000"}},
         "garrison.toml: gunicorn.bind: expected a loopback or private address"),
        ({"app": {"name": "a", "entry": "m:a"}, "nginx": {"rate_limit": "fast"}},
         'garrison.toml: nginx.rate_limit: expected an nginx rate such as "10r/s"'),
    ],
)
def test_values_nginx_or_a_reboot_would_reject(data, expected):
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert str(exc.value).startswith(expected), str(exc.value)


def test_private_and_loopback_binds_are_accepted():
    for bind in ("127.0.0.1:9000", "10.0.0.5:9000", "[::1]:9000", "192.168.1.2:8000"):
        cfg = parse_config({"app": {"name": "a", "entry": "m:a"}, "gunicorn": {"bind": bind}})
        assert cfg.gunicorn.bind == bind


def test_up_in_garrisons_own_checkout_serves_the_sample_app(tmp_path):
    """The README runs ./up in Garrison's checkout: its pyproject.toml is the tool's, not an app."""
    repo = Path(__file__).resolve().parents[2]
    assert find_project(repo, sample_if_missing=True).config.app.name == "ave_caesar"
    # Any other folder with a pyproject.toml (and no [tool.garrison]) is an app without a config.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\n')
    with pytest.raises(ConfigError, match="garrison init"):
        find_project(tmp_path, sample_if_missing=True)
