"""garrison.lockfiles: lock plans from small lockfiles written in each tool's real shape."""

from __future__ import annotations

import json

import pytest

from garrison.errors import ConfigError
from garrison.lockfiles import (
    LockfileError,
    LockPlan,
    Pin,
    detect,
    explain_version_changes,
    lock_mismatches,
    normalise,
    parse_freeze,
    plan_pipfile_lock,
    plan_poetry_lock,
    plan_requirements,
    plan_uv_lock,
    unpinned_line,
)

# ---------------------------------------------------------------- uv.lock

UV_PYPROJECT = """\
[project]
name = "notes-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [
    "flask>=3.1",
    "uvicorn[standard]>=0.30 ; sys_platform != 'win32'",
]

[dependency-groups]
dev = ["pytest>=8"]
"""

UV_LOCK = """\
version = 1
revision = 2
requires-python = ">=3.11"
resolution-markers = [
    "python_full_version >= '3.13'",
    "python_full_version < '3.13'",
]

[[package]]
name = "blinker"
version = "1.9.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/aa/blinker-1.9.0.tar.gz", hash = "sha256:00", size = 22460 }
wheels = [
    { url = "https://files.pythonhosted.org/packages/bb/blinker-1.9.0-py3-none-any.whl", hash = "sha256:01", size = 8458 },
]

[[package]]
name = "click"
version = "8.1.8"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "colorama", marker = "sys_platform == 'win32'" },
]

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "flask"
version = "3.1.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "blinker" },
    { name = "click" },
    { name = "werkzeug" },
]

[[package]]
name = "numpy"
version = "2.2.1"
source = { registry = "https://pypi.org/simple" }
resolution-markers = [
    "python_full_version >= '3.13'",
]

[[package]]
name = "numpy"
version = "2.1.3"
source = { registry = "https://pypi.org/simple" }
resolution-markers = [
    "python_full_version < '3.13'",
]

[[package]]
name = "notes-app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "flask" },
    { name = "uvicorn", extra = ["standard"], marker = "sys_platform != 'win32'" },
]

[package.dev-dependencies]
dev = [
    { name = "pytest" },
]

[package.metadata]
requires-dist = [
    { name = "flask", specifier = ">=3.1" },
    { name = "uvicorn", extras = ["standard"], marker = "sys_platform != 'win32'", specifier = ">=0.30" },
]

[package.metadata.requires-dev]
dev = [{ name = "pytest", specifier = ">=8" }]

[[package]]
name = "private-helpers"
version = "1.4.0"
source = { registry = "https://pypi.example.com/simple/" }

[[package]]
name = "pytest"
version = "8.3.4"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "uvicorn"
version = "0.34.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "Werkzeug"
version = "3.1.3"
source = { registry = "https://pypi.org/simple" }
"""


def test_uv_lock_pins_every_registry_package() -> None:
    plan = plan_uv_lock(UV_LOCK, UV_PYPROJECT)
    assert plan.kind == "uv.lock"
    lines = plan.constraints.splitlines()
    for line in ("blinker==1.9.0", "click==8.1.8", "flask==3.1.0", "werkzeug==3.1.3", "pytest==8.3.4"):
        assert line in lines
    assert not any(line.startswith("notes-app") for line in lines)  # the project itself is not a pin
    assert plan.index_urls == ("https://pypi.example.com/simple",)


def test_uv_lock_forked_versions_keep_their_markers() -> None:
    lines = plan_uv_lock(UV_LOCK, UV_PYPROJECT).constraints.splitlines()
    assert "numpy==2.2.1 ; python_full_version >= '3.13'" in lines
    assert "numpy==2.1.3 ; python_full_version < '3.13'" in lines


