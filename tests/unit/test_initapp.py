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
    assert scan({"main.py": "from mylib import Thing\napp = Thing(__name__)\n"}).entry is None
    # A class named like a framework's but imported from elsewhere is not that framework.
    assert scan({"main.py": "from mylib import Flask\napp = Flask(__name__)\n"}).entry is None


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
    lines = str(exc.value).splitlines()
    assert lines[0] == NOT_FOUND
    # One line per key the user must write, each in TOML as it goes into garrison.toml.
    assert lines[1].strip().startswith('[app] entry = "module:attr"') and "create_app()" in lines[1]
    assert lines[2].strip().startswith('[gunicorn] worker_class = "uvicorn"') and "ASGI" in lines[2]
    assert len(lines) == 3
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
    from garrison.project import load_config

    app = _flask_folder(tmp_path)
    path, d = run_init(app)
    cfg = load_config(path)
    assert cfg.app.name == d.name
    assert cfg.app.entry == "main:app"
    assert cfg.app.requirements == "requirements.txt"
    assert [(s.url, s.path) for s in cfg.app.static] == [("/static/", "static")]


def test_load_config_accepts_factory_package_toml(tmp_path: Path) -> None:
    from garrison.project import load_config

    (tmp_path / "mypkg" / "static").mkdir(parents=True)
    (tmp_path / "mypkg" / "__init__.py").write_text(FACTORY)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "My App"\ndependencies = ["flask"]\n')
    path, _ = run_init(tmp_path)
    cfg = load_config(path)
    assert cfg.app.entry == "mypkg:create_app()"
    assert cfg.app.requirements == "pyproject.toml"


# ---------------------------------------------------------------- Django

MANAGE = (
    "#!/usr/bin/env python\nimport os\nimport sys\n\n\ndef main():\n"
    "    os.environ.setdefault('DJANGO_SETTINGS_MODULE', '{module}')\n"
    "    from django.core.management import execute_from_command_line\n"
    "    execute_from_command_line(sys.argv)\n\n\nif __name__ == '__main__':\n    main()\n"
)
SETTINGS = (
    "from pathlib import Path\n"
    "BASE_DIR = Path(__file__).resolve().parent.parent\n"
    "SECRET_KEY = 'x'\n"
    "DEBUG = False\n"
    "ALLOWED_HOSTS = ['example.com']\n"
    "INSTALLED_APPS = ['django.contrib.admin', 'django.contrib.staticfiles', 'pages']\n"
    "ROOT_URLCONF = 'mysite.urls'\n"
    "WSGI_APPLICATION = 'mysite.wsgi.application'\n"
    "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'shop'}}\n"
    "STATIC_URL = 'static/'\n"
    "STATIC_ROOT = BASE_DIR / 'staticfiles'\n"
)
URLS = "from django.contrib import admin\nfrom django.urls import path\nfrom pages import views\n" \
       "urlpatterns = [path('admin/', admin.site.urls), path('', views.index)]\n"
WSGI = "import os\nfrom django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n"


def django_files(settings: str = SETTINGS, module: str = "mysite.settings", **extra: str) -> dict[str, str]:
    files = {
        "manage.py": MANAGE.format(module=module),
        "mysite/__init__.py": "",
        "mysite/settings.py": settings,
        "mysite/urls.py": URLS,
        "mysite/wsgi.py": WSGI,
        "requirements.txt": "django>=5.2\n",
    }
    files.update(extra)
    return files


def _with(setting: str, line: str, settings: str = SETTINGS) -> str:
    """SETTINGS with the line assigning `setting` replaced (or removed when line is empty)."""
    out = [ln for ln in settings.splitlines() if not ln.startswith(setting + " ")]
    return "\n".join(out + ([line] if line else [])) + "\n"


def test_django_startproject_layout() -> None:
    d = scan(django_files(), {"mysite", "pages"}, "djsite")
    assert d.framework == "Django"
    assert d.entry == "mysite.wsgi:application"
    assert d.static == (("/static/", "staticfiles"),)
    assert d.release_hook == "python manage.py collectstatic --noinput && python manage.py migrate --noinput"
    assert d.server_names == ("example.com",)
    assert d.health_path == "/"
    assert d.worker_class is None
    assert d.requirements == "requirements.txt"
    assert any(n.startswith("found Django project: settings mysite.settings (mysite/settings.py, manage.py's default)") for n in d.notes)
    assert not any("ALLOWED_HOSTS" in n and "400" in n for n in d.notes)


@pytest.mark.parametrize(
    "static_root",
    [
        "STATIC_ROOT = BASE_DIR / 'staticfiles'",
        "STATIC_ROOT = os.path.join(BASE_DIR, 'staticfiles')",
        "STATIC_ROOT = str(BASE_DIR / 'staticfiles')",
        "STATIC_ROOT = BASE_DIR.joinpath('staticfiles')",
        "STATIC_ROOT = Path(BASE_DIR, 'staticfiles')",
        "STATIC_ROOT = f'{BASE_DIR}/staticfiles'",
        "STATIC_ROOT = 'staticfiles'",
        "STATIC_ROOT: Path = BASE_DIR / 'staticfiles'",
    ],
)
def test_django_static_root_spellings(static_root: str) -> None:
    settings = "import os\n" + _with("STATIC_ROOT", static_root)
    assert scan(django_files(settings)).static == (("/static/", "staticfiles"),)


@pytest.mark.parametrize(
    "base_dir",
    [
        "BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))",
        "BASE_DIR = Path(__file__).resolve().parents[1]",
        "BASE_DIR = Path(os.path.realpath(__file__)).parent.parent",
    ],
)
def test_django_base_dir_spellings(base_dir: str) -> None:
    settings = "import os\nfrom pathlib import Path\n" + _with("BASE_DIR", "", SETTINGS).replace(
        "SECRET_KEY", base_dir + "\nSECRET_KEY", 1
    )
    settings = _with("STATIC_ROOT", "STATIC_ROOT = os.path.join(BASE_DIR, 'public', 'static')", settings)
    assert scan(django_files(settings)).static == (("/static/", "public/static"),)


