"""Beyond the sample app: `garrison init` + `garrison up` on apps of four kinds,
each checked through nginx (a dynamic page, a static file served by nginx
itself, and for ASGI a WebSocket), then `garrison down --purge`:

- a Flask app (an app object, a template and a static file);
- a Flask factory app (`def create_app()` in a package);
- a Django project made by Django's own generator (`startproject` + `startapp`),
  adjusted only as its user must before deploying (what init's notes ask for);
- a FastAPI app with a WebSocket endpoint and a StaticFiles mount.

Each app's venv is built on this machine from its requirements.txt (PyPI).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.e2e.helpers import OUTPUT, garrison, get

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="garrison up needs root (it writes /etc/nginx, /srv and adds a user)"),
]

TIMINGS: dict[str, float] = {}
NGINX_MAX_AGE = "max-age=604800"  # nginx's `expires 7d` on static locations: the app never sends it


@pytest.fixture(scope="module", autouse=True)
def _timings():
    yield
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "frameworks-timings.json").write_text(json.dumps(TIMINGS, indent=2))


def _run(*args: str, cwd: Path, label: str) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    proc = garrison(*args, cwd=cwd)
    TIMINGS[label] = round(time.monotonic() - t0, 2)
    assert proc.returncode == 0, f"garrison {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _set_server_name(app: Path, name: str) -> None:
    """What every user edits after init: the site's real name instead of localhost."""
    toml = app / "garrison.toml"
    text = toml.read_text()
    assert 'names = ["localhost"]' in text
    toml.write_text(text.replace('names = ["localhost"]', f'names = ["{name}"]', 1))


@contextlib.contextmanager
def _deploy(app: Path, label: str):
    """up; yield; down --purge even when the test fails."""
    garrison("down", "--purge", cwd=app)  # a previous, interrupted run
    try:
        _run("up", cwd=app, label=f"{label}: up")
        yield
    finally:
        garrison("down", "--purge", cwd=app)


def _static_ok(path: str, host: str, expected: bytes) -> None:
    r = get(path, host=host)
    assert r.status == 200, (path, r.status, r.text[:300])
    assert r.body == expected
    # nginx's static location answered, not the app.
    assert NGINX_MAX_AGE in r.headers.get("cache-control", ""), r.headers


# ---------------------------------------------------------------- Flask


FLASK_CSS = b"body { color: #8b0000; }\n"


def test_flask_app_page_and_static(tmp_path):
    app = tmp_path / "flaskweb"
    (app / "static").mkdir(parents=True)
    (app / "templates").mkdir()
    (app / "app.py").write_text(
        "import datetime\n"
        "from flask import Flask, render_template\n\n"
        "app = Flask(__name__)\n\n\n"
        "@app.route('/')\n"
        "def index():\n"
        "    return render_template('index.html', year=datetime.date.today().year, n=sum(range(10)))\n"
    )
    (app / "templates" / "index.html").write_text(
        '<!doctype html><link rel="stylesheet" href="{{ url_for(\'static\', filename=\'site.css\') }}">'
        "<p>Flask web {{ n }} in {{ year }}</p>\n"
    )
    (app / "static" / "site.css").write_bytes(FLASK_CSS)
    (app / "requirements.txt").write_text("flask>=3.0\n")

    _run("init", cwd=app, label="flask: init")
    cfg = tomllib.loads((app / "garrison.toml").read_text())
    assert cfg["app"]["entry"] == "app:app"
    assert cfg["app"]["static"] == [{"url": "/static/", "path": "static"}]
    _set_server_name(app, "flaskweb.test")

    with _deploy(app, "flask"):
        page = get("/", host="flaskweb.test")
        assert page.status == 200, page.text
        assert "Flask web 45 in" in page.text
        href = re.search(r'href="([^"]+)"', page.text).group(1)
        assert href == "/static/site.css"
        _static_ok(href, "flaskweb.test", FLASK_CSS)


# ---------------------------------------------------------------- Flask factory


FACTORY_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>\n'


