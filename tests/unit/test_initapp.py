"""`garrison init` detection: pure scan/render with in-memory files, then run_init on disk."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from garrison.errors import ConfigError, DetectError, GarrisonError
from garrison.initapp import NOT_FOUND, Detection, normalise_name, read_app_folder, render_toml, run_init, scan

FLASK_APP = "from flask import Flask\n\napp = Flask(__name__)\n"
FACTORY = "from flask import Flask\n\ndef create_app(config=None):\n    app = Flask(__name__)\n    return app\n"


# ---------------------------------------------------------------- entry point


def test_app_object_in_main() -> None:
    d = scan({"main.py": FLASK_APP, "requirements.txt": "flask\n"}, {"static"}, "ave_caesar")
    assert d.entry == "main:app"
    assert d.name == "ave_caesar"
    assert "found Flask app `app` in main.py" in d.notes


def test_factory_in_package_init() -> None:
    d = scan({"mypkg/__init__.py": FACTORY}, {"mypkg"}, "proj")
    assert d.entry == "mypkg:create_app()"
    assert any("create_app()" in n and "mypkg/__init__.py" in n for n in d.notes)


def test_app_object_in_package_module() -> None:
    d = scan({"mypkg/__init__.py": "", "mypkg/app.py": FLASK_APP}, {"mypkg"})
    assert d.entry == "mypkg.app:app"


def test_package_without_init_is_not_a_package() -> None:
    assert scan({"mypkg/app.py": FLASK_APP}).entry is None


def test_wsgi_preferred_over_app_and_main() -> None:
    files = {
        "main.py": FLASK_APP,
        "app.py": FLASK_APP,
        "wsgi.py": "import flask\napplication = flask.Flask(__name__)\n",
        "mypkg/__init__.py": FACTORY,
    }
    assert scan(files).entry == "wsgi:application"
    del files["wsgi.py"]
    assert scan(files).entry == "app:app"
    del files["app.py"]
    assert scan(files).entry == "main:app"
    del files["main.py"]
    assert scan(files).entry == "mypkg:create_app()"


def test_flask_attribute_form() -> None:
    assert scan({"app.py": "import flask\n\nserver = flask.Flask('x')\n"}).entry == "app:server"


def test_import_aliases() -> None:
    assert scan({"app.py": "from flask import Flask as F\nweb = F(__name__)\n"}).entry == "app:web"
    assert scan({"app.py": "import flask as fl\nweb: fl.Flask = fl.Flask(__name__)\n"}).entry == "app:web"


def test_app_object_preferred_over_factory_in_same_file() -> None:
    source = FACTORY + "\napplication = Flask(__name__)\n"
    assert scan({"main.py": source}).entry == "main:application"


def test_only_module_level_code_counts() -> None:
    source = (
        "from flask import Flask\n"
        "def build():\n    app = Flask(__name__)\n    return app\n"
        "class Factory:\n    def create_app(self):\n        pass\n"
        "if __name__ == '__main__':\n    dev = Flask(__name__)\n"
    )
    assert scan({"main.py": source}).entry is None


def test_other_calls_are_not_apps() -> None:
    assert scan({"main.py": "from quart import Quart\napp = Quart(__name__)\n"}).entry is None


def test_user_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    source = f"open({str(marker)!r}, 'w').close()\n" + FLASK_APP
    assert scan({"main.py": source}).entry == "main:app"
    assert not marker.exists()


def test_unparsable_file_is_skipped_with_a_note() -> None:
    d = scan({"wsgi.py": "def broken(:\n", "main.py": FLASK_APP})
    assert d.entry == "main:app"
    assert any(n.startswith("skipped wsgi.py") for n in d.notes)


def test_factory_with_required_arguments_is_flagged() -> None:
    d = scan({"app.py": "def create_app(env):\n    ...\n"})
    assert d.entry == "app:create_app()"
    assert any("required arguments" in n for n in d.notes)


def test_nothing_found_raises_detect_error(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("print('hello')\n")
    (tmp_path / "requirements.txt").write_text("flask\n")
    with pytest.raises(DetectError) as exc:
        run_init(tmp_path)
    message = str(exc.value)
    assert message == NOT_FOUND
    assert "\n" not in message
    assert "create_app()" in message and 'entry = "module:callable"' in message
    assert not (tmp_path / "garrison.toml").exists()


def test_render_without_entry_raises() -> None:
    with pytest.raises(DetectError):
        render_toml(Detection(name="x", entry=None))


# ---------------------------------------------------------------- requirements


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"requirements.txt": "flask\n", "pyproject.toml": '[project]\nname = "a"\ndependencies = ["flask"]\n'},
         "requirements.txt"),
        ({"pyproject.toml": '[project]\nname = "a"\ndependencies = ["flask"]\n'}, "pyproject.toml"),
        ({"pyproject.toml": '[project]\nname = "a"\n'}, None),
        ({"pyproject.toml": "[tool.black]\nline-length = 100\n"}, None),
        ({"pyproject.toml": "this is [not toml"}, None),
        ({}, None),
    ],
)
def test_requirements(files: dict[str, str], expected: str | None) -> None:
    assert scan({"main.py": FLASK_APP, **files}).requirements == expected


# ---------------------------------------------------------------- name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("My App!", "my_app_"),
        ("ave_caesar", "ave_caesar"),
        ("Ave-Caesar", "ave-caesar"),
        ("2048game", "_2048game"),
        ("-x", "_x"),
        ("Café", "caf_"),
        ("", "app"),
        ("a" * 40, "a" * 32),
    ],
)
def test_normalise_name(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


def test_name_from_folder_is_normalised() -> None:
    assert scan({"main.py": FLASK_APP}, set(), "My App!").name == "my_app_"


def test_name_from_pyproject_wins_over_folder() -> None:
    d = scan({"main.py": FLASK_APP, "pyproject.toml": '[project]\nname = "Ave.Caesar"\n'}, set(), "folder")
    assert d.name == "ave_caesar"


def test_reserved_name_is_suffixed() -> None:
    assert scan({"main.py": FLASK_APP}, set(), "nginx").name == "nginx_app"


# ---------------------------------------------------------------- static


def test_static_at_root() -> None:
    assert scan({"main.py": FLASK_APP}, {"static"}).static == (("/static/", "static"),)
    assert scan({"main.py": FLASK_APP}, {"templates"}).static == ()


def test_static_inside_package() -> None:
    files = {"mypkg/__init__.py": FACTORY}
    d = scan(files, {"mypkg", "mypkg/static", "mypkg/templates"})
    assert d.static == (("/static/", "mypkg/static"),)
    # Without one in the package, a root static/ is still served.
    assert scan(files, {"mypkg", "static"}).static == (("/static/", "static"),)


def test_static_folder_keywords_are_followed() -> None:
    source = "from flask import Flask\napp = Flask(__name__, static_folder='assets', static_url_path='/a')\n"
    assert scan({"main.py": source}, {"assets", "static"}).static == (("/a/", "assets"),)
    source = "from flask import Flask\napp = Flask(__name__, static_folder='public')\n"
    assert scan({"main.py": source}, {"public"}).static == (("/public/", "public"),)
    source = "from flask import Flask\napp = Flask(__name__, static_folder=None)\n"
    assert scan({"main.py": source}, {"static"}).static == ()


# ---------------------------------------------------------------- render


def test_rendered_toml_parses_with_detected_values() -> None:
    d = scan(
        {"mypkg/__init__.py": FACTORY, "pyproject.toml": '[project]\nname = "My App"\ndependencies = ["flask"]\n'},
        {"mypkg", "mypkg/static"},
    )
    text = render_toml(d)
    data = tomllib.loads(text)
    assert data["app"] == {
        "name": "my_app",
        "entry": "mypkg:create_app()",
        "root": ".",
        "requirements": "pyproject.toml",
        "health_path": "/",
        "static": [{"url": "/static/", "path": "mypkg/static"}],
    }
    assert data["server"] == {"names": ["localhost"], "port": 80}
    assert data["gunicorn"] == {}
    assert text.startswith("# garrison.toml, written by `garrison init`")
    assert "docs/garrison.example.toml" in text
    for note in d.notes:
        assert f"#   - {note}\n" in text


def test_rendered_toml_without_static_or_requirements() -> None:
    data = tomllib.loads(render_toml(scan({"main.py": FLASK_APP}, set(), "demo")))
    assert data["app"]["requirements"] == ""
    assert "static" not in data["app"]


def test_rendered_toml_escapes_strings() -> None:
    d = Detection(name="x", entry="main:app", static=(('/s"t/', 'we\\ird\npath'),), notes=("line\nbreak",))
    data = tomllib.loads(render_toml(d))
    assert data["app"]["static"] == [{"url": '/s"t/', "path": "we\\ird\npath"}]


# ---------------------------------------------------------------- I/O


def _flask_folder(root: Path) -> Path:
    app = root / "ave_caesar"
    (app / "static").mkdir(parents=True)
    (app / "templates").mkdir()
    (app / "main.py").write_text(FLASK_APP)
    (app / "requirements.txt").write_text("Flask>=3.0\n")
    return app


def test_read_app_folder_reads_only_candidates(tmp_path: Path) -> None:
    app = _flask_folder(tmp_path)
    (app / "other.py").write_text("x = 1\n")
    (app / "mypkg" / "static").mkdir(parents=True)
    (app / "mypkg" / "__init__.py").write_text("")
    (app / "mypkg" / "views.py").write_text("")
    (app / "notpkg").mkdir()
    (app / "notpkg" / "app.py").write_text(FLASK_APP)
    for skipped in (".venv", ".git", "__pycache__", "node_modules"):
        (app / skipped).mkdir()
        (app / skipped / "__init__.py").write_text(FLASK_APP)
    files, dirs = read_app_folder(app)
    assert set(files) == {"main.py", "requirements.txt", "mypkg/__init__.py"}
    assert dirs == {"static", "templates", "mypkg", "mypkg/static", "notpkg"}


def test_read_app_folder_replaces_bad_utf8(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_bytes(b"# caf\xe9\n" + FLASK_APP.encode())
    files, _ = read_app_folder(tmp_path)
    assert "\ufffd" in files["main.py"]
    assert scan(files).entry == "main:app"


def test_run_init_writes_toml(tmp_path: Path) -> None:
    app = _flask_folder(tmp_path)
    path, d = run_init(app)
    assert path == app / "garrison.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["app"]["name"] == "ave_caesar" == d.name
    assert data["app"]["entry"] == "main:app"
    assert data["app"]["static"] == [{"url": "/static/", "path": "static"}]
    assert [p.name for p in app.iterdir() if p.name.startswith(".garrison")] == []


def test_run_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    app = _flask_folder(tmp_path)
    (app / "garrison.toml").write_text("# mine\n")
    with pytest.raises(ConfigError) as exc:
        run_init(app)
    assert str(exc.value) == "garrison.toml: already exists; pass --force to overwrite it"
    assert isinstance(exc.value, GarrisonError)
    assert (app / "garrison.toml").read_text() == "# mine\n"
    path, _ = run_init(app, force=True)
    assert tomllib.loads(path.read_text())["app"]["entry"] == "main:app"


def test_run_init_on_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DetectError):
        run_init(tmp_path / "nope")


def test_load_config_accepts_written_toml(tmp_path: Path) -> None:
    config = pytest.importorskip("garrison.config")
    load_config = getattr(config, "load_config", None)
    if load_config is None:
        pytest.skip("garrison.config.load_config does not exist yet")
    app = _flask_folder(tmp_path)
    path, d = run_init(app)
    cfg = load_config(path)
    assert cfg.app.name == d.name
    assert cfg.app.entry == "main:app"
    assert cfg.app.requirements == "requirements.txt"
    assert [(s.url, s.path) for s in cfg.app.static] == [("/static/", "static")]


def test_load_config_accepts_factory_package_toml(tmp_path: Path) -> None:
    load_config = getattr(pytest.importorskip("garrison.config"), "load_config", None)
    if load_config is None:
        pytest.skip("garrison.config.load_config does not exist yet")
    (tmp_path / "mypkg" / "static").mkdir(parents=True)
    (tmp_path / "mypkg" / "__init__.py").write_text(FACTORY)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My App"\ndependencies = ["flask"]\n')
    path, _ = run_init(tmp_path)
    cfg = load_config(path)
    assert cfg.app.entry == "mypkg:create_app()"
    assert cfg.app.requirements == "pyproject.toml"