@pytest.mark.parametrize(
    ("static_url", "url"),
    [("STATIC_URL = 'static/'", "/static/"), ("STATIC_URL = '/assets'", "/assets/"), ("STATIC_URL = '/s/x/'", "/s/x/")],
)
def test_django_static_url_is_normalised(static_url: str, url: str) -> None:
    assert scan(django_files(_with("STATIC_URL", static_url))).static == ((url, "staticfiles"),)


def test_django_missing_static_root_is_reported_and_assumed() -> None:
    d = scan(django_files(_with("STATIC_ROOT", "")))
    assert d.static == (("/static/", "staticfiles"),)  # what the note tells the user to set
    assert d.release_hook is not None and "collectstatic" in d.release_hook
    note = next(n for n in d.notes if "STATIC_ROOT is not set" in n)
    assert "mysite/settings.py" in note and 'STATIC_ROOT = BASE_DIR / "staticfiles"' in note


@pytest.mark.parametrize(
    ("static_root", "words"),
    [
        ("STATIC_ROOT = '/var/www/static'", "outside the app folder"),
        ("STATIC_ROOT = BASE_DIR.parent / 'static'", "outside the app folder"),
        ("STATIC_ROOT = os.environ['STATIC_ROOT']", "is computed"),
    ],
)
def test_django_static_root_not_servable(static_root: str, words: str) -> None:
    d = scan(django_files("import os\n" + _with("STATIC_ROOT", static_root)))
    assert d.static == ()
    assert any(words in n and "STATIC_ROOT" in n for n in d.notes)


def test_django_cdn_static_url() -> None:
    d = scan(django_files(_with("STATIC_URL", "STATIC_URL = 'https://cdn.example.com/static/'")))
    assert d.static == ()
    assert any("CDN" in n for n in d.notes)


def test_django_without_staticfiles_app_only_migrates() -> None:
    d = scan(django_files(_with("INSTALLED_APPS", "INSTALLED_APPS = ['django.contrib.auth', 'pages']")))
    assert d.static == ()
    assert d.release_hook == "python manage.py migrate --noinput"


def test_django_split_settings_follow_star_imports() -> None:
    base = SETTINGS.replace(".parent.parent", ".parent.parent.parent").replace("'mysite.wsgi.application'", "'config.wsgi.application'")
    files = {
        "manage.py": MANAGE.format(module="config.settings.production"),
        "config/__init__.py": "",
        "config/settings/__init__.py": "",
        "config/settings/base.py": _with("STATIC_ROOT", "STATIC_ROOT = BASE_DIR / 'collected'", base),
        "config/settings/production.py": "from .base import *\nDEBUG = False\nALLOWED_HOSTS = ['shop.example.com']\n",
        "config/wsgi.py": WSGI,
    }
    d = scan(files)
    assert d.entry == "config.wsgi:application"
    assert d.static == (("/static/", "collected"),)
    assert d.server_names == ("shop.example.com",)


def test_django_default_wsgi_when_setting_missing() -> None:
    d = scan(django_files(_with("WSGI_APPLICATION", "")))
    assert d.entry == "mysite.wsgi:application"
    assert any("WSGI_APPLICATION not found" in n for n in d.notes)


def test_django_settings_from_environ_assignment() -> None:
    files = django_files()
    files["manage.py"] = "import os\nos.environ['DJANGO_SETTINGS_MODULE'] = 'mysite.settings'\n"
    assert scan(files).framework == "Django"


def test_manage_py_without_settings_falls_back_to_app_scan() -> None:
    d = scan({"manage.py": "print('hi')\n", "app.py": FLASK_APP})
    assert d.entry == "app:app"
    assert d.framework == "Flask"
    assert any("not treated as a Django project" in n for n in d.notes)


def test_django_wins_over_a_flask_app_in_the_same_folder() -> None:
    assert scan(django_files(**{"app.py": FLASK_APP})).entry == "mysite.wsgi:application"


def test_django_settings_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    settings = f"open({str(marker)!r}, 'w').close()\n" + SETTINGS
    assert scan(django_files(settings)).framework == "Django"
    assert not marker.exists()


# ---------------------------------------------------------------- Django: hosts, debug, db, health


def test_django_empty_allowed_hosts_warns() -> None:
    d = scan(django_files(_with("ALLOWED_HOSTS", "ALLOWED_HOSTS = []")))
    assert d.server_names == ("localhost",)
    note = next(n for n in d.notes if n.startswith("ALLOWED_HOSTS is empty"))
    assert "400 Bad Request" in note and "health check" in note


def test_django_missing_allowed_hosts_warns() -> None:
    d = scan(django_files(_with("ALLOWED_HOSTS", "")))
    assert any(n.startswith("ALLOWED_HOSTS is empty") for n in d.notes)


def test_django_allowed_hosts_become_server_names() -> None:
    d = scan(django_files(_with("ALLOWED_HOSTS", "ALLOWED_HOSTS = ['.example.org', 'www.example.com', '*', '[::1]']")))
    assert d.server_names == ("example.org", "www.example.com")
    assert any("accepts any Host" in n for n in d.notes)


def test_django_wildcard_only_keeps_localhost() -> None:
    assert scan(django_files(_with("ALLOWED_HOSTS", "ALLOWED_HOSTS = ['*']"))).server_names == ("localhost",)


def test_django_computed_allowed_hosts_note() -> None:
    settings = "import os\n" + _with("ALLOWED_HOSTS", "ALLOWED_HOSTS = os.environ.get('HOSTS', '').split(',')")
    d = scan(django_files(settings))
    assert d.server_names == ("localhost",)
    # The file and line that init could not read.
    assert any("ALLOWED_HOSTS in mysite/settings.py line 12 is computed" in n and "400" in n for n in d.notes)


def test_django_allowed_hosts_extended_later_is_computed() -> None:
    d = scan(django_files(SETTINGS + "ALLOWED_HOSTS += ['other.example.com']\n"))
    assert any("is computed" in n and "ALLOWED_HOSTS" in n for n in d.notes)