def test_flask_factory_app_page_and_static(tmp_path):
    app = tmp_path / "flaskfac"
    pkg = app / "shop"
    (pkg / "static").mkdir(parents=True)
    (pkg / "templates").mkdir()
    (pkg / "__init__.py").write_text(
        "from flask import Flask\n\n\n"
        "def create_app(config=None):\n"
        "    app = Flask(__name__)\n"
        "    app.config['GREETING'] = 'factory-made'\n"
        "    from shop import views\n"
        "    app.register_blueprint(views.bp)\n"
        "    return app\n"
    )
    (pkg / "views.py").write_text(
        "from flask import Blueprint, current_app, render_template\n\n"
        "bp = Blueprint('views', __name__)\n\n\n"
        "@bp.route('/')\n"
        "def index():\n"
        "    return render_template('index.html', greeting=current_app.config['GREETING'])\n"
    )
    (pkg / "templates" / "index.html").write_text(
        "<!doctype html><img src=\"{{ url_for('static', filename='logo.svg') }}\"><p>{{ greeting }} shop</p>\n"
    )
    (pkg / "static" / "logo.svg").write_bytes(FACTORY_SVG)
    (app / "requirements.txt").write_text("flask>=3.0\n")

    _run("init", cwd=app, label="flask factory: init")
    cfg = tomllib.loads((app / "garrison.toml").read_text())
    assert cfg["app"]["entry"] == "shop:create_app()"
    assert cfg["app"]["static"] == [{"url": "/static/", "path": "shop/static"}]
    _set_server_name(app, "flaskfac.test")

    with _deploy(app, "flask factory"):
        page = get("/", host="flaskfac.test")
        assert page.status == 200, page.text
        assert "factory-made shop" in page.text
        src = re.search(r'src="([^"]+)"', page.text).group(1)
        assert src == "/static/logo.svg"
        _static_ok(src, "flaskfac.test", FACTORY_SVG)


# ---------------------------------------------------------------- Django


DJANGO_CSS = b"h1 { font-family: serif; }\n"


def _django_admin(*args: str, cwd: Path) -> None:
    subprocess.run((sys.executable, "-m", "django", *args), cwd=cwd, check=True, capture_output=True, text=True)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_django_project_from_startproject(tmp_path):
    django = pytest.importorskip("django")
    app = tmp_path / "djsite"
    app.mkdir()
    # The framework's own generator writes the project: Garrison did not write this app.
    _django_admin("startproject", "mysite", ".", cwd=app)
    subprocess.run((sys.executable, "manage.py", "startapp", "pages"), cwd=app, check=True, capture_output=True)
    (app / "pages" / "views.py").write_text(
        "from django.contrib.auth.models import User\n"
        "from django.shortcuts import render\n\n\n"
        "def index(request):\n"
        "    # A query: the tables exist only if the release hook ran migrate.\n"
        "    return render(request, 'pages/index.html', {'users': User.objects.count(), 'host': request.get_host()})\n"
    )
    (app / "pages" / "templates" / "pages").mkdir(parents=True)
    (app / "pages" / "templates" / "pages" / "index.html").write_text(
        "{% load static %}<!doctype html><link rel=\"stylesheet\" href=\"{% static 'pages/site.css' %}\">"
        "<h1>Django on {{ host }} with {{ users }} users</h1>\n"
    )
    (app / "pages" / "static" / "pages").mkdir(parents=True)
    (app / "pages" / "static" / "pages" / "site.css").write_bytes(DJANGO_CSS)
    _edit(app / "mysite" / "urls.py", "from django.urls import path",
          "from django.urls import path\n\nfrom pages import views")
    _edit(app / "mysite" / "urls.py", "urlpatterns = [", "urlpatterns = [\n    path('', views.index),")
    settings = app / "mysite" / "settings.py"
    _edit(settings, "INSTALLED_APPS = [", "INSTALLED_APPS = [\n    'pages',")
    major = django.VERSION[0]
    (app / "requirements.txt").write_text(f"django>={major}.0,<{major + 1}\n")

    # First init, as the user would run it on the fresh project: its notes say what to fix.
    proc = _run("init", cwd=app, label="django: first init")
    for expected in ("ALLOWED_HOSTS is empty", "STATIC_ROOT is not set", "DEBUG = True", "SQLite database"):
        assert expected in proc.stdout, proc.stdout

    # What the notes ask for, nothing more: production settings a Django user writes anyway.
    _edit(settings, "DEBUG = True", "DEBUG = False")
    _edit(settings, "ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['djsite.test']")
    _edit(settings, "'NAME': BASE_DIR / 'db.sqlite3'", "'NAME': '/srv/djsite/shared/db.sqlite3'")
    settings.write_text(settings.read_text() + "\nSTATIC_ROOT = BASE_DIR / 'staticfiles'\n")

    proc = _run("init", "--force", cwd=app, label="django: init")
    cfg = tomllib.loads((app / "garrison.toml").read_text())
    assert cfg["app"]["entry"] == "mysite.wsgi:application"
    assert cfg["app"]["static"] == [{"url": "/static/", "path": "staticfiles"}]
    assert cfg["app"]["health_path"] == "/"
    assert cfg["server"]["names"] == ["djsite.test"]  # from ALLOWED_HOSTS
    assert cfg["hooks"]["release"] == "python manage.py collectstatic --noinput && python manage.py migrate --noinput"
    assert not (app / "staticfiles").exists()  # collectstatic makes it on the host

    with _deploy(app, "django"):
        page = get("/", host="djsite.test")
        assert page.status == 200, page.text
        assert "Django on djsite.test with 0 users" in page.text
        href = re.search(r'href="([^"]+)"', page.text).group(1)
        assert href == "/static/pages/site.css"
        _static_ok(href, "djsite.test", DJANGO_CSS)
        # collectstatic also gathered the admin's files into STATIC_ROOT.
        admin_css = Path(django.__file__).parent / "contrib" / "admin" / "static" / "admin" / "css" / "base.css"
        _static_ok("/static/admin/css/base.css", "djsite.test", admin_css.read_bytes())
        assert Path("/srv/djsite/shared/db.sqlite3").is_file()


