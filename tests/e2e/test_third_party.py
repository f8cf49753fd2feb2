"""Apps from other people's generators, deployed with `garrison init` + `garrison up` and no
edit (issue 18): one dynamic page and one static file each, through nginx.

- a Wagtail site from the CMS's own project generator (`wagtail start`): a settings
  package (base/dev/production, guarded local imports), SQLite and media kept in
  shared/, collectstatic and migrate in the release hook;
- the example project in django-allauth's source distribution on PyPI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import garrison, get

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root (they write /etc/nginx, /srv and add a user)"),
]


def generator(tmp_path: Path, package: str, command: str) -> Path:
    """A venv with the generator's package, from PyPI, as its user would install it."""
    venv = tmp_path / "generator-venv"
    pytest.importorskip("uv")
    subprocess.run((sys.executable, "-m", "uv", "venv", "--quiet", "--python", "/usr/bin/python3", str(venv)),
                   check=True, capture_output=True, timeout=300)
    subprocess.run((sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    package), check=True, capture_output=True, timeout=900)
    return venv / "bin" / command


def test_a_wagtail_site_from_its_project_generator(tmp_path):
    # Wagtail 7.0 (LTS): the project it generates asks for Django 5.2, which runs on Debian 12's
    # Python 3.11 (newer templates ask for Django 6.1, which needs Python 3.12).
    wagtail = generator(tmp_path, "wagtail>=7.0,<7.1", "wagtail")
    site = tmp_path / "cms"
    site.mkdir()
    subprocess.run((str(wagtail), "start", "mysite", "."), cwd=site, check=True, capture_output=True, timeout=120)
    init = garrison("init", cwd=site, check=True)
    toml = (site / "garrison.toml").read_text()
    assert 'persist = ["db.sqlite3", "media"]' in toml, init.stdout
    try:
        up = garrison("up", cwd=site)
        assert up.returncode == 0, up.stdout + up.stderr
        home = get("/", host="localhost")
        assert home.status == 200 and "Wagtail" in home.text, home.text[:300]
        css = get("/static/css/welcome_page.css", host="localhost")
        assert css.status == 200 and "max-age" in css.headers.get("cache-control", "")  # nginx's expires
        assert Path("/srv/cms/shared/db.sqlite3").stat().st_size > 0  # migrate wrote through the link
    finally:
        garrison("down", "--purge", cwd=site)


def sdist(tmp_path: Path, requirement: str) -> Path:
    """The source distribution of a package, from PyPI, unpacked (cached between runs)."""
    import tarfile

    cache = Path("/tmp/garrison-sdists")
    cache.mkdir(exist_ok=True)
    name = requirement.split("=")[0].replace("-", "_")
    found = sorted(cache.glob(f"{name}-*.tar.gz"))
    if not found:
        subprocess.run((sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", requirement,
                        "-d", str(cache)), check=True, capture_output=True, timeout=300)
        found = sorted(cache.glob(f"{name}-*.tar.gz"))
    with tarfile.open(found[-1]) as tar:
        tar.extractall(tmp_path)  # Debian 12's python 3.11.2 has no extraction filters
    return tmp_path / found[-1].name.removesuffix(".tar.gz")


def test_django_allauths_example_project(tmp_path):
    """The example project django-allauth ships in its sdist: SQLite under db/ (by an
    os.environ.get default), STATIC_ROOT = "" (so collectstatic gets its folder from the hook)."""
    src = sdist(tmp_path, "django-allauth==65.22.1") / "examples" / "regular-django"
    site = tmp_path / "allauthex"
    site.mkdir()
    for item in src.iterdir():
        subprocess.run(("cp", "-a", str(item), str(site)), check=True)
    init = garrison("init", cwd=site, check=True)
    toml = (site / "garrison.toml").read_text()
    assert 'persist = ["db/example.db"]' in toml, init.stdout
    try:
        up = garrison("up", cwd=site)
        assert up.returncode == 0, up.stdout + up.stderr
        home = get("/", host="127.0.0.1")
        assert home.status == 200 and "allauth" in home.text.lower(), home.text[:300]
        css = get("/static/admin/css/base.css", host="127.0.0.1")
        assert css.status == 200 and "max-age" in css.headers.get("cache-control", "")
        assert Path("/srv/allauthex/shared/db/example.db").stat().st_size > 0  # migrate, through the link
    finally:
        garrison("down", "--purge", cwd=site)