def test_uv_virtual_project_installs_its_direct_dependencies() -> None:
    plan = plan_uv_lock(UV_LOCK, UV_PYPROJECT)
    assert plan.project is False
    # Dev groups are not installed; extras and markers are kept; versions come from the pins.
    assert plan.requirements == ("flask", "uvicorn[standard] ; sys_platform != 'win32'")
    steps = plan.install_steps("/srv/n/releases/r1", "/tmp/c.txt", "/tmp/r.txt", ["gunicorn>=23"])
    assert steps == [("-c", "/tmp/c.txt", "-r", "/tmp/r.txt", "gunicorn>=23")]


def test_uv_packaged_project_installs_itself() -> None:
    lock = UV_LOCK.replace('source = { virtual = "." }', 'source = { editable = "." }')
    plan = plan_uv_lock(lock, UV_PYPROJECT)
    assert plan.project is True and plan.requirements == ()
    assert plan.install_steps("/rel", "/c", None, ["gunicorn"]) == [("-c", "/c", "/rel", "gunicorn")]


def test_uv_git_dependency_is_a_direct_reference() -> None:
    lock = UV_LOCK.replace(
        '    { name = "flask" },\n    { name = "uvicorn"',
        '    { name = "flask" },\n    { name = "tinylib" },\n    { name = "uvicorn"',
    ).replace(
        "[package.metadata]\nrequires-dist = [\n",
        '[package.metadata]\nrequires-dist = [\n    { name = "tinylib", git = "https://example.org/tinylib" },\n',
    )
    lock += '\n[[package]]\nname = "tinylib"\nversion = "0.2.0"\nsource = { git = "https://example.org/tinylib?rev=main#0123abc" }\n'
    pyproject = UV_PYPROJECT.replace('    "flask>=3.1",\n', '    "flask>=3.1",\n    "tinylib",\n')
    plan = plan_uv_lock(lock, pyproject)
    assert "tinylib @ git+https://example.org/tinylib@0123abc" in plan.requirements
    assert not any(p.name == "tinylib" for p in plan.pins)
    assert any("tinylib comes from git" in n for n in plan.notes)


def test_stale_uv_lock_is_refused_in_one_line() -> None:
    pyproject = UV_PYPROJECT.replace('    "flask>=3.1",\n', '    "flask>=3.1",\n    "requests",\n')
    with pytest.raises(LockfileError) as exc:
        plan_uv_lock(UV_LOCK, pyproject)
    message = str(exc.value)
    assert message.startswith("uv.lock: out of date with pyproject.toml (differs in requests)")
    assert "`uv lock`" in message and "\n" not in message
    assert isinstance(exc.value, ConfigError)  # exit code 2, printed as one line by the CLI


def test_uv_lock_of_another_project_is_refused() -> None:
    with pytest.raises(LockfileError, match=r"^uv.lock: does not lock the project of pyproject.toml \(other\)"):
        plan_uv_lock(UV_LOCK.replace('source = { virtual = "." }', 'source = { registry = "https://pypi.org/simple" }'),
                     UV_PYPROJECT.replace('name = "notes-app"', 'name = "other"'))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("version = 1\n[[package]\nname = 'x'\n", "uv.lock: not valid TOML"),
        ("version = 1\n[[package]]\nversion = '1.0'\n", "uv.lock: [[package]] tables without a name"),
    ],
)
def test_broken_uv_lock(text: str, words: str) -> None:
    with pytest.raises(LockfileError) as exc:
        plan_uv_lock(text, UV_PYPROJECT)
    assert str(exc.value).startswith(words) and "uv lock" in str(exc.value)


# ---------------------------------------------------------------- poetry.lock

POETRY_PYPROJECT = """\
[tool.poetry]
name = "shop"
version = "1.0.0"
description = ""
authors = ["A <a@example.org>"]

[tool.poetry.dependencies]
python = "^3.11"
Django = "^5.1"
psycopg = {version = "^3.2", extras = ["binary"]}
sentry-sdk = {version = "^2.0", optional = true}
tzdata = {version = "*", markers = "sys_platform == 'win32'"}

[tool.poetry.group.dev.dependencies]
pytest = "^8.3"

[build-system]
requires = ["poetry-core>=1.0.0"]
build-backend = "poetry.core.masonry.api"
"""