# ---------------------------------------------------------------- FastAPI


FASTAPI_JS = b"console.log('fastdemo');\n"


def test_fastapi_app_page_static_and_websocket(tmp_path):
    websocket = pytest.importorskip("websocket")
    app = tmp_path / "fastdemo"
    (app / "static").mkdir(parents=True)
    (app / "main.py").write_text(
        "from fastapi import FastAPI, WebSocket, WebSocketDisconnect\n"
        "from fastapi.responses import HTMLResponse\n"
        "from fastapi.staticfiles import StaticFiles\n\n"
        "app = FastAPI()\n"
        "app.mount('/static', StaticFiles(directory='static'), name='static')\n\n\n"
        "@app.get('/', response_class=HTMLResponse)\n"
        "async def index() -> str:\n"
        "    return '<!doctype html><script src=\"/static/app.js\"></script><p>FastAPI says %d</p>' % (6 * 7)\n\n\n"
        "@app.websocket('/ws')\n"
        "async def echo(ws: WebSocket) -> None:\n"
        "    await ws.accept()\n"
        "    try:\n"
        "        while True:\n"
        "            await ws.send_text('echo: ' + await ws.receive_text())\n"
        "    except WebSocketDisconnect:\n"
        "        pass\n"
    )
    (app / "static" / "app.js").write_bytes(FASTAPI_JS)
    # uvicorn accepts WebSocket upgrades only with `websockets` (or wsproto) installed.
    (app / "requirements.txt").write_text("fastapi\nwebsockets\n")

    _run("init", cwd=app, label="fastapi: init")
    cfg = tomllib.loads((app / "garrison.toml").read_text())
    assert cfg["app"]["entry"] == "main:app"
    assert cfg["gunicorn"]["worker_class"] == "uvicorn"
    assert cfg["app"]["static"] == [{"url": "/static/", "path": "static"}]
    _set_server_name(app, "fastdemo.test")

    with _deploy(app, "fastapi"):
        page = get("/", host="fastdemo.test")
        assert page.status == 200, page.text
        assert "FastAPI says 42" in page.text
        _static_ok("/static/app.js", "fastdemo.test", FASTAPI_JS)
        # The upgrade goes through nginx (port 80), not to gunicorn's socket.
        t0 = time.monotonic()
        ws = websocket.create_connection("ws://127.0.0.1:80/ws", host="fastdemo.test", timeout=10)
        try:
            for msg in ("ave", "caesar"):
                ws.send(msg)
                assert ws.recv() == f"echo: {msg}"
        finally:
            ws.close()
        TIMINGS["fastapi: websocket round trips"] = round(time.monotonic() - t0, 3)