@pytest.mark.parametrize(
    ("host", "patterns", "ok"),
    [
        ("example.com", ["example.com"], True),
        ("EXAMPLE.com", ["example.COM"], True),
        ("www.example.com", [".example.com"], True),
        ("example.com", [".example.com"], True),
        ("badexample.com", [".example.com"], False),
        ("localhost", ["*"], True),
        ("localhost", ["example.com"], False),
        ("localhost", [], False),
    ],
)
def test_allowed_hosts_rule_matches_djangos(host: str, patterns: list[str], ok: bool) -> None:
    from garrison.initapp import _host_allowed

    assert _host_allowed(host, patterns) is ok


def test_django_debug_and_sqlite_in_release_are_reported() -> None:
    settings = _with("DEBUG", "DEBUG = True")
    settings = _with(
        "DATABASES",
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': BASE_DIR / 'db.sqlite3'}}",
        settings,
    )
    d = scan(django_files(settings), set(), "djsite")
    assert any(n.startswith("DEBUG = True in mysite/settings.py") for n in d.notes)
    note = next(n for n in d.notes if "SQLite" in n)
    assert "db.sqlite3" in note and "/srv/djsite/shared/" in note


def test_django_sqlite_under_shared_is_fine() -> None:
    settings = _with(
        "DATABASES",
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': '/srv/djsite/shared/db.sqlite3'}}",
    )
    assert not any("SQLite" in n for n in scan(django_files(settings)).notes)


def test_django_health_path_is_admin_login_without_a_root_view() -> None:
    urls = "from django.contrib import admin\nfrom django.urls import path\nurlpatterns = [path('admin/', admin.site.urls)]\n"
    d = scan(django_files(**{"mysite/urls.py": urls}))
    assert d.health_path == "/admin/login/"
    assert any("/admin/login/" in n for n in d.notes)


def test_django_health_path_with_re_path_root_and_include() -> None:
    urls = "from django.urls import include, re_path\nurlpatterns = [re_path(r'^$', include('pages.urls'))]\n"
    assert scan(django_files(**{"mysite/urls.py": urls})).health_path == "/"


def test_django_without_requirements_says_django_is_needed() -> None:
    files = django_files()
    del files["requirements.txt"]
    assert any("needs at least `django`" in n for n in scan(files).notes)


def test_wanted_files_follow_settings_star_imports_and_urlconf() -> None:
    from garrison.initapp import wanted_files

    files = {"manage.py": MANAGE.format(module="config.settings.production")}
    assert wanted_files(files) == ["config/settings/production.py", "config/settings/production/__init__.py"]
    files["config/settings/production.py"] = "from .base import *\n"
    assert wanted_files(files) == ["config/settings/base.py", "config/settings/base/__init__.py"]
    files["config/settings/base.py"] = "ROOT_URLCONF = 'config.urls'\n"
    assert wanted_files(files) == ["config/urls.py", "config/urls/__init__.py"]
    files["config/urls.py"] = ""
    assert wanted_files(files) == []
    assert wanted_files({"app.py": FLASK_APP}) == []


def _django_folder(root: Path, settings: str = SETTINGS) -> Path:
    app = root / "djsite"
    for path, text in django_files(settings).items():
        (app / path).parent.mkdir(parents=True, exist_ok=True)
        (app / path).write_text(text)
    (app / "pages").mkdir()
    (app / "pages" / "__init__.py").write_text("")
    return app


def test_read_app_folder_reads_django_settings_and_urls(tmp_path: Path) -> None:
    app = _django_folder(tmp_path)
    files, _ = read_app_folder(app)
    assert {"manage.py", "mysite/settings.py", "mysite/urls.py", "mysite/wsgi.py"} <= set(files)


def test_run_init_django_toml_loads_without_static_root_in_source(tmp_path: Path) -> None:
    from garrison.project import load_config

    app = _django_folder(tmp_path)
    path, d = run_init(app)
    data = tomllib.loads(path.read_text())
    assert data["hooks"] == {"release": d.release_hook}
    assert data["server"]["names"] == ["example.com"]
    assert not (app / "staticfiles").exists()
    cfg = load_config(path)  # the release hook creates staticfiles/ on the host
    assert [(s.url, s.path) for s in cfg.app.static] == [("/static/", "staticfiles")]
    assert cfg.hooks.release == d.release_hook


def test_missing_static_folder_without_hook_is_still_an_error(tmp_path: Path) -> None:
    from garrison.project import load_config

    app = _django_folder(tmp_path)
    path, _ = run_init(app)
    path.write_text(path.read_text().split("[hooks]")[0])
    with pytest.raises(ConfigError, match=r"app.static\[0\].path"):
        load_config(path)


# ---------------------------------------------------------------- ASGI

FASTAPI = (
    "from fastapi import FastAPI\nfrom fastapi.staticfiles import StaticFiles\n\n"
    "app = FastAPI(title='demo')\n"
    "app.mount('/static', StaticFiles(directory='static'), name='static')\n"
)


def test_fastapi_app_is_asgi_with_uvicorn_workers() -> None:
    d = scan({"main.py": FASTAPI, "requirements.txt": "fastapi\n"}, {"static"})
    assert d.entry == "main:app"
    assert d.framework == "FastAPI"
    assert d.worker_class == "uvicorn"
    assert d.static == (("/static/", "static"),)
    assert "found FastAPI app `app` in main.py" in d.notes
    data = tomllib.loads(render_toml(d))
    assert data["gunicorn"] == {"worker_class": "uvicorn"}
    assert "hooks" not in data


def test_fastapi_mount_of_a_missing_folder_is_left_to_the_app() -> None:
    d = scan({"main.py": FASTAPI}, set())
    assert d.static == ()
    assert any("does not exist" in n for n in d.notes)