POETRY_LOCK = """\
# This file is automatically @generated by Poetry 2.1.1 and should not be changed by hand.

[[package]]
name = "asgiref"
version = "3.8.1"
description = "ASGI specs, helper code, and adapters"
optional = false
python-versions = ">=3.8"
groups = ["main"]
files = [
    {file = "asgiref-3.8.1-py3-none-any.whl", hash = "sha256:02"},
    {file = "asgiref-3.8.1.tar.gz", hash = "sha256:03"},
]

[package.extras]
tests = ["mypy (>=0.800)", "pytest", "pytest-asyncio"]

[[package]]
name = "django"
version = "5.1.4"
description = "A high-level Python web framework"
optional = false
python-versions = ">=3.10"
groups = ["main"]
files = [
    {file = "Django-5.1.4-py3-none-any.whl", hash = "sha256:04"},
]

[package.dependencies]
asgiref = ">=3.8.1,<4"
sqlparse = ">=0.3.1"
tzdata = {version = "*", markers = "sys_platform == \\"win32\\""}

[[package]]
name = "psycopg"
version = "3.2.3"
description = "PostgreSQL database adapter for Python"
optional = false
python-versions = ">=3.8"
groups = ["main"]
files = []

[package.dependencies]
psycopg-binary = {version = "3.2.3", optional = true, markers = "implementation_name != \\"pypy\\" and extra == \\"binary\\""}

[[package]]
name = "psycopg-binary"
version = "3.2.3"
description = "PostgreSQL database adapter for Python -- C optimisation distribution"
optional = false
python-versions = ">=3.8"
groups = ["main"]
markers = "implementation_name != \\"pypy\\""
files = []

[[package]]
name = "pytest"
version = "8.3.4"
description = "pytest: simple powerful testing with Python"
optional = false
python-versions = ">=3.8"
groups = ["dev"]
files = []

[[package]]
name = "sqlparse"
version = "0.5.3"
description = "A non-validating SQL parser."
optional = false
python-versions = ">=3.8"
groups = ["main"]
files = []

[[package]]
name = "tzdata"
version = "2024.2"
description = "Provider of IANA time zone data"
optional = false
python-versions = ">=2"
groups = ["main"]
markers = {main = "sys_platform == \\"win32\\""}
files = []

[[package]]
name = "shop-theme"
version = "0.3.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
files = []

[package.source]
type = "legacy"
url = "https://packages.example.com/simple"
reference = "private"

[metadata]
lock-version = "2.1"
python-versions = "^3.11"
content-hash = "0a1b2c"
"""


def test_poetry_lock_pins_with_markers() -> None:
    plan = plan_poetry_lock(POETRY_LOCK, POETRY_PYPROJECT)
    lines = plan.constraints.splitlines()
    assert "django==5.1.4" in lines and "sqlparse==0.5.3" in lines and "asgiref==3.8.1" in lines
    assert 'psycopg-binary==3.2.3 ; implementation_name != "pypy"' in lines
    assert 'tzdata==2024.2 ; sys_platform == "win32"' in lines  # the 2.1 per-group marker table
    assert "shop-theme==0.3.0" in lines
    assert plan.index_urls == ("https://packages.example.com/simple",)


def test_poetry_package_installs_the_project() -> None:
    plan = plan_poetry_lock(POETRY_LOCK, POETRY_PYPROJECT)
    assert plan.project is True and plan.requirements == ()


def test_poetry_non_package_mode_installs_main_dependencies() -> None:
    pyproject = POETRY_PYPROJECT.replace('authors = ["A <a@example.org>"]\n', 'authors = []\npackage-mode = false\n')
    plan = plan_poetry_lock(POETRY_LOCK, pyproject)
    assert plan.project is False
    # Not python, not the optional sentry-sdk, not the dev group; extras and markers kept.
    assert plan.requirements == ("django", "psycopg[binary]", "tzdata ; sys_platform == 'win32'")