def test_django_disallowed_host_fails_the_deploy_with_400(tmp_path):
    """The server name is not in ALLOWED_HOSTS: Django answers 400 to the health check,
    the deploy fails (exit 4) and says so. With DEBUG = False Django logs nothing about
    it (DisallowedHost goes to no handler), so the 400 itself is the evidence."""
    pytest.importorskip("django")
    app = tmp_path / "djhosts"
    app.mkdir()
    _django_admin("startproject", "mysite", ".", cwd=app)
    settings = app / "mysite" / "settings.py"
    _edit(settings, "DEBUG = True", "DEBUG = False")
    _edit(settings, "ALLOWED_HOSTS = []", "ALLOWED_HOSTS = ['www.djhosts.test']")
    _edit(settings, "'NAME': BASE_DIR / 'db.sqlite3'", "'NAME': '/srv/djhosts/shared/db.sqlite3'")
    settings.write_text(settings.read_text() + "\nSTATIC_ROOT = BASE_DIR / 'staticfiles'\n")
    (app / "requirements.txt").write_text("django<6\n")
    _run("init", cwd=app, label="django bad host: init")
    toml = app / "garrison.toml"
    # The user's mistake: a server name that ALLOWED_HOSTS does not cover.
    text = toml.read_text().replace('names = ["www.djhosts.test"]', 'names = ["djhosts.test"]')
    toml.write_text(text.replace('health_path = "/admin/login/"', 'health_path = "/admin/login/"\nhealth_deadline = 5'))
    garrison("down", "--purge", cwd=app)
    try:
        t0 = time.monotonic()
        proc = garrison("up", cwd=app)
        TIMINGS["django bad host: failed up"] = round(time.monotonic() - t0, 2)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "answered HTTP 400 instead of 2xx" in proc.stdout + proc.stderr
    finally:
        garrison("down", "--purge", cwd=app)


# ---------------------------------------------------------------- Django settings package


CMS_CSS = b"main { max-width: 40em; }\n"


