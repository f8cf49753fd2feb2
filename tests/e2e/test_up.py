"""`garrison up` of the sample app on this machine, end to end: real apt, nginx,
gunicorn and supervisord, then kills, a "reboot", a broken release, and
`down --purge`. The tests run in file order and share one deployment.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import OUTPUT, REPO, alive, garrison, get, pid_from, try_get, wait_for

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="garrison up needs root (it writes /etc/nginx, /srv and adds a user)"),
]

APP = "ave_caesar"
BASE = Path(f"/srv/{APP}")
SAMPLE = REPO / "garrison" / "sample_app"
TIMINGS: dict[str, float] = {}


def state() -> dict:
    return json.loads((BASE / "garrison-state.json").read_text())


def live_slot() -> str:
    """The slot nginx sends traffic to, as its upstream include names it."""
    text = Path(f"/etc/nginx/garrison/{APP}.upstream.conf").read_text()
    return "green" if "green.sock" in text else "blue"


def live_master() -> int:
    return pid_from(f"{BASE}/run/{live_slot()}.pid")


def serving() -> bool:
    r = try_get("/healthz", timeout=2)
    return r is not None and r.status == 200


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    # A folder with no app in it: `up` serves the bundled sample app.
    return tmp_path_factory.mktemp("empty")


@pytest.fixture(scope="module")
def deployed(workdir):
    garrison("down", "--purge", cwd=workdir)  # start from a clean machine state
    t0 = time.monotonic()
    # The README's first command, as a newcomer runs it: ./up in Garrison's checkout.
    proc = subprocess.run(["./up"], cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, COLUMNS="200"))
    TIMINGS["first up"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield proc
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "up-timings.json").write_text(json.dumps(TIMINGS, indent=2))


def test_fresh_up_serves_page_and_image_through_nginx(deployed):
    assert "serving ave_caesar" in deployed.stdout
    page = get("/")
    assert page.status == 200
    assert "Ave Caesar! Morituri te salutant." in page.text
    src = re.search(r'<img[^>]*src="([^"]+)"', page.text).group(1)
    img = get(src)
    assert img.status == 200
    assert img.headers["content-type"] == "image/png"
    assert img.body == (SAMPLE / "static" / "caesar.png").read_bytes()
    # Answers for any Host, like the tutorial's default_server (server.default = true).
    assert get("/", host="203.0.113.7").status == 200


def test_static_files_are_served_by_nginx_not_gunicorn(deployed):
    marker = f"/static/caesar.png?probe={time.time_ns()}"
    assert get(marker).status == 200
    assert get("/?after-static").status == 200
    access = Path(f"/var/log/{APP}/access.log")
    # The dynamic request reached gunicorn's access log; the static one never does.
    wait_for(lambda: "after-static" in access.read_text(), 5, "gunicorn's access log to show the page request")
    assert "caesar.png" not in access.read_text()
    assert marker in Path(f"/var/log/{APP}/nginx-access.log").read_text()


def test_release_is_root_owned_and_app_user_is_locked(deployed):
    user = pwd.getpwnam(APP)
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    release = BASE / "current"
    assert release.resolve().parent == BASE / "releases"
    assert release.resolve().stat().st_uid == 0
    assert (release / "main.py").stat().st_uid == 0
    # The venv was built from the distribution's python, usable by the app user.
    venv_python = os.path.realpath(release / ".venv" / "bin" / "python")
    assert not venv_python.startswith("/root/")
    # gunicorn runs as the app user.
    master = live_master()
    assert os.stat(f"/proc/{master}").st_uid == user.pw_uid


def test_second_up_changes_nothing(deployed, workdir):
    t0 = time.monotonic()
    proc = garrison("up", cwd=workdir)
    TIMINGS["no-op up"] = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [line for line in proc.stdout.splitlines() if re.match(r"^\s*(changed|unchanged|skipped)\s", line)]
    assert len(steps) >= 8, proc.stdout
    assert not [s for s in steps if s.split()[0] == "changed"], proc.stdout
    assert "nothing changed" in proc.stdout


def test_status_shows_live_slot_and_health(deployed, workdir):
    proc = garrison("status", cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HTTP 200" in proc.stdout
    assert f"{live_slot()}" in proc.stdout
    assert "running under" in proc.stdout


def test_run_a_one_off_command_in_the_live_release(deployed, workdir):
    """`garrison run`: as the app user, in the live release, with its venv; stdin in, exit status out."""
    code = "import os, sys, pwd; print(pwd.getpwuid(os.getuid()).pw_name, os.getcwd(), sys.prefix); sys.exit(3)"
    proc = garrison("run", "--", "python", "-c", code, cwd=workdir)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    user, cwd, prefix = proc.stdout.split()
    current = os.path.realpath("/srv/ave_caesar/current")
    assert user == "ave_caesar" and cwd == current and prefix.startswith(current + "/.venv")
    piped = subprocess.run((sys.executable, "-m", "garrison", "run", "--", "python", "-c",
                            "import sys; print(sys.stdin.read().upper())"),
                           cwd=workdir, input="through stdin", capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stdout.strip() == "THROUGH STDIN", piped.stderr


def test_kill_9_master_comes_back(deployed):
    master = live_master()
    orphans = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    os.kill(master, signal.SIGKILL)
    took = wait_for(lambda: live_master() != master and serving(), 20, "a new gunicorn master to serve")
    TIMINGS["kill -9 master to serving"] = took
    assert alive(live_master())
    # The dead master's workers notice and leave (after finishing what nginx still sends them).
    wait_for(lambda: not any(alive(p) for p in orphans), 60, "the killed master's workers to exit")


def test_killing_a_worker_fails_no_request(deployed):
    master = live_master()
    workers = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    assert workers, "gunicorn has no workers"
    failures: list[str] = []
    done = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal done
        end = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < end and done < 2000:
            r = try_get("/", timeout=5)
            if r is None or r.status != 200:
                failures.append("no answer" if r is None else str(r.status))
            done += 1

    t = threading.Thread(target=load)
    t.start()
    wait_for(lambda: done >= 20, 10, "the load to be under way")
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: not alive(workers[0]), 5, "the worker to die")
    after = done
    # Requests keep coming while the master replaces the worker: 100 more must all succeed.
    wait_for(lambda: done >= after + 100, 15, "100 more requests after the kill")
    stop.set()
    t.join(15)
    assert done > 20
    assert failures == []


def test_restarting_the_service_manager_brings_the_app_back(deployed):
    """A "reboot": supervisord and gunicorn go away, the boot entry's command brings both back."""
    sup_pid = pid_from("/run/garrison/supervisord.pid")
    master = live_master()
    os.kill(sup_pid, signal.SIGTERM)
    wait_for(lambda: not alive(sup_pid) and not alive(master), 60, "supervisord and gunicorn to stop")
    # Workers finishing their last keep-alive requests may answer a moment longer.
    wait_for(lambda: not serving(), 30, "the app to stop answering")
    boot = Path("/etc/cron.d/garrison")
    if boot.exists():
        line = [ln for ln in boot.read_text().splitlines() if ln.startswith("@reboot")][0]
        command = line.split(None, 2)[2]
    else:
        command = "mkdir -p /run/garrison && /opt/garrison/venv/bin/supervisord -c /etc/garrison/supervisord.conf"
    assert os.system(command) == 0
    wait_for(serving, 30, "the app to serve after supervisord started again")


