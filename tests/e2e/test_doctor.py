"""`garrison doctor` against real faults: each is injected on a deployed app, doctor must
name it as the cause with evidence from the host and a fix; the test applies that fix
(the command doctor printed, run as printed, or the garrison.toml edit it asked for)
and the next doctor must be all green.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, garrison, try_get, wait_for

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root"),
]

APP = "docapp"
HOST = "docapp.test"
BASE = Path(f"/srv/{APP}")
SUPERVISORCTL = ("/opt/garrison/venv/bin/supervisorctl", "-c", "/etc/garrison/supervisord.conf")
SLOW_ROUTE = '''

@app.get("/slow")
def slow():
    import time

    time.sleep(4)
    return "slow"
'''


def doctor(app_dir: Path) -> dict:
    proc = garrison("doctor", "--json", cwd=app_dir)
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == report["ok"], proc.stdout + proc.stderr
    return report


def live_slot() -> str:
    return "green" if "green.sock" in Path(f"/etc/nginx/garrison/{APP}.upstream.conf").read_text() else "blue"


def release() -> Path:
    return (BASE / "current").resolve()


def sh(command: str, cwd: Path | None = None) -> None:
    # As an operator's shell would: `garrison` on the PATH.
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(("sh", "-c", command), capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    assert proc.returncode == 0, f"`{command}` failed: {proc.stderr}"


def serving() -> bool:
    r = try_get("/healthz", host=HOST, timeout=3)
    return r is not None and r.status == 200


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("doctor") / APP
    shutil.copytree(REPO / "garrison" / "sample_app", folder)
    (folder / "main.py").write_text((folder / "main.py").read_text() + SLOW_ROUTE)
    toml = (folder / "garrison.toml").read_text()
    toml = toml.replace('name = "ave_caesar"', f'name = "{APP}"').replace('names = ["localhost"]', f'names = ["{HOST}"]')
    toml = toml.replace("default = true", "default = false")
    # A sync worker is killed by gunicorn's timeout (a gevent worker keeps answering its heartbeat).
    toml += '\n[gunicorn]\nworker_class = "sync"\nworkers = 2\ntimeout = 2\n'
    (folder / "garrison.toml").write_text(toml)
    garrison("down", "--purge", cwd=folder)
    proc = garrison("up", cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doctor(folder)["ok"]
    yield folder
    garrison("down", "--purge", cwd=folder)


def inject_stop_gunicorn(app_dir):
    subprocess.run((*SUPERVISORCTL, "stop", f"{APP}-{live_slot()}"), check=True, capture_output=True)


def inject_broken_import(app_dir):
    main = release() / "main.py"
    main.write_text(main.read_text() + "\nimport docapp_no_such_module\n")
    subprocess.run((*SUPERVISORCTL, "restart", f"{APP}-{live_slot()}"), capture_output=True)


def undo_broken_import(app_dir, fix):
    # doctor says to fix the code and run `garrison up`; the code was broken on the server, so fix it there.
    main = release() / "main.py"
    main.write_text(main.read_text().replace("\nimport docapp_no_such_module\n", ""))
    assert garrison("up", cwd=app_dir).returncode == 0


def inject_no_gevent(app_dir):
    venv = (release() / ".venv").resolve()
    subprocess.run(("/opt/garrison/venv/bin/uv", "pip", "uninstall", "--python", f"{venv}/bin/python", "gevent"),
                   check=True, capture_output=True)
    # The app itself runs sync workers; gevent matters to the gevent worker class, which this
    # fault switches on (as a user following the tutorial would).
    conf = Path(f"/etc/garrison/{APP}/gunicorn.conf.py")
    conf.write_text(conf.read_text().replace("worker_class = 'sync'", "worker_class = 'gevent'"))
    subprocess.run((*SUPERVISORCTL, "restart", f"{APP}-{live_slot()}"), capture_output=True)


def undo_no_gevent(app_dir, fix):
    sh(fix, cwd=app_dir)
    assert garrison("up", cwd=app_dir).returncode == 0  # rewrites gunicorn.conf.py and restarts


def inject_socket_mode(app_dir):
    os.chmod(BASE / "run" / f"{live_slot()}.sock", 0o600)


def inject_wrong_upstream(app_dir):
    include = Path(f"/etc/nginx/garrison/{APP}.upstream.conf")
    other = "green" if live_slot() == "blue" else "blue"
    include.write_text(include.read_text().replace(f"{live_slot()}.sock", f"{other}.sock"))
    sh("nginx -s reload")


def inject_static_unreadable(app_dir):
    os.chmod(release() / "static", 0o700)


def inject_site_syntax(app_dir):
    site = Path(f"/etc/nginx/sites-available/{APP}.conf")
    site.write_text(site.read_text() + "\nthis is not nginx\n")


def inject_nginx_stopped(app_dir):
    sh("nginx -s quit")
    wait_for(lambda: not Path("/run/nginx.pid").exists(), 20, "nginx to stop")


def inject_timeout(app_dir):
    assert try_get("/slow", host=HOST, timeout=15).status != 200  # gunicorn kills the worker at 2 s


def undo_timeout(app_dir, fix):
    m = re.search(r"set \[gunicorn\] timeout = (\d+)", fix)
    assert m, fix
    toml = app_dir / "garrison.toml"
    toml.write_text(toml.read_text().replace("timeout = 2\n", f"timeout = {m.group(1)}\n"))
    assert garrison("up", cwd=app_dir).returncode == 0
    assert try_get("/slow", host=HOST, timeout=15).text == "slow"


def inject_site_unlinked(app_dir):
    Path(f"/etc/nginx/sites-enabled/{APP}.conf").unlink()
    sh("nginx -s reload")


def run_fix(app_dir, fix):
    """The fix as doctor printed it: `garrison up`, or shell commands run as printed."""
    if fix.strip() == "garrison up" or fix.startswith("run garrison up") or fix.startswith("garrison up"):
        assert garrison("up", cwd=app_dir).returncode == 0
    else:
        sh(fix, cwd=app_dir)


FAULTS = [
    # (name, inject, expected cause check, evidence fragment, fix fragment, apply fix)
    ("gunicorn stopped", inject_stop_gunicorn, "slot_running", "STOPPED", "supervisorctl", run_fix),
    ("import broken", inject_broken_import, "app_import", "No module named 'docapp_no_such_module'", "garrison up",
     undo_broken_import),
    ("gevent missing", inject_no_gevent, "gevent", "gevent", "pip install", undo_no_gevent),
    ("socket mode", inject_socket_mode, "socket_access", "srw-------", "chmod", run_fix),
    ("upstream wrong", inject_wrong_upstream, "upstream", ".sock", "garrison up", run_fix),
    ("static unreadable", inject_static_unreadable, "static", "static", "chmod", run_fix),
    ("site syntax", inject_site_syntax, "nginx_config", "emerg", "garrison up", run_fix),
    ("nginx stopped", inject_nginx_stopped, "nginx_running", "nginx", "nginx", run_fix),
    ("gunicorn timeout", inject_timeout, "gunicorn_timeout", "WORKER TIMEOUT", "timeout", undo_timeout),
    ("site unlinked", inject_site_unlinked, "site_enabled", f"{APP}.conf", "ln -s", run_fix),
]


@pytest.mark.parametrize("name, inject, check, evidence, fix_part, apply", FAULTS, ids=[f[0] for f in FAULTS])
def test_doctor_names_the_fault_and_its_fix_works(app_dir, name, inject, check, evidence, fix_part, apply):
    assert doctor(app_dir)["ok"], "the previous case left the app unhealthy"
    inject(app_dir)
    report = wait_for_cause(app_dir)
    cause = report["cause"]
    assert cause["check"] == check, json.dumps(report, indent=1)
    assert cause["status"] == "fail"
    assert evidence in cause["evidence"], cause
    assert fix_part in cause["fix"], cause
    text = garrison("doctor", cwd=app_dir)
    assert text.returncode == 1 and "<- cause" in text.stdout and f"fix: {cause['fix']}" in text.stdout
    apply(app_dir, cause["fix"])
    wait_for(serving, 30, f"the app to serve again after the fix for {name}")
    after = doctor(app_dir)
    assert after["ok"], json.dumps(after, indent=1)


def wait_for_cause(app_dir: Path) -> dict:
    """Faults such as a crash loop take a moment to show; doctor is read-only, so ask again."""
    report: dict = {}

    def failing() -> bool:
        nonlocal report
        report = doctor(app_dir)
        return not report["ok"] and report["cause"] is not None and report["cause"]["status"] == "fail"

    wait_for(failing, 20, "doctor to find the injected fault", interval=0.5)
    return report
