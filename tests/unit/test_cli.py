"""The CLI as a user meets it: init and render on real folders, and clear one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def garrison(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run((sys.executable, "-m", "garrison", *args), cwd=cwd, capture_output=True, text=True, timeout=60)


FLASK_APP = '''from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "hello"
'''


@pytest.fixture
def flask_app(tmp_path: Path) -> Path:
    app = tmp_path / "hello"
    app.mkdir()
    (app / "app.py").write_text(FLASK_APP)
    (app / "requirements.txt").write_text("flask\n")
    (app / "static").mkdir()
    (app / "static" / "site.css").write_text("body { color: black }\n")
    return app


def test_init_then_render_on_a_flask_app(flask_app: Path, tmp_path: Path):
    proc = garrison("init", cwd=flask_app)
    assert proc.returncode == 0, proc.stderr
    toml = (flask_app / "garrison.toml").read_text()
    assert 'entry = "app:app"' in toml and 'name = "hello"' in toml and 'path = "static"' in toml
    out = tmp_path / "review"
    proc = garrison("render", "--out", str(out), cwd=flask_app)
    assert proc.returncode == 0, proc.stderr
    site = (out / "etc/nginx/sites-available/hello.conf").read_text()
    assert "alias /srv/hello/current/static/;" in site
    assert "wsgi_app = 'app:app'" in (out / "etc/garrison/hello/gunicorn.conf.py").read_text()
    assert (out / "etc/systemd/system/hello@.service").is_file()
    assert (out / "etc/garrison/supervisor.d/hello-blue.conf").is_file()
    # init refuses to overwrite what the user may have edited.
    again = garrison("init", cwd=flask_app)
    assert again.returncode == 2 and "--force" in again.stderr


def test_render_in_an_empty_folder_renders_the_sample_app(tmp_path: Path):
    proc = garrison("render", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/etc/nginx/sites-available/ave_caesar.conf").is_file()


def test_init_without_an_app_says_what_to_write(tmp_path: Path):
    proc = garrison("init", cwd=tmp_path)
    assert proc.returncode == 2
    assert "entry" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[app]\nname = "x"\nentry = "app:app"\n[gunicorn]\nworkers = "x"\n',
         'garrison.toml: gunicorn.workers: expected a positive integer or "auto", got "x"'),
        ('[app\nname = "x"\n', "garrison.toml: TOML syntax error"),
        ('[app]\nname = "x"\nentry = "app"\n', 'garrison.toml: app.entry: expected "module:callable"'),
        ('[app]\nname = "x"\nentry = "app:app"\nport = 80\n', "garrison.toml: app.port: unknown key"),
        ('[app]\nname = "x"\nentry = "app:app"\nrequirements = "missing.txt"\n',
         "garrison.toml: app.requirements: expected a file in the app folder"),
    ],
)
def test_bad_config_is_one_line_without_traceback(flask_app: Path, tmp_path: Path, toml: str, expected: str):
    (flask_app / "garrison.toml").write_text(toml)
    proc = garrison("render", "--out", str(tmp_path / "o"), cwd=flask_app)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_config_in_an_app_folder_points_to_init(flask_app: Path, tmp_path: Path):
    proc = garrison("render", "--out", str(tmp_path / "o"), cwd=flask_app)
    assert proc.returncode == 2
    assert "garrison init" in proc.stderr and "Traceback" not in proc.stderr