def test_browser_shows_image_with_text_below(deployed):
    browser = pytest.importorskip("tests.e2e.browser")
    if browser.chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with browser.Chromium() as chrome:
        chrome.goto("http://127.0.0.1/")
        img = chrome.evaluate(
            "(() => { const i = document.querySelector('img'); const r = i.getBoundingClientRect();"
            " return {w: i.naturalWidth, complete: i.complete, bottom: r.bottom}; })()"
        )
        text = chrome.evaluate(
            "(() => { const p = document.querySelector('#caption'); return {t: p.textContent, top: p.getBoundingClientRect().top}; })()"
        )
        chrome.screenshot(OUTPUT / "sample-app.png")
    assert img["complete"] and img["w"] > 0
    assert "Ave Caesar" in text["t"]
    assert text["top"] >= img["bottom"]
    assert (OUTPUT / "sample-app.png").stat().st_size > 1000


def raw_request(data: bytes, timeout: float = 5.0) -> tuple[bytes, bytes]:
    """Send raw bytes to nginx; return (status line, whole answer)."""
    with socket.create_connection(("127.0.0.1", 80), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    answer = b"".join(chunks)
    return answer.split(b"\r\n", 1)[0], answer


SOURCE_MARKERS = (b"Flask(__name__)", b"import ", b"render_template")


@pytest.mark.parametrize(
    "path, status",
    [
        # Traversal out of the static alias, raw and encoded: nginx normalises the URI first,
        # so these reach the app as /main.py, which it does not serve (the app's own 404).
        (b"/static/../main.py", b"HTTP/1.1 404 NOT FOUND"),
        (b"/static..%2fmain.py", b"HTTP/1.1 404 NOT FOUND"),
        (b"/static/..%2fmain.py", b"HTTP/1.1 404 NOT FOUND"),
        (b"/static/%2e%2e/main.py", b"HTTP/1.1 404 NOT FOUND"),
        (b"/static../main.py", b"HTTP/1.1 404 NOT FOUND"),
        # Dotfiles never leave nginx (its own 404).
        (b"/.env", b"HTTP/1.1 404 Not Found"),
        (b"/.git/config", b"HTTP/1.1 404 Not Found"),
        (b"/static/.env", b"HTTP/1.1 404 Not Found"),
        # NUL and control bytes are refused by nginx's parser.
        (b"/a%00b", b"HTTP/1.1 400 Bad Request"),
        (b"/a\x00b", b"HTTP/1.1 400 Bad Request"),
        (b"/a\x01b", b"HTTP/1.1 400 Bad Request"),
    ],
)
def test_attack_paths_get_a_harmless_answer(deployed, path, status):
    line, answer = raw_request(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert line == status
    assert not any(m in answer for m in SOURCE_MARKERS)


def test_oversized_body_is_refused_by_nginx(deployed):
    line, _ = raw_request(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 20000000\r\nConnection: close\r\n\r\n")
    assert line == b"HTTP/1.1 413 Request Entity Too Large"


def test_forged_host_gets_the_default_app_and_no_proxy_header_trust(deployed):
    line, answer = raw_request(
        b"GET / HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n"
    )
    # The sample app is the configured default server: a forged Host reaches it, never another app,
    # and the answer carries no link to the forged host.
    assert line == b"HTTP/1.1 200 OK" and b"Ave Caesar" in answer and b"evil.example" not in answer
    assert b"Server: nginx\r\n" in answer  # server_tokens off: no version


def test_slow_headers_are_cut_off(deployed):
    """A client sending its headers a byte at a time is dropped by client_header_timeout (10 s)."""
    t0 = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", 80), timeout=2) as s:
        for byte in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 40:
            try:
                s.sendall(bytes([byte]))
                s.settimeout(0.5)
                if s.recv(1024) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 20:
                break
    assert closed_after is not None, "nginx kept a byte-a-second client for 20 s"
    assert 8 < closed_after < 15


def test_broken_release_keeps_the_old_one_serving(deployed, tmp_path):
    app = tmp_path / "broken"
    shutil.copytree(SAMPLE, app)
    main = app / "main.py"
    main.write_text(main.read_text() + "\nimport garrison_no_such_module_xyz  # breaks the import\n")
    before = state()["current"]
    proc = garrison("up", cwd=app)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    # The app's own error, quoted from its log, and what happened to traffic.
    assert "No module named 'garrison_no_such_module_xyz'" in proc.stderr
    assert "keeps serving" in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert "failed to boot: ModuleNotFoundError" in first, first
    assert state()["current"] == before
    page = get("/")
    assert page.status == 200 and "Ave Caesar" in page.text


def test_new_code_is_deployed_and_served(deployed, tmp_path):
    app = tmp_path / "v2"
    shutil.copytree(SAMPLE, app)
    tpl = app / "templates" / "index.html"
    tpl.write_text(tpl.read_text().replace("Morituri te salutant.", "Morituri te salutant, version two."))
    old_slot = live_slot()
    proc = garrison("up", cwd=app)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "new code" in proc.stdout
    assert live_slot() != old_slot
    assert "version two" in get("/").text


def test_down_purge_leaves_nothing(deployed, workdir):
    other_site = Path("/etc/nginx/sites-available/default")
    # A straggler running as the app user (as a stopped master's workers can be for
    # a moment): userdel refuses while it runs, so purge must end it first. Started
    # detached (its shell exits at once), so that init, not this test, reaps it.
    spawn = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], user=APP, capture_output=True,
                           text=True, check=True)
    straggler = int(spawn.stdout.strip())
    # And a zombie of the app user (this test's own child, not reaped until the end):
    # it can't be ended, so purge must not wait on it (userdel ignores zombies).
    zombie = subprocess.Popen(["true"], user=APP)
    wait_for(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z", 10,
             "the child to become a zombie")
    try:
        assert alive(straggler)
        proc = garrison("down", "--purge", cwd=workdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        wait_for(lambda: not alive(straggler), 10, "the straggler to be gone")
    finally:
        zombie.wait()
        if alive(straggler):
            os.kill(straggler, signal.SIGKILL)
    for path in (
        BASE,
        Path(f"/var/log/{APP}"),
        Path(f"/etc/garrison/{APP}"),
        Path(f"/etc/nginx/sites-available/{APP}.conf"),
        Path(f"/etc/nginx/sites-enabled/{APP}.conf"),
        Path(f"/etc/nginx/garrison/{APP}.upstream.conf"),
        Path(f"/etc/garrison/supervisor.d/{APP}-blue.conf"),
        Path(f"/etc/garrison/supervisor.d/{APP}-green.conf"),
        Path(f"/etc/systemd/system/{APP}@.service"),
        Path(f"/etc/logrotate.d/garrison-{APP}"),
    ):
        assert not path.exists(), f"{path} left behind"
    with pytest.raises(KeyError):
        pwd.getpwnam(APP)
    assert not serving() or "Ave Caesar" not in get("/").text
    # The distribution's default site is back where it was.
    if other_site.exists():
        assert Path("/etc/nginx/sites-enabled/default").exists()
