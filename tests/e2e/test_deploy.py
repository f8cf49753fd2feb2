"""Zero-downtime releases, end to end: blue/green cut-overs under continuous load,
every way a release can fail, rollback, the deploy lock, hooks, and a deploy
killed at each step. A second app (`zdt`, Host zdt.test) so that the sample
app of test_up is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.loadgen import Load as BenchLoad
from tests.e2e.helpers import garrison, try_get, wait_for

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root (they write /etc/nginx, /srv and add a user)"),
]

HOST = "zdt.test"
BASE = Path("/srv/zdt")

CONFIG = """
[app]
name = "zdt"
entry = "main:app"
health_path = "/healthz"
health_deadline = 10
health_timeout = 1

[server]
names = ["zdt.test"]

[gunicorn]
workers = 2
graceful_timeout = 10

[hooks]
release = "{release_hook}"
"""

APP = '''
import os, time
from flask import Flask

VERSION = "{version}"
app = Flask(__name__)
{extra}

@app.get("/")
def index():
    return VERSION


@app.get("/env/<key>")
def env(key):
    return os.environ.get(key, "(unset)")


@app.get("/healthz")
def healthz():
    {health}
    return "ok"
'''


# Boots fine, answers, then takes its gunicorn master down a moment later.
CRASH_AFTER_START = """
import signal, threading


def _crash():
    time.sleep(0.3)
    try:
        os.kill(os.getppid(), signal.SIGKILL)
    except OSError:
        pass  # another worker got there first


