"""Apps Garrison's authors did not write, deployed as their users would: `garrison init` then
`garrison up`, no edit by hand; their data survives deploys, rollbacks and `down` (issue 13).

- flaskr, Flask's own tutorial app, from Flask's source distribution on PyPI: its
  instance folder (SQLite) persists; `flask init-db` runs once (first_deploy).
- a fresh `django-admin startproject`: its SQLite file persists, migrations run in
  the release hook, the admin's CSS is served by nginx.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.e2e.helpers import garrison, get

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root (they write /etc/nginx, /srv and add a user)"),
]

SDISTS = Path("/tmp/garrison-sdists")


def flask_tutorial(dest: Path) -> Path:
    """examples/tutorial of Flask's sdist, as downloaded from PyPI (cached between runs)."""
    SDISTS.mkdir(exist_ok=True)
    found = sorted(SDISTS.glob("flask-*.tar.gz"))
    if not found:
        subprocess.run((sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", "flask",
                        "-d", str(SDISTS)), check=True, capture_output=True, timeout=300)
        found = sorted(SDISTS.glob("flask-*.tar.gz"))
    with tarfile.open(found[-1]) as tar:
        top = tar.getnames()[0].split("/")[0]
        members = [m for m in tar.getmembers() if m.name.startswith(f"{top}/examples/tutorial/")]
        # Debian 12's python 3.11.2 has no extraction filters; PyPI's sdist of Flask is trusted here.
        tar.extractall(dest, members=members)
    app = dest / "flaskr-app"
    shutil.move(dest / top / "examples" / "tutorial", app)
    return app