def test_poetry_git_dependency() -> None:
    lock = POETRY_LOCK.replace("[metadata]", (
        '[[package]]\nname = "shop-utils"\nversion = "0.1.0"\ndescription = ""\noptional = false\n'
        'python-versions = "*"\ngroups = ["main"]\nfiles = []\n\n[package.source]\ntype = "git"\n'
        'url = "https://example.org/shop-utils.git"\nreference = "main"\nresolved_reference = "9f8e7d"\n\n[metadata]'
    ))
    pyproject = POETRY_PYPROJECT.replace(
        "[tool.poetry.group", 'shop-utils = {git = "https://example.org/shop-utils.git", branch = "main"}\n\n[tool.poetry.group'
    ).replace("[build-system]", "[tool.poetry.x]\n\n[build-system]").replace('authors = ["A <a@example.org>"]', 'package-mode = false')
    plan = plan_poetry_lock(lock, pyproject)
    assert not any(p.name == "shop-utils" for p in plan.pins)
    assert "shop-utils @ git+https://example.org/shop-utils.git@9f8e7d" in plan.requirements


def test_poetry_lock_without_version_is_refused() -> None:
    with pytest.raises(LockfileError, match=r"^poetry.lock: package django has no version; regenerate it with `poetry lock`$"):
        plan_poetry_lock('[[package]]\nname = "django"\n', POETRY_PYPROJECT)


# ---------------------------------------------------------------- Pipfile.lock

PIPFILE_LOCK = {
    "_meta": {
        "hash": {"sha256": "5c6d"},
        "pipfile-spec": 6,
        "requires": {"python_version": "3.12"},
        "sources": [
            {"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": True},
            {"name": "internal", "url": "https://pypi.internal.example/simple/", "verify_ssl": True},
        ],
    },
    "default": {
        "flask": {"hashes": ["sha256:0a", "sha256:0b"], "index": "pypi", "markers": "python_version >= '3.9'",
                  "version": "==3.1.0"},
        "Werkzeug": {"hashes": ["sha256:0c"], "markers": "python_version >= '3.9'", "version": "==3.1.3"},
        "requests": {"extras": ["socks"], "hashes": ["sha256:0d"], "version": "==2.32.3"},
        "toolbox": {"git": "https://example.org/toolbox.git", "ref": "4d5e6f"},
        "notes": {"editable": True, "path": "."},
    },
    "develop": {"pytest": {"hashes": ["sha256:0e"], "version": "==8.3.4"}},
}


def test_pipfile_lock_installs_the_default_section_exactly() -> None:
    plan = plan_pipfile_lock(json.dumps(PIPFILE_LOCK, indent=4))
    assert plan.kind == "Pipfile.lock" and plan.project is False
    assert plan.requirements == (
        "flask==3.1.0 ; python_version >= '3.9'",
        "requests[socks]==2.32.3",
        "toolbox @ git+https://example.org/toolbox.git@4d5e6f",
        "werkzeug==3.1.3 ; python_version >= '3.9'",
    )
    assert "pytest==8.3.4" not in plan.constraints  # develop is not production
    assert "werkzeug==3.1.3 ; python_version >= '3.9'" in plan.constraints.splitlines()
    assert plan.index_urls == ("https://pypi.internal.example/simple",)
    assert any("notes is a local path" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"default": {', "Pipfile.lock: not valid JSON (line 1); regenerate it with `pipenv lock`"),
        ('{"_meta": {}}', 'Pipfile.lock: no "default" section; regenerate it with `pipenv lock`'),
        ('{"default": {"flask": "==3.1"}}', "Pipfile.lock: the entry of flask is not a table; regenerate it with `pipenv lock`"),
    ],
)
def test_broken_pipfile_lock(text: str, message: str) -> None:
    with pytest.raises(LockfileError) as exc:
        plan_pipfile_lock(text)
    assert str(exc.value) == message