threading.Thread(target=_crash, daemon=True).start()
"""


def write_app(folder: Path, version: str, *, extra: str = "", health: str = "pass", release_hook: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garrison.toml").write_text(CONFIG.format(release_hook=release_hook.replace('"', '\\"')))
    (folder / "requirements.txt").write_text("flask>=3.0\n")
    (folder / "main.py").write_text(APP.format(version=version, extra=extra, health=health))
    return folder


def Load() -> BenchLoad:
    return BenchLoad(HOST)


def version() -> str | None:
    r = try_get("/", host=HOST, timeout=5)
    return r.text if r is not None and r.status == 200 else None


def state() -> dict:
    return json.loads((BASE / "garrison-state.json").read_text())


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zdt") / "zdt"
    write_app(folder, "v0")
    garrison("down", "--purge", cwd=folder)
    proc = garrison("up", cwd=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert version() == "v0"
    yield folder
    garrison("down", "--purge", cwd=folder)


def test_five_deploys_under_load_fail_no_request(app_dir):
    with Load() as load:
        for n in range(1, 6):
            write_app(app_dir, f"v{n}")
            proc = garrison("deploy", cwd=app_dir)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert version() == f"v{n}"
        wait_for(lambda: load.results["v5"] > 0, 10, "the load to see v5")
    assert all(not t.is_alive() for t in load.threads)
    assert load.failures == [], f"{len(load.failures)} failed of {load.total}: {Counter(load.failures)}"
    assert load.total > 100
    assert {"v1", "v2", "v3", "v4", "v5"} <= set(load.results)


@pytest.mark.parametrize(
    "case, kwargs, expected",
    [
        ("import fails", {"extra": "import zdt_no_such_module"}, "the app failed to boot: ModuleNotFoundError"),
        ("crash after start", {"extra": CRASH_AFTER_START}, "crashed after start"),
        ("health 500", {"health": 'return "broken", 500'}, "/healthz answered HTTP 500 instead of 2xx"),
        ("hangs", {"health": "time.sleep(60)"}, "/healthz did not answer within 10 s"),
    ],
)
def test_a_failing_release_never_takes_traffic(app_dir, case, kwargs, expected):
    before = version()
    current = state()["current"]
    write_app(app_dir, "bad", **kwargs)
    with Load() as load:
        proc = garrison("deploy", cwd=app_dir)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert expected in first, first
    assert "keeps serving the previous release" in first
    assert load.failures == [], f"{case}: {Counter(load.failures)}"
    assert set(load.results) == {before}
    assert version() == before and state()["current"] == current
    write_app(app_dir, before)  # leave the folder deployable


def test_rollback_under_load(app_dir):
    before = version()
    write_app(app_dir, "rb-new")
    assert garrison("deploy", cwd=app_dir).returncode == 0
    assert version() == "rb-new"
    with Load() as load:
        proc = garrison("rollback", cwd=app_dir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert version() == before
    assert load.failures == []
    # A named release works too, by id prefix.
    rid = [r for r in state()["releases"] if r != state()["current"]][-1]
    assert garrison("rollback", rid[:18], cwd=app_dir).returncode == 0
    assert state()["current"] == rid


def _deploy_killed_after(app_dir: Path, step_line: str) -> str:
    """Start a deploy and SIGKILL it as soon as it reports `step_line`; return its output."""
    proc = subprocess.Popen(
        (sys.executable, "-m", "garrison", "deploy"), cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=dict(os.environ, COLUMNS="200"),
    )
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        words = line.split()
        if len(words) >= 2 and words[1] == step_line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(60)
    return "".join(seen)


@pytest.mark.parametrize("step", ["venv", "slot", "upstream"])
def test_deploy_killed_at_a_step_leaves_the_site_serving(app_dir, step):
    write_app(app_dir, f"killed-{step}")
    (app_dir / "requirements.txt").write_text(f"flask>=3.0\n# {step}\n")  # a new venv, so every step runs
    with Load() as load:
        out = _deploy_killed_after(app_dir, step)
        assert f" {step} " in out, out
        # What serves after the kill keeps serving: 50 more requests, none may fail.
        after = load.total
        wait_for(lambda: load.total >= after + 50, 15, "50 more requests after the kill")
    assert load.failures == [], f"killed after {step}: {Counter(load.failures)}"
    assert version() is not None
    # The next deploy clears what was left (no stale lock) and succeeds.
    write_app(app_dir, f"after-{step}")
    proc = garrison("deploy", cwd=app_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert version() == f"after-{step}"


def test_the_lock_stops_a_second_deploy(app_dir):
    write_app(app_dir, "locked", release_hook="sleep 3")
    first = subprocess.Popen((sys.executable, "-m", "garrison", "deploy"), cwd=app_dir, stdout=subprocess.PIPE, text=True)
    lock = BASE / ".garrison.lock"
    wait_for(lambda: lock.exists() and f"pid {first.pid} " in lock.read_text(errors="replace"), 60,
             "the first deploy to take the lock")
    second = garrison("deploy", cwd=app_dir)
    assert second.returncode == 5, second.stdout + second.stderr
    assert "another deploy holds the lock" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.wait(120) == 0
    assert version() == "locked"


def test_release_hook_runs_in_the_new_release_with_its_environment(app_dir):
    env_file = BASE / "shared" / ".env"
    env_file.write_text("GREETING=salve\n")
    os.chmod(env_file, 0o600)
    out = BASE / "shared" / "hook.out"
    hook = f'echo "$GARRISON_RELEASE $PWD $(command -v python) $GREETING $(id -un)" > {out}'
    write_app(app_dir, "hooked", release_hook=hook)
    proc = garrison("deploy", cwd=app_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rid, cwd, python, greeting, user = out.read_text().split()
    assert rid == state()["current"]
    assert cwd == f"{BASE}/releases/{rid}"
    assert python == f"{BASE}/releases/{rid}/.venv/bin/python"
    assert (greeting, user) == ("salve", "zdt")


def test_a_failing_release_hook_leaves_traffic_untouched(app_dir):
    before = version()
    write_app(app_dir, "hook-fails", release_hook="echo migration failed >&2; exit 3")
    proc = garrison("deploy", cwd=app_dir)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "the release hook" in proc.stderr and "exited 3" in proc.stderr and "migration failed" in proc.stderr
    assert version() == before


def test_plan_shows_the_change_and_touches_nothing(app_dir):
    write_app(app_dir, "planned")
    (app_dir / "garrison.toml").write_text((app_dir / "garrison.toml").read_text().replace("workers = 2", "workers = 3"))
    conf = Path("/etc/garrison/zdt/gunicorn.conf.py")
    before_conf, before_state = conf.read_text(), (BASE / "garrison-state.json").read_text()
    proc = garrison("deploy", "--plan", cwd=app_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "new release" in proc.stdout
    assert "-workers = 2" in proc.stdout and "+workers = 3" in proc.stdout
    assert "nothing was touched" in proc.stdout
    assert conf.read_text() == before_conf and (BASE / "garrison-state.json").read_text() == before_state
    assert version() != "planned"


def test_env_set_reaches_the_app_without_dropping_a_request(app_dir):
    secret = 'tr0ub4dor "&" $(id)'
    with Load() as load:
        proc = garrison("env", "set", f"SECRET_KEY={secret}", "MODE=prod", cwd=app_dir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load.failures == [], Counter(load.failures)
    assert secret not in proc.stdout + proc.stderr  # never printed
    r = try_get("/env/SECRET_KEY", host=HOST)
    assert r is not None and r.text == secret
    env_file = BASE / "shared" / ".env"
    st = env_file.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    listed = garrison("env", "list", cwd=app_dir)
    assert "SECRET_KEY=********" in listed.stdout and secret not in listed.stdout
    assert secret in garrison("env", "list", "--reveal", cwd=app_dir).stdout
    # No secret in any file the service manager or nginx reads, other than .env itself.
    for conf in Path("/etc/garrison").rglob("*"):
        if conf.is_file():
            assert "tr0ub4dor" not in conf.read_text(errors="replace"), conf
    assert garrison("env", "unset", "MODE", cwd=app_dir).returncode == 0
    assert try_get("/env/MODE", host=HOST).text == "(unset)"


def test_unknown_hosts_never_reach_a_random_app(app_dir):
    """With no default server on the port (the distribution's default site removed), Garrison's
    catch-all answers unknown hosts with 444 (no answer at all); zdt never gets them."""
    default_link = Path("/etc/nginx/sites-enabled/default")
    had_default = default_link.is_symlink() or default_link.exists()
    target = os.readlink(default_link) if default_link.is_symlink() else None
    sample_default = Path("/etc/nginx/sites-enabled/ave_caesar.conf")
    if sample_default.exists():
        pytest.skip("the sample app (a configured default server) is deployed here")
    try:
        if had_default:
            default_link.unlink()
        proc = garrison("up", cwd=app_dir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "unknown hosts on port 80 get 444" in proc.stdout
        assert try_get("/", host="unknown.example") is None  # 444: the connection closes unanswered
        assert version() is not None  # zdt itself still answers for its name
    finally:
        if had_default and target:
            default_link.symlink_to(target)
    if had_default:
        proc = garrison("up", cwd=app_dir)
        assert "catch-all removed" in proc.stdout, proc.stdout
        r = try_get("/", host="unknown.example")
        assert r is not None and r.text != version()


def test_two_apps_side_by_side_never_touch_each_other(app_dir, tmp_path):
    """A second app with its own name, user, socket, program, site and logs: redeploying or
    removing either one leaves the other serving, untouched."""
    other = tmp_path / "zdt2"
    other.mkdir()
    (other / "main.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'other app']\n"
    )
    (other / "garrison.toml").write_text(
        '[app]\nname = "zdt2"\nentry = "main:app"\nrequirements = ""\n\n[server]\nnames = ["zdt2.test"]\n'
    )
    try:
        assert garrison("up", cwd=other).returncode == 0
        assert try_get("/", host="zdt2.test").text == "other app"
        other_master = Path("/srv/zdt2/run/blue.pid").read_text()
        # Redeploying zdt leaves zdt2's gunicorn alone.
        write_app(app_dir, "side-by-side")
        assert garrison("deploy", cwd=app_dir).returncode == 0
        assert Path("/srv/zdt2/run/blue.pid").read_text() == other_master
        assert try_get("/", host="zdt2.test").text == "other app"
        assert pwd_of("/srv/zdt2/shared") == "zdt2" and pwd_of(str(BASE / "shared")) == "zdt"
    finally:
        proc = garrison("down", "--purge", cwd=other)
    assert proc.returncode == 0
    # zdt is untouched by zdt2's removal.
    assert version() == "side-by-side"
    assert Path("/etc/nginx/sites-enabled/zdt.conf").exists() and not Path("/etc/nginx/sites-enabled/zdt2.conf").exists()


def pwd_of(path: str) -> str:
    import pwd

    return pwd.getpwuid(os.stat(path).st_uid).pw_name