class Browser:
    """A client with a cookie jar, through nginx on port 80, as a person would use flaskr."""

    def __init__(self, host: str):
        self.host, self.cookies = host, {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
        from urllib.parse import urlencode

        conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
        headers = {"Host": self.host, "Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return r.status, text, {k.lower(): v for k, v in r.getheaders()}


def set_names(app: Path, name: str) -> None:
    """The one line a user changes in what init wrote: the site's host name (for this test machine)."""
    toml = app / "garrison.toml"
    toml.write_text(toml.read_text().replace('names = ["localhost"]', f'names = ["{name}"]'))


def test_flaskr_keeps_its_posts_across_deploys_rollback_and_down(tmp_path):
    app = flask_tutorial(tmp_path)
    init = garrison("init", cwd=app, check=True)
    assert "first_deploy" in (app / "garrison.toml").read_text(), init.stdout
    assert 'persist = ["instance"]' in (app / "garrison.toml").read_text()
    set_names(app, "flaskr.test")
    try:
        first = garrison("up", cwd=app)
        assert first.returncode == 0, first.stdout + first.stderr
        assert re.search(r"changed\s+first_deploy", first.stdout), first.stdout
        b = Browser("flaskr.test")
        assert b.request("POST", "/auth/register", {"username": "ada", "password": "lovelace"})[0] == 302
        assert b.request("POST", "/auth/login", {"username": "ada", "password": "lovelace"})[0] == 302
        assert b.request("POST", "/create", {"title": "Notes on the engine", "body": "It weaves."})[0] == 302
        assert "Notes on the engine" in b.request("GET", "/")[1]
        db = Path("/srv/flaskr/shared/instance/flaskr.sqlite")
        assert db.exists() and db.stat().st_uid != 0  # the app's own file, in shared/

        # A changed release: the post is still there, and init-db did not run again.
        (app / "flaskr" / "templates" / "base.html").write_text(
            (app / "flaskr" / "templates" / "base.html").read_text().replace("Flaskr", "Flaskr 2"))
        second = garrison("up", cwd=app)
        assert second.returncode == 0, second.stdout + second.stderr
        assert not re.search(r"changed\s+first_deploy", second.stdout)
        page = b.request("GET", "/")[1]
        assert "Flaskr 2" in page and "Notes on the engine" in page

        back = garrison("rollback", cwd=app)
        assert back.returncode == 0, back.stdout + back.stderr
        page = b.request("GET", "/")[1]
        assert "Flaskr 2" not in page and "Notes on the engine" in page

        assert garrison("down", cwd=app).returncode == 0
        again = garrison("up", cwd=app)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "Notes on the engine" in b.request("GET", "/")[1]
        # The code stays read-only for the app: only the link points into shared/.
        release = Path(os.path.realpath("/srv/flaskr/current"))
        assert release.stat().st_uid == 0 and os.path.islink(release / "instance")
        assert get("/static/style.css", host="flaskr.test").status == 200
    finally:
        garrison("down", "--purge", cwd=app)


def test_startproject_serves_with_no_edit(tmp_path):
    django = pytest.importorskip("django")
    app = tmp_path / "site"
    app.mkdir()
    subprocess.run((sys.executable, "-m", "django", "startproject", "mysite", "."), cwd=app, check=True,
                   capture_output=True)
    before = (app / "mysite" / "settings.py").read_text()
    garrison("init", cwd=app, check=True)
    try:
        up = garrison("up", cwd=app)
        assert up.returncode == 0, up.stdout + up.stderr
        assert (app / "mysite" / "settings.py").read_text() == before  # no edit, by hand or by Garrison
        login = get("/admin/login/", host="localhost")
        assert login.status == 200 and "Django" in login.text
        css = re.search(r'href="(/static/admin/css/[^"]+\.css)"', login.text)
        assert css, login.text[:500]
        sheet = get(css.group(1), host="localhost")
        assert sheet.status == 200 and "max-age" in sheet.headers.get("cache-control", "")  # nginx's, not Django's
        name = tomllib.loads((app / "garrison.toml").read_text())["app"]["name"]  # init names it after its folder
        db = Path(f"/srv/{name}/shared/db.sqlite3")
        assert db.exists() and db.stat().st_size > 0  # migrate ran in the release hook, through the link
        assert django.get_version() in (app / "requirements.txt").read_text()
    finally:
        garrison("down", "--purge", cwd=app)


def test_an_asgi_app_under_wsgi_workers_fails_with_what_to_set(tmp_path):
    """A hand-written garrison.toml that forgets worker_class = "uvicorn" for an ASGI app: the
    deploy fails (the old one keeps serving) and says which interface the app speaks."""
    app = tmp_path / "asgiapp"
    app.mkdir()
    (app / "main.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'asgi'})\n")
    (app / "garrison.toml").write_text('[app]\nname = "asgiapp"\nentry = "main:app"\nrequirements = ""\n'
                                       'health_deadline = 15\n\n[server]\nnames = ["asgiapp.test"]\n')
    try:
        failed = garrison("up", cwd=app)
        text = failed.stdout + failed.stderr
        assert failed.returncode == 4, text
        assert "is an ASGI app" in text and 'worker_class = "uvicorn"' in text, text
        (app / "garrison.toml").write_text((app / "garrison.toml").read_text() + '\n[gunicorn]\nworker_class = "uvicorn"\n')
        fixed = garrison("up", cwd=app)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert get("/", host="asgiapp.test").text == "asgi"
    finally:
        garrison("down", "--purge", cwd=app)


def test_down_purge_of_an_app_that_is_not_there_changes_nothing(tmp_path):
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "garrison.toml").write_text('[app]\nname = "neverdeployed"\nentry = "main:app"\nrequirements = ""\n')
    proc = garrison("down", "--purge", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing to remove" in proc.stdout and not re.search(r"^\s*changed\s", proc.stdout, re.M), proc.stdout


WAL_APP = '''
import sqlite3
from flask import Flask

app = Flask(__name__)


def db():
    con = sqlite3.connect("data/notes.db", timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS notes (n INTEGER)")
    return con


@app.post("/note")
def note():
    with db() as con:
        con.execute("INSERT INTO notes VALUES (1)")
    return "ok"


@app.get("/")
def count():
    with db() as con:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        return f"{con.execute('SELECT count(*) FROM notes').fetchone()[0]} {mode}"
'''


def test_sqlite_in_wal_mode_writes_through_the_link_under_load(tmp_path):
    """An SQLite file under a persisted folder, written by 4 clients at once through the release's
    link: every write lands (the WAL and shared-memory files are made beside the database, in
    shared/: the release itself is root's and read-only to the app)."""
    import threading

    app = tmp_path / "walapp"
    (app / "data").mkdir(parents=True)
    (app / "main.py").write_text(WAL_APP)
    (app / "requirements.txt").write_text("flask\n")
    (app / "garrison.toml").write_text('[app]\nname = "walapp"\nentry = "main:app"\npersist = ["data"]\n\n'
                                       '[server]\nnames = ["walapp.test"]\n')
    try:
        up = garrison("up", cwd=app)
        assert up.returncode == 0, up.stdout + up.stderr
        failures: list[str] = []

        def writer() -> None:
            b = Browser("walapp.test")
            for _ in range(50):
                status = b.request("POST", "/note", {})[0]
                if status != 200:
                    failures.append(str(status))

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        assert get("/", host="walapp.test").text == "200 wal"
        shared = Path("/srv/walapp/shared/data")
        assert (shared / "notes.db").stat().st_size > 0
        release = Path(os.path.realpath("/srv/walapp/current"))
        assert os.path.islink(release / "data") and release.stat().st_uid == 0
        # A new release sees the same data.
        (app / "main.py").write_text(WAL_APP + "\n# v2\n")
        assert garrison("up", cwd=app).returncode == 0
        assert get("/", host="walapp.test").text == "200 wal"
    finally:
        garrison("down", "--purge", cwd=app)