# ---------------------------------------------------------------- pinned requirements

COMPILED = """\
#
# This file is autogenerated by pip-compile with Python 3.12
# by the following command:
#
#    pip-compile --generate-hashes requirements.in
#
--index-url https://pypi.org/simple
--extra-index-url https://wheels.example.com/simple

blinker==1.9.0 \\
    --hash=sha256:1a \\
    --hash=sha256:1b
    # via flask
Flask==3.1.0 \\
    --hash=sha256:1c
    # via -r requirements.in
importlib-metadata==8.5.0 ; python_version < "3.10" \\
    --hash=sha256:1d
    # via flask
"""


def test_hashed_requirements_are_a_lock() -> None:
    plan = plan_requirements(COMPILED)
    assert plan is not None
    assert plan.kind == "requirements" and plan.requirements_file == "requirements.txt" and plan.hashed
    assert plan.constraints.splitlines() == [
        "blinker==1.9.0",
        "flask==3.1.0",
        'importlib-metadata==8.5.0 ; python_version < "3.10"',
    ]
    assert plan.index_urls == ("https://wheels.example.com/simple",)


def test_hashed_requirements_install_additions_in_a_second_step() -> None:
    plan = plan_requirements(COMPILED)
    assert plan is not None
    steps = plan.install_steps("/rel", "/c.txt", None, ["gunicorn>=23"])
    # pip's hash-checking mode refuses an addition without a hash in the same command.
    assert steps == [("-r", "/rel/requirements.txt"), ("-c", "/c.txt", "gunicorn>=23")]


def test_plain_pinned_requirements_install_in_one_step() -> None:
    plan = plan_requirements("flask==3.1.0\nwerkzeug===3.1.3  # exact\n", "requirements/prod.txt")
    assert plan is not None and not plan.hashed
    assert plan.constraints == "flask==3.1.0\nwerkzeug==3.1.3\n"
    assert plan.install_steps("/rel", "/c", None, ["gunicorn"]) == [("-c", "/c", "-r", "/rel/requirements/prod.txt", "gunicorn")]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("flask==3.1.0\nrequests>=2.31\n", (2, "requests>=2.31")),
        ("flask\n", (1, "flask")),
        ("django==5.1.*\n", (1, "django==5.1.*")),
        ("-r base.txt\nflask==3.1.0\n", (1, "-r base.txt")),
        ("-e .\n", (1, "-e .")),
        ("flask==3.1.0,!=3.0.0\n", (1, "flask==3.1.0,!=3.0.0")),
    ],
)
def test_requirements_not_fully_pinned(text: str, line: tuple[int, str]) -> None:
    assert unpinned_line(text) == line
    assert plan_requirements(text) is None


def test_an_empty_requirements_file_is_no_lock() -> None:
    assert plan_requirements("# nothing yet\n") is None


# ---------------------------------------------------------------- detect


def test_detect_precedence() -> None:
    files = {
        "pyproject.toml": UV_PYPROJECT,
        "uv.lock": UV_LOCK,
        "poetry.lock": POETRY_LOCK,
        "Pipfile.lock": json.dumps(PIPFILE_LOCK),
        "requirements.txt": "flask==3.1.0\n",
    }
    kinds = []
    for name in ("uv.lock", "poetry.lock", "Pipfile.lock", "requirements.txt"):
        if name == "poetry.lock":
            files["pyproject.toml"] = POETRY_PYPROJECT
        plan = detect(files)
        assert plan is not None
        kinds.append(plan.kind)
        del files[name]
    assert kinds == ["uv.lock", "poetry.lock", "Pipfile.lock", "requirements"]
    assert detect(files) is None


def test_detect_reads_the_configured_requirements_file() -> None:
    files = {"requirements.txt": "flask\n", "requirements/prod.txt": "flask==3.1.0\n"}
    assert detect(files) is None  # requirements.txt is not pinned
    plan = detect(files, "requirements/prod.txt")
    assert plan is not None and plan.lockfile == "requirements/prod.txt"
    assert detect(files, "pyproject.toml") is None