def test_django_settings_package_production_from_env_file(tmp_path):
    """A CMS-template layout: settings/base.py, dev.py (manage.py's default) and
    production.py, each ending in a guarded `from .local import *`. init reads
    DJANGO_SETTINGS_MODULE from the env file the server gets, finds STATIC_URL and
    STATIC_ROOT in base.py behind the star imports, and the deploy runs production's
    settings once `garrison env set` put the same variable on the server."""
    from garrison.initapp import run_init

    django = pytest.importorskip("django")
    app = tmp_path / "cmsite"
    app.mkdir()
    _django_admin("startproject", "mysite", ".", cwd=app)
    subprocess.run((sys.executable, "manage.py", "startapp", "pages"), cwd=app, check=True, capture_output=True)
    (app / "pages" / "views.py").write_text(
        "from django.conf import settings\nfrom django.shortcuts import render\n\n\n"
        "def index(request):\n"
        "    return render(request, 'pages/index.html', {'debug': settings.DEBUG, 'flavour': settings.FLAVOUR})\n"
    )
    (app / "pages" / "templates" / "pages").mkdir(parents=True)
    (app / "pages" / "templates" / "pages" / "index.html").write_text(
        "{% load static %}<!doctype html><link rel=\"stylesheet\" href=\"{% static 'pages/cms.css' %}\">"
        "<p>{{ flavour }} settings, debug {{ debug }}</p>\n"
    )
    (app / "pages" / "static" / "pages").mkdir(parents=True)
    (app / "pages" / "static" / "pages" / "cms.css").write_bytes(CMS_CSS)
    _edit(app / "mysite" / "urls.py", "from django.urls import path", "from django.urls import path\n\nfrom pages import views")
    _edit(app / "mysite" / "urls.py", "urlpatterns = [", "urlpatterns = [\n    path('', views.index),")

    # settings.py becomes the package the CMS template ships.
    base = (app / "mysite" / "settings.py").read_text()
    (app / "mysite" / "settings.py").unlink()
    package = app / "mysite" / "settings"
    package.mkdir()
    (package / "__init__.py").write_text("")
    base = base.replace("Path(__file__).resolve().parent.parent", "Path(__file__).resolve().parent.parent.parent")
    base = base.replace("INSTALLED_APPS = [", "INSTALLED_APPS = [\n    'pages',")
    base = base.replace("'NAME': BASE_DIR / 'db.sqlite3'", "'NAME': '/srv/cmsite/shared/db.sqlite3'")
    (package / "base.py").write_text(base + "\nSTATIC_ROOT = BASE_DIR / 'collected'\nFLAVOUR = 'base'\n")
    guarded = "\ntry:\n    from .local import *\nexcept ImportError:\n    pass\n"
    (package / "dev.py").write_text("from .base import *\n\nDEBUG = True\nFLAVOUR = 'dev'\n" + guarded)
    (package / "production.py").write_text(
        "from .base import *\n\nDEBUG = False\nALLOWED_HOSTS = ['cmsite.test']\nFLAVOUR = 'production'\n" + guarded
    )
    for module in (app / "manage.py", app / "mysite" / "wsgi.py"):
        _edit(module, "'mysite.settings'" if "'mysite.settings'" in module.read_text() else '"mysite.settings"',
              "'mysite.settings.dev'")
    major = django.VERSION[0]
    (app / "requirements.txt").write_text(f"django>={major}.0,<{major + 1}\n")
    env_file = tmp_path / "production.env"
    env_file.write_text("DJANGO_SETTINGS_MODULE=mysite.settings.production\n")

    # What `garrison init --env-file production.env` does.
    path, detection = run_init(app, env_file=env_file)
    assert detection.settings_module == "mysite.settings.production"
    cfg = tomllib.loads(path.read_text())
    assert cfg["app"]["static"] == [{"url": "/static/", "path": "collected"}]
    assert cfg["server"]["names"] == ["cmsite.test"]
    assert detection.sqlite_paths == ()  # NAME points at shared/: nothing inside the release

    garrison("down", "--purge", cwd=app)
    try:
        _run("env", "set", "DJANGO_SETTINGS_MODULE=mysite.settings.production", cwd=app, label="cms: env set")
        _run("up", cwd=app, label="cms: up")
        page = get("/", host="cmsite.test")
        assert page.status == 200, page.text
        assert "production settings, debug False" in page.text
        href = re.search(r'href="([^"]+)"', page.text).group(1)
        assert href == "/static/pages/cms.css"
        _static_ok(href, "cmsite.test", CMS_CSS)
    finally:
        garrison("down", "--purge", cwd=app)


# ---------------------------------------------------------------- ASGI app built by a call


def test_litestar_app_built_by_a_call(tmp_path):
    """`app = Litestar([...])`: init recognises the ASGI app and sets uvicorn workers itself."""
    app = tmp_path / "litedemo"
    app.mkdir()
    (app / "main.py").write_text(
        "from litestar import Litestar, MediaType, get\n\n\n"
        "@get('/', media_type=MediaType.HTML)\n"
        "async def index() -> str:\n"
        "    return '<!doctype html><p>Litestar says %d</p>' % (6 * 7)\n\n\n"
        "app = Litestar(route_handlers=[index])\n"
    )
    (app / "requirements.txt").write_text("litestar\n")

    proc = _run("init", cwd=app, label="litestar: init")
    assert "found Litestar app `app` in main.py" in proc.stdout
    cfg = tomllib.loads((app / "garrison.toml").read_text())
    assert cfg["app"]["entry"] == "main:app"
    assert cfg["gunicorn"]["worker_class"] == "uvicorn"
    _set_server_name(app, "litedemo.test")

    with _deploy(app, "litestar"):
        page = get("/", host="litedemo.test")
        assert page.status == 200, page.text
        assert "Litestar says 42" in page.text
