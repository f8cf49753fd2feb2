"""granian instead of gunicorn (app.server = "granian"), end to end: the sample app served
through nginx, a blue/green deploy under load without a failed request, and a broken
release refused with the app's own error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.loadgen import Load
from tests.e2e.helpers import REPO, garrison, get, try_get

pytestmark = [pytest.mark.machine, pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root")]

HOST = "granian.test"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("granian") / "gran"
    shutil.copytree(REPO / "garrison" / "sample_app", folder)
    toml = (folder / "garrison.toml").read_text()
    toml = toml.replace('name = "ave_caesar"', 'name = "gran"').replace('names = ["localhost"]', f'names = ["{HOST}"]')
    toml = toml.replace("default = true", "default = false").replace('health_path = "/healthz"',
                                                                    'health_path = "/healthz"\nserver = "granian"')
    (folder / "garrison.toml").write_text(toml)
    garrison("down", "--purge", cwd=folder)
    proc = garrison("up", cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield folder
    garrison("down", "--purge", cwd=folder)


def test_granian_serves_the_page_and_nginx_the_image(app_dir):
    page = get("/", host=HOST)
    assert page.status == 200 and "Ave Caesar" in page.text
    assert get("/static/caesar.png", host=HOST).body == (REPO / "garrison/sample_app/static/caesar.png").read_bytes()
    pid = int(Path("/srv/gran/run/blue.pid").read_text())
    assert "granian" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def test_granian_deploy_under_load_fails_no_request(app_dir):
    tpl = app_dir / "templates" / "index.html"
    tpl.write_text(tpl.read_text().replace("Morituri te salutant.", "Morituri te salutant (granian)."))
    with Load(HOST) as load:
        proc = garrison("deploy", cwd=app_dir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load.failures == [] and load.total > 50
    assert "(granian)" in get("/", host=HOST).text


def test_a_broken_release_under_granian_is_refused(app_dir):
    main = app_dir / "main.py"
    good = main.read_text()
    main.write_text(good + "\nimport gran_no_such_module\n")
    try:
        proc = garrison("deploy", cwd=app_dir)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert "keeps serving the previous release" in proc.stderr.splitlines()[0]
        assert "gran_no_such_module" in proc.stderr
        r = try_get("/", host=HOST)
        assert r is not None and r.status == 200
    finally:
        main.write_text(good)