def test_detect_refuses_a_lock_without_its_pyproject() -> None:
    with pytest.raises(LockfileError, match=r"^poetry.lock: found without the pyproject.toml it locks"):
        detect({"poetry.lock": POETRY_LOCK})


# ---------------------------------------------------------------- what a venv got


FREEZE = """\
blinker==1.9.0
Flask==3.1.0
-e git+https://example.org/toolbox.git@4d5e6f#egg=toolbox
notes @ file:///srv/notes/releases/r1
numpy==2.1.3
Werkzeug==2.3.8
gunicorn==23.0.0
"""


def test_parse_freeze() -> None:
    assert parse_freeze(FREEZE) == {
        "blinker": "1.9.0", "flask": "3.1.0", "numpy": "2.1.3", "werkzeug": "2.3.8", "gunicorn": "23.0.0",
    }


def test_lock_mismatches_name_package_and_both_versions() -> None:
    plan = plan_uv_lock(UV_LOCK, UV_PYPROJECT)
    # numpy 2.1.3 is one of the forked versions: not a mismatch; gunicorn is not locked.
    assert lock_mismatches(plan, FREEZE) == ["werkzeug 2.3.8 installed, uv.lock locks 3.1.3"]
    assert lock_mismatches(plan, FREEZE.replace("Werkzeug==2.3.8", "werkzeug==3.1.3")) == []


def test_explain_version_changes_one_line_per_moved_package() -> None:
    alone = {"Flask": "3.1.0", "Werkzeug": "3.1.3", "greenlet": "3.1.1", "click": "8.1.8"}
    added = {"flask": "2.3.3", "werkzeug": "2.3.8", "greenlet": "3.1.1", "click": "8.1.8", "gevent": "24.11.1"}
    assert explain_version_changes(alone, added, ["gunicorn[gevent]"]) == [
        "flask 3.1.0 → 2.3.3 because of gunicorn[gevent]",
        "werkzeug 3.1.3 → 2.3.8 because of gunicorn[gevent]",
    ]
    assert explain_version_changes(alone, alone, ["gunicorn[gevent]"]) == []


def test_explain_version_changes_names_the_addition_that_moved_it() -> None:
    alone = {"werkzeug": "3.1.3", "h11": "0.16.0"}
    added = {"werkzeug": "2.3.8", "h11": "0.14.0"}
    per_addition = {
        "gunicorn[gevent]": {"werkzeug": "2.3.8", "h11": "0.16.0"},
        "uvicorn-worker": {"werkzeug": "3.1.3", "h11": "0.14.0"},
    }
    assert explain_version_changes(alone, added, ["gunicorn[gevent]", "uvicorn-worker"], per_addition) == [
        "h11 0.16.0 → 0.14.0 because of uvicorn-worker",
        "werkzeug 3.1.3 → 2.3.8 because of gunicorn[gevent]",
    ]
    # Without the per-addition resolutions every addition is named.
    assert explain_version_changes(alone, added, ["a", "b"])[0] == "h11 0.16.0 → 0.14.0 because of a, b"


@pytest.mark.parametrize(("raw", "name"), [("Flask_SQLAlchemy", "flask-sqlalchemy"), ("zope.interface", "zope-interface"),
                                           ("A--B__c", "a-b-c")])
def test_normalise(raw: str, name: str) -> None:
    assert normalise(raw) == name


def test_pin_line_and_plan_without_requirements_path() -> None:
    assert Pin("x", "1.0", "os_name == 'posix'").line == "x==1.0 ; os_name == 'posix'"
    plan = LockPlan(kind="uv.lock", lockfile="uv.lock", pins=(), requirements=("flask",))
    with pytest.raises(ValueError):
        plan.install_steps("/rel", "/c", None, [])