def test_fastapi_without_mount_has_no_default_static() -> None:
    # Unlike Flask, FastAPI serves no static/ folder unless it is mounted.
    assert scan({"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}, {"static"}).static == ()


@pytest.mark.parametrize(
    "source",
    [
        "import fastapi\napp = fastapi.FastAPI()\n",
        "import fastapi as fa\napp = fa.FastAPI()\n",
        "from fastapi import FastAPI as API\napp = API()\n",
        "from starlette.applications import Starlette\napp = Starlette(routes=[])\n",
        "import starlette.applications\napp = starlette.applications.Starlette()\n",
        "from quart import Quart\napp = Quart(__name__)\n",
    ],
)
def test_asgi_spellings(source: str) -> None:
    d = scan({"main.py": source})
    assert d.entry == "main:app"
    assert d.worker_class == "uvicorn"


def test_starlette_mount_route_static() -> None:
    source = (
        "from starlette.applications import Starlette\nfrom starlette.routing import Mount, Route\n"
        "from starlette.staticfiles import StaticFiles\n"
        "routes = [Mount('/assets', app=StaticFiles(directory='public'), name='assets')]\n"
        "app = Starlette(routes=routes)\n"
    )
    d = scan({"main.py": source}, {"public"})
    assert d.framework == "Starlette"
    assert d.static == (("/assets/", "public"),)


def test_quart_static_follows_flask_defaults() -> None:
    d = scan({"app.py": "from quart import Quart\napp = Quart(__name__)\n"}, {"static"})
    assert d.framework == "Quart" and d.worker_class == "uvicorn"
    assert d.static == (("/static/", "static"),)


def test_fastapi_factory_is_asgi() -> None:
    source = "from fastapi import FastAPI\n\ndef create_app():\n    return FastAPI()\n"
    d = scan({"api/__init__.py": "", "api/main.py": source})
    assert d.entry == "api.main:create_app()"
    assert d.worker_class == "uvicorn"
    assert any(n.startswith("found FastAPI app factory") for n in d.notes)


def test_flask_factory_stays_wsgi() -> None:
    d = scan({"mypkg/__init__.py": FACTORY})
    assert d.worker_class is None
    assert d.framework == "Flask"
    assert "worker_class" not in tomllib.loads(render_toml(d))["gunicorn"]


def test_file_order_decides_between_frameworks() -> None:
    files = {"wsgi.py": FLASK_APP, "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}
    assert scan(files).framework == "Flask"
    del files["wsgi.py"]
    assert scan(files).framework == "FastAPI"
    files["asgi.py"] = "from starlette.applications import Starlette\napplication = Starlette()\n"
    assert scan(files).entry == "asgi:application"


def test_websocket_without_ws_library_is_noted() -> None:
    source = "from fastapi import FastAPI\napp = FastAPI()\n@app.websocket('/ws')\nasync def ws(s):\n    pass\n"
    d = scan({"main.py": source, "requirements.txt": "fastapi\n"})
    assert any("websockets" in n for n in d.notes)
    for ok in ("fastapi\nwebsockets>=12\n", "uvicorn[standard]\nfastapi\n", "wsproto\n"):
        assert not any("websockets" in n for n in scan({"main.py": source, "requirements.txt": ok}).notes)


# ---------------------------------------------------------------- comments follow the config model


def _commented_settings(text: str, table: str) -> dict[str, tuple[object, str]]:
    """`# key = value  # help` lines of one table: key -> (TOML value, help)."""
    out: dict[str, tuple[object, str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == table and line.startswith("# ") and " = " in line:
            setting, _, help_text = line[2:].partition(" # ")
            key, _, value = setting.partition(" = ")
            out[key.strip()] = (tomllib.loads(f"v = {value.strip()}")["v"], help_text.strip())
    return out


def test_gunicorn_comments_are_the_models_defaults_and_help() -> None:
    from garrison.config.model import Gunicorn

    shown = _commented_settings(render_toml(scan({"main.py": FLASK_APP})), "gunicorn")
    assert set(shown) >= {"worker_class", "workers", "threads", "timeout"}
    for key, (value, help_text) in shown.items():
        field = Gunicorn.model_fields[key]
        assert value == field.default, key
        assert help_text == field.description, key


def test_gunicorn_comments_state_the_measured_defaults() -> None:
    # What docs/benchmarks.md measured and the model holds: gthread, one process per CPU, 8 threads.
    text = render_toml(scan({"main.py": FLASK_APP}))
    shown = _commented_settings(text, "gunicorn")
    assert shown["worker_class"][0] == "gthread"
    assert shown["workers"][1].startswith('worker processes, or "auto": one per CPU (at least 2)')
    assert shown["threads"][0] == 8
    assert 'worker_class = "gevent"' not in text
    # Uncommented, the shown values are the defaults: the same config as leaving them out.
    gunicorn = text.split("[gunicorn]", 1)[1]
    uncommented = text.replace(gunicorn, gunicorn.replace("\n# ", "\n"))
    from garrison.config import parse_config

    plain = parse_config(tomllib.loads(text))
    assert parse_config(tomllib.loads(uncommented)).gunicorn == plain.gunicorn


def test_asgi_app_keeps_its_worker_class_active() -> None:
    text = render_toml(scan({"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}))
    assert tomllib.loads(text)["gunicorn"] == {"worker_class": "uvicorn"}
    assert "worker_class" not in _commented_settings(text, "gunicorn")


# ---------------------------------------------------------------- ASGI apps built by a call


@pytest.mark.parametrize(
    ("source", "framework"),
    [
        ("from litestar import Litestar, get\n@get('/')\nasync def i() -> str:\n    return 'x'\napp = Litestar([i])\n", "Litestar"),
        ("import litestar\napp = litestar.Litestar(route_handlers=[])\n", "Litestar"),
        ("from starlette.applications import Starlette\nfrom starlette.routing import Route\napp = Starlette(routes=[Route('/', h)])\n",
         "Starlette"),
        ("from fastapi import FastAPI\napp = FastAPI()\n", "FastAPI"),
        ("from quart import Quart\napp = Quart(__name__)\n", "Quart"),
        ("from sanic import Sanic\napp = Sanic('demo')\n", "Sanic"),
        ("import falcon.asgi\napp = falcon.asgi.App()\n", "Falcon"),
        ("from channels.routing import ProtocolTypeRouter\napp = ProtocolTypeRouter({})\n", "Channels"),
    ],
)
def test_asgi_framework_calls(source: str, framework: str) -> None:
    d = scan({"main.py": source})
    assert (d.entry, d.framework, d.worker_class) == ("main:app", framework, "uvicorn")


def test_django_asgi_application_without_manage_py() -> None:
    source = "import os\nfrom django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n"
    d = scan({"asgi.py": source})
    assert (d.entry, d.framework, d.worker_class) == ("asgi:application", "Django", "uvicorn")
    wsgi = "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n"
    assert scan({"wsgi.py": wsgi}).worker_class is None


def test_falcon_wsgi_app_stays_wsgi() -> None:
    d = scan({"app.py": "import falcon\napp = falcon.App()\n"})
    assert d.entry == "app:app" and d.worker_class is None


def test_app_built_by_a_method_call_on_a_framework_object() -> None:
    source = "from starlette.applications import Starlette\napp = Starlette(routes=[]).build_middleware_stack()\n"
    d = scan({"main.py": source})
    assert (d.entry, d.worker_class) == ("main:app", "uvicorn")
    assert any("`.build_middleware_stack()` on a Starlette object" in n for n in d.notes)


def test_unlisted_asgi_framework_class_called_then_app() -> None:
    # `app = SomeFramework([...]).app()`: the class comes from an ASGI package init has no entry for.
    source = "from blacksheep.server import Server\nfrom .routes import ROUTES\napp = Server([ROUTES]).app()\n"
    d = scan({"web/__init__.py": "", "web/main.py": source})
    assert (d.entry, d.worker_class) == ("web.main:app", "uvicorn")


def test_app_built_by_a_method_of_a_named_framework_object() -> None:
    source = (
        "from blacksheep.server import Server\nfrom .routes import ROUTES\n"
        "api = Server([ROUTES])\napp = api.app()\n"
    )
    d = scan({"web/__init__.py": "", "web/main.py": source})
    assert (d.entry, d.worker_class) == ("web.main:app", "uvicorn")
    assert any("the result of `api.app()`" in n for n in d.notes)
    # Without the method call, the object itself is the app.
    assert scan({"main.py": "from blacksheep.server import Server\napi = Server([])\n"}).entry == "main:api"


@pytest.mark.parametrize(
    "source",
    [
        "from esmerald import Esmerald as App\nfrom lilya.apps import Lilya\napplication = Lilya(routes=[])\n",
        "from xpresso import App\nweb = App(routes=[])\n",
    ],
)
def test_unlisted_asgi_framework_app_objects(source: str) -> None:
    d = scan({"main.py": source})
    assert d.entry is not None and d.worker_class == "uvicorn"


def test_other_objects_of_an_asgi_package_are_not_the_app() -> None:
    # A router or a template engine defined before the app must not become the entry.
    source = (
        "from fastapi import APIRouter, FastAPI\nfrom starlette.templating import Jinja2Templates\n"
        "router = APIRouter()\ntemplates = Jinja2Templates('t')\napp = FastAPI()\n"
    )
    assert scan({"main.py": source}).entry == "main:app"
    assert scan({"main.py": "from fastapi import APIRouter\nrouter = APIRouter()\n"}).entry is None


def test_method_call_on_a_wsgi_app_is_not_an_app() -> None:
    assert scan({"main.py": "from flask import Flask\nclient = Flask(__name__).test_client()\n"}).entry is None


def test_refusal_names_the_asgi_framework_it_saw(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import somewhere\nfrom litestar import get\napp = somewhere.build(get)\n")
    with pytest.raises(DetectError) as exc:
        run_init(tmp_path)
    lines = str(exc.value).splitlines()
    assert 'worker_class = "uvicorn"' in lines[2] and "main.py imports litestar" in lines[2]
    assert 'entry = "module:attr"' in lines[1]


# ---------------------------------------------------------------- first_deploy: data initialisers

NOTES_INIT = (
    "import os\nfrom flask import Flask\n\n\n"
    "def create_app(test_config=None):\n"
    "    app = Flask(__name__, instance_relative_config=True)\n"
    "    app.config.from_mapping(DATABASE=os.path.join(app.instance_path, 'notes.sqlite'))\n"
    "    from . import db\n"
    "    db.init_app(app)\n"
    "    return app\n"
)
NOTES_DB = (
    "import sqlite3\nimport click\nfrom flask import current_app, g\n\n\n"
    "def init_db():\n"
    "    db = sqlite3.connect(current_app.config['DATABASE'])\n"
    "    db.executescript('DROP TABLE IF EXISTS note; CREATE TABLE note (body TEXT);')\n\n\n"
    "@click.command('init-db')\n"
    "def init_db_command():\n"
    "    \"\"\"Drop the tables and create them again.\"\"\"\n"
    "    init_db()\n\n\n"
    "def init_app(app):\n"
    "    app.cli.add_command(init_db_command)\n"
)


def test_flask_init_db_command_becomes_first_deploy_not_release() -> None:
    d = scan({"notes/__init__.py": NOTES_INIT, "notes/db.py": NOTES_DB}, {"notes"})
    assert d.entry == "notes:create_app()"
    assert d.first_deploy_hook == "flask --app notes init-db"
    assert d.release_hook is None
    note = next(n for n in d.notes if n.startswith("first_deploy hook"))
    assert "notes/db.py line 11" in note and "every deploy" in note
    data = tomllib.loads(render_toml(d))
    assert data["hooks"] == {"first_deploy": "flask --app notes init-db"}


def test_first_deploy_written_by_init_loads(tmp_path: Path) -> None:
    from garrison.project import load_config

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "__init__.py").write_text(NOTES_INIT)
    (tmp_path / "notes" / "db.py").write_text(NOTES_DB)
    (tmp_path / "requirements.txt").write_text("flask\n")
    files, _ = read_app_folder(tmp_path)
    assert "notes/db.py" in files  # imported by the factory: read for its CLI commands
    path, _ = run_init(tmp_path)
    cfg = load_config(path)
    assert cfg.hooks.first_deploy == "flask --app notes init-db"
    assert cfg.hooks.release == ""


def test_unregistered_click_command_is_not_a_hook() -> None:
    db = NOTES_DB.replace("    app.cli.add_command(init_db_command)\n", "    pass\n")
    assert scan({"notes/__init__.py": NOTES_INIT, "notes/db.py": db}).first_deploy_hook is None


@pytest.mark.parametrize(
    ("decorated", "hook"),
    [
        ("@app.cli.command('create-tables')\ndef make():\n    pass\n", "flask --app app create-tables"),
        ("@app.cli.command()\ndef init_db():\n    pass\n", "flask --app app init-db"),
        ("@app.cli.command(name='seed')\ndef fill():\n    pass\n", "flask --app app seed"),
        ("@app.cli.command('routes-report')\ndef report():\n    pass\n", None),
    ],
)
def test_app_cli_commands(decorated: str, hook: str | None) -> None:
    d = scan({"app.py": FLASK_APP + decorated})
    assert d.first_deploy_hook == hook


def test_app_object_not_named_app_is_spelled_out() -> None:
    source = "from flask import Flask\nweb = Flask(__name__)\n@web.cli.command('init-db')\ndef i():\n    pass\n"
    assert scan({"site.py": source, "app.py": source}).first_deploy_hook == "flask --app app:web init-db"


def test_command_named_after_its_function_with_a_click_suffix_is_left_to_the_user() -> None:
    # click < 8.2 calls it init-db-command, click >= 8.2 init-db: init can't know which the server gets.
    db = NOTES_DB.replace("@click.command('init-db')", "@click.command()")
    d = scan({"notes/__init__.py": NOTES_INIT, "notes/db.py": db})
    assert d.first_deploy_hook is None
    assert any("notes/db.py line 11" in n and "first_deploy" in n and "click's version" in n for n in d.notes)


def test_factory_with_required_arguments_gets_no_guessed_hook() -> None:
    init = NOTES_INIT.replace("def create_app(test_config=None)", "def create_app(env)")
    d = scan({"notes/__init__.py": init, "notes/db.py": NOTES_DB})
    assert d.first_deploy_hook is None
    assert any("required arguments" in n and "first_deploy" in n for n in d.notes)


# ---------------------------------------------------------------- Django: the settings production uses

# A CMS project template's layout (written here for the test): a settings package whose
# modules star-import base.py and end with a guarded `from .local import *`.
CMS_BASE = """\
import os

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_DIR = os.path.dirname(PROJECT_DIR)

INSTALLED_APPS = [
    "home",
    "search",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.staticfiles",
]
ROOT_URLCONF = "cms.urls"
WSGI_APPLICATION = "cms.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(BASE_DIR, "db.sqlite3"),
    }
}

STATICFILES_DIRS = [os.path.join(PROJECT_DIR, "static")]
STATIC_ROOT = os.path.join(BASE_DIR, "static")
STATIC_URL = "/static/"
MEDIA_ROOT = os.path.join(BASE_DIR, "media")
MEDIA_URL = "/media/"
"""
CMS_DEV = """\
from .base import *

DEBUG = True
SECRET_KEY = "django-insecure-dev-only"
ALLOWED_HOSTS = ["*"]

try:
    from .local import *
except ImportError:
    pass
"""
CMS_PRODUCTION = """\
from .base import *

DEBUG = False
ALLOWED_HOSTS = ["cms.example.org"]

try:
    from .local import *
except ImportError:
    pass
"""
CMS_URLS = "from django.urls import include, path\nurlpatterns = [path('', include('home.urls'))]\n"


def cms_files(**extra: str) -> dict[str, str]:
    files = {
        "manage.py": MANAGE.format(module="cms.settings.dev"),
        "cms/__init__.py": "",
        "cms/settings/__init__.py": "",
        "cms/settings/base.py": CMS_BASE,
        "cms/settings/dev.py": CMS_DEV,
        "cms/settings/production.py": CMS_PRODUCTION,
        "cms/urls.py": CMS_URLS,
        "cms/wsgi.py": WSGI,
        "requirements.txt": "django>=5.2\n",
    }
    files.update(extra)
    return files


PROD_ENV = (".env.production", "SECRET_KEY=abc\nDJANGO_SETTINGS_MODULE=cms.settings.production\n")


def test_cms_settings_package_production_from_env_file() -> None:
    d = scan(cms_files(), {"cms", "home"}, "cms", env_file=PROD_ENV)
    assert d.settings_module == "cms.settings.production"
    assert d.entry == "cms.wsgi:application"
    # STATIC_URL and STATIC_ROOT are in base.py, behind the star import and the guarded local import.
    assert d.static == (("/static/", "static"),)
    assert d.release_hook is not None and "collectstatic" in d.release_hook
    assert d.server_names == ("cms.example.org",)
    # The database and the uploads are inside the release: structured for persistence, and warned about.
    assert d.sqlite_paths == ("db.sqlite3",)
    assert d.media_root == "media"
    db_note = next(n for n in d.notes if "SQLite database db.sqlite3" in n)
    assert "cms/settings/base.py line 16" in db_note and "/srv/cms/shared/" in db_note
    assert any(n.startswith("MEDIA_ROOT in cms/settings/base.py line 26 is media/") for n in d.notes)
    assert any("DJANGO_SETTINGS_MODULE in .env.production" in n for n in d.notes)
    assert not any(n.startswith("DEBUG = True") for n in d.notes)  # that is dev.py's


def test_cms_settings_default_to_managepy_and_say_they_look_like_dev() -> None:
    d = scan(cms_files(), {"cms"}, "cms")
    assert d.settings_module == "cms.settings.dev"
    assert d.static == (("/static/", "static"),)  # base.py is reached from dev.py too
    assert any(n.startswith("DEBUG = True in cms/settings/dev.py line 3") for n in d.notes)
    advice = next(n for n in d.notes if "look like development settings" in n)
    assert "`garrison init --settings cms.settings.production`" in advice
    assert "garrison env set DJANGO_SETTINGS_MODULE" in advice


def test_settings_argument_selects_the_module_and_asks_for_it_on_the_server() -> None:
    d = scan(cms_files(), {"cms"}, "cms", settings="cms.settings.production")
    assert d.settings_module == "cms.settings.production"
    assert d.server_names == ("cms.example.org",)
    assert any("`garrison env set DJANGO_SETTINGS_MODULE=cms.settings.production`" in n for n in d.notes)
    assert not any("look like development settings" in n for n in d.notes)


def test_env_file_wins_over_the_settings_argument() -> None:
    d = scan(cms_files(), {"cms"}, "cms", settings="cms.settings.dev", env_file=PROD_ENV)
    assert d.settings_module == "cms.settings.production"
    assert any("--settings cms.settings.dev ignored" in n for n in d.notes)


def test_env_file_without_the_variable_falls_back() -> None:
    d = scan(cms_files(), {"cms"}, "cms", settings="cms.settings.production", env_file=(".env", "SECRET_KEY=x\n"))
    assert d.settings_module == "cms.settings.production"


def test_guarded_local_settings_override_when_present() -> None:
    local = (
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'cms'}}\n"
        "STATIC_ROOT = '/var/www/cms/static'\n"
    )
    d = scan(cms_files(**{"cms/settings/local.py": local}), {"cms"}, "cms", env_file=PROD_ENV)
    assert d.sqlite_paths == ()
    assert d.static == ()
    assert any("STATIC_ROOT in cms/settings/local.py line 2 is /var/www/cms/static, outside" in n for n in d.notes)


def test_gitignored_local_settings_are_not_production_settings() -> None:
    files = cms_files(**{"cms/settings/local.py": "STATIC_ROOT = '/elsewhere'\n"})
    shipped = set(files) - {"cms/settings/local.py"}
    d = scan(files, {"cms"}, "cms", env_file=PROD_ENV, shipped=shipped)
    assert d.static == (("/static/", "static"),)
    assert any("cms/settings/local.py is not deployed (.gitignore)" in n for n in d.notes)


def test_absolute_star_import_and_later_assignment_wins() -> None:
    production = "from cms.settings.base import *\nSTATIC_ROOT = BASE_DIR + '/collected'\nSTATIC_ROOT = os.path.join(BASE_DIR, 'public')\n"
    d = scan(cms_files(**{"cms/settings/production.py": production}), {"cms"}, "cms", settings="cms.settings.production")
    assert d.static == (("/static/", "public"),)


def test_names_imported_from_a_sibling_module() -> None:
    production = "from .base import BASE_DIR, INSTALLED_APPS\nimport os\nSTATIC_URL = 'assets/'\n" \
                 "STATIC_ROOT = os.path.join(BASE_DIR, 'assets')\nALLOWED_HOSTS = ['a.example']\n"
    d = scan(cms_files(**{"cms/settings/production.py": production}), {"cms"}, "cms", settings="cms.settings.production")
    assert d.static == (("/assets/", "assets"),)


def test_conditional_setting_names_its_file_and_line() -> None:
    production = CMS_PRODUCTION + "if os.environ.get('S3'):\n    STATIC_ROOT = None\n"
    d = scan(cms_files(**{"cms/settings/production.py": production}), {"cms"}, "cms", env_file=PROD_ENV)
    assert d.static == ()
    assert any("STATIC_ROOT in cms/settings/production.py line 11 is computed" in n for n in d.notes)


def test_unreadable_star_import_is_named() -> None:
    production = "from .common import *\nDEBUG = False\n"
    d = scan(cms_files(**{"cms/settings/production.py": production}), {"cms"}, "cms", env_file=PROD_ENV)
    assert any("cms/settings/production.py line 1: `from .common import *`" in n for n in d.notes)


@pytest.mark.parametrize(
    ("databases", "paths"),
    [
        ("DATABASES = {'default': dj_database_url.config(default=f'sqlite:///{BASE_DIR / \"data.db\"}')}", ("data.db",)),
        ("DATABASES = {'default': env.db('DATABASE_URL', default='sqlite:///db.sqlite3')}", ("db.sqlite3",)),
        ("DATABASES = {'default': env.db('DATABASE_URL', default='sqlite:////srv/x/shared/db.sqlite3')}", ()),
        ("DATABASES = {'default': env.db('DATABASE_URL', default='postgres:///cms')}", ()),
        ("DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': 'db.sqlite3'},"
         " 'cache': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': BASE_DIR / 'cache.db'}}", ("db.sqlite3", "cache.db")),
    ],
)
def test_sqlite_databases_inside_the_release(databases: str, paths: tuple[str, ...]) -> None:
    settings = "import dj_database_url\nimport environ\nenv = environ.Env()\n" + _with("DATABASES", databases)
    assert scan(django_files(settings)).sqlite_paths == paths


def test_computed_databases_names_file_and_line() -> None:
    settings = "import os\n" + _with("DATABASES", "DATABASES = load_databases(os.environ)")
    d = scan(django_files(settings))
    assert d.sqlite_paths == ()
    assert any("DATABASES in mysite/settings.py line 12 is computed" in n for n in d.notes)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("DJANGO_SETTINGS_MODULE=a.b\n", "a.b"),
        ('export DJANGO_SETTINGS_MODULE="a.prod"  # prod\n', "a.prod"),
        ("DJANGO_SETTINGS_MODULE='a.c'\nDJANGO_SETTINGS_MODULE=a.d # later wins\n", "a.d"),
        ("# DJANGO_SETTINGS_MODULE=a.b\nOTHER=1\n", None),
    ],
)
def test_env_file_value(text: str, value: str | None) -> None:
    from garrison.initapp import env_file_value

    assert env_file_value(text, "DJANGO_SETTINGS_MODULE") == value


def test_wanted_files_follow_guarded_imports_of_the_chosen_settings() -> None:
    from garrison.initapp import wanted_files

    files = {"manage.py": MANAGE.format(module="cms.settings.dev"), "cms/settings/production.py": CMS_PRODUCTION}
    want = wanted_files(files, settings="cms.settings.production")
    assert want == ["cms/settings/base.py", "cms/settings/base/__init__.py",
                    "cms/settings/local.py", "cms/settings/local/__init__.py"]


def test_read_app_folder_finds_the_production_module_beside_default_dev_settings(tmp_path: Path) -> None:
    for path, text in cms_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    files, dirs = read_app_folder(tmp_path)
    assert "cms/settings/production.py" in files
    advice = next(n for n in scan(files, dirs).notes if "look like development settings" in n)
    assert "--settings cms.settings.production" in advice


def test_run_init_reads_production_settings_from_the_env_file(tmp_path: Path) -> None:
    from garrison.project import load_config

    for path, text in cms_files(**{"home/__init__.py": ""}).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "cms" / "settings" / "local.py").write_text("ALLOWED_HOSTS = ['dev.local']\n")
    (tmp_path / ".gitignore").write_text("cms/settings/local.py\n")
    env = tmp_path / "prod.env"
    env.write_text(PROD_ENV[1])
    path, d = run_init(tmp_path, env_file=env)
    assert d.settings_module == "cms.settings.production"
    assert d.server_names == ("cms.example.org",)  # local.py is gitignored: not what production runs
    cfg = load_config(path)
    assert [(s.url, s.path) for s in cfg.app.static] == [("/static/", "static")]
    assert cfg.server.names == ("cms.example.org",)


def test_run_init_with_a_missing_env_file_says_so_in_one_line(tmp_path: Path) -> None:
    _django_folder(tmp_path)
    with pytest.raises(ConfigError) as exc:
        run_init(tmp_path / "djsite", env_file=tmp_path / "nope.env")
    assert str(exc.value).startswith(f"{tmp_path / 'nope.env'}: cannot be read")
    assert "\n" not in str(exc.value)


# -- the app's data, and a startproject that deploys with no edit (issue 13) ---------------------


def test_flask_instance_folder_is_persisted() -> None:
    factory = (
        "import os\nfrom flask import Flask\n\n"
        "def create_app():\n"
        "    app = Flask(__name__, instance_relative_config=True)\n"
        "    app.config.from_mapping(DATABASE=os.path.join(app.instance_path, 'db.sqlite'))\n"
        "    return app\n"
    )
    d = scan({"blog/__init__.py": factory}, {"blog"})
    assert d.persist == ("instance",)
    assert 'persist = ["instance"]' in render_toml(d)
    plain = scan({"main.py": "from flask import Flask\napp = Flask(__name__)\n"})
    assert plain.persist == () and "persist" not in render_toml(plain).split("[server]")[0]


def test_startproject_deploys_with_no_edit(tmp_path: Path) -> None:
    django = pytest.importorskip("django")
    from django.core.management import call_command

    call_command("startproject", "mysite", str(tmp_path))
    path, det = run_init(tmp_path)
    cfg = tomllib.loads(path.read_text())
    version = django.get_version()
    assert (tmp_path / "requirements.txt").read_text() == f"django=={version}\n"
    assert cfg["app"]["requirements"] == "requirements.txt"
    assert cfg["app"]["persist"] == ["db.sqlite3"]  # BASE_DIR / "db.sqlite3"
    hook = cfg["hooks"]["release"]
    # No STATIC_ROOT in a fresh project: collectstatic gets the folder nginx serves, for its run only.
    static = cfg["app"]["static"][0]["path"]
    assert f"settings.STATIC_ROOT = os.path.abspath('{static}')" in hook and "migrate --noinput" in hook
    # A second init keeps the user's requirements.txt.
    (tmp_path / "requirements.txt").write_text("django>=5\n")
    run_init(tmp_path, force=True)
    assert (tmp_path / "requirements.txt").read_text() == "django>=5\n"


def test_procfile_workers_and_release_become_processes_and_the_hook() -> None:
    files = {
        "main.py": "from flask import Flask\napp = Flask(__name__)\n",
        "Procfile": "web: gunicorn main:app\nworker: rq worker --url $REDIS_URL\nrelease: flask db upgrade\n# clock: x\n",
    }
    d = scan(files)
    assert d.processes == (("worker", "rq worker --url $REDIS_URL"),) and d.release_hook == "flask db upgrade"
    cfg = tomllib.loads(render_toml(d))
    assert cfg["processes"]["worker"]["command"] == "rq worker --url $REDIS_URL"
    assert cfg["hooks"]["release"] == "flask db upgrade"


def test_queue_workers_are_recognised_in_the_code() -> None:
    web = "from flask import Flask\napp = Flask(__name__)\n"
    celery = scan({"main.py": web, "shop/__init__.py": "", "shop/celery.py": "from celery import Celery\napp = Celery('shop')\n"},
                  {"shop"})
    assert celery.processes == (("worker", "celery -A shop.celery:app worker --loglevel=INFO"),)
    huey = scan({"main.py": web, "tasks.py": "from huey import RedisHuey\nhuey = RedisHuey('shop')\n"})
    assert huey.processes == (("worker", "huey_consumer tasks.huey"),)
    rq = scan({"main.py": web + "from rq import Queue\nq = Queue(connection=None)\n", "requirements.txt": "flask\nrq\n"})
    assert rq.processes == (("worker", "rq worker --url $REDIS_URL"),)
    assert scan({"main.py": web, "requirements.txt": "flask\nrq-dashboard\n"}).processes == ()


def test_django_settings_read_through_environ_defaults_and_an_empty_static_root(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text(
        "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'example.settings')\n")
    (tmp_path / "example").mkdir()
    (tmp_path / "example" / "__init__.py").write_text("")
    (tmp_path / "example" / "wsgi.py").write_text("from django.core.wsgi import get_wsgi_application\n"
                                                  "application = get_wsgi_application()\n")
    (tmp_path / "example" / "settings.py").write_text(
        "import os\nfrom pathlib import Path\nBASE_DIR = Path(__file__).resolve().parent.parent\n"
        "INSTALLED_APPS = ['django.contrib.staticfiles']\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3',\n"
        "    'NAME': os.environ.get('DATABASE_NAME', os.path.join(BASE_DIR / 'db' / 'example.db'))}}\n"
        "STATIC_ROOT = ''\nSTATIC_URL = '/static/'\nALLOWED_HOSTS = ['localhost']\n")
    (tmp_path / "requirements.txt").write_text("django\n")
    path, det = run_init(tmp_path)
    cfg = tomllib.loads(path.read_text())
    assert cfg["app"]["persist"] == ["db/example.db"]
    assert "settings.STATIC_ROOT = os.path.abspath('staticfiles')" in cfg["hooks"]["release"]
