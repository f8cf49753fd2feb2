"""`garrison deploy` to [[hosts]] over SSH, against disposable lab servers (tests/hostlab.py).

Each host is a network namespace with its own sshd, nginx (started by the deploy) and
overlays over /etc /usr /var /srv: nothing reaches this machine's nginx, port 80 or /srv.
The hosts have no route out, so pip installs from a wheelhouse built once per session.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.e2e.helpers import wait_for
from tests.e2e.lab import (
    APP,
    BASE,
    SAMPLE,
    SERVER_NAME,
    STEP_RE,
    assert_sample_served,
    cli_env,
    fresh,
    garrison,
    host_entry,
    http_get,
    make_app,
    steps_by_host,
)
from tests.hostlab import UNUSED_ADDRESS, hostlab, lab_unavailable_reason  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())),
]
pytest.importorskip("asyncssh")


# -- one host ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one(lab, wheelhouse, tmp_path_factory):
    """Lab host f1 with the sample app deployed by `garrison deploy` (first deploy), once per
    service manager (the `lab` fixture: supervisord, then systemd as PID 1)."""
    h = fresh(lab.host("f1"))
    kh = lab.known_hosts([h], tmp_path_factory.mktemp("kh1") / "known_hosts")
    app = make_app(tmp_path_factory.mktemp("app1") / "app", [host_entry(h)])
    env = cli_env(lab, kh, wheelhouse)
    t0 = time.monotonic()
    first = garrison("deploy", cwd=app, env=env)
    print(f"first deploy to f1: {time.monotonic() - t0:.1f} s")
    return h, kh, app, env, first


def test_deploy_to_one_host_is_served_by_its_nginx(one):
    h, kh, app, env, first = one
    assert first.returncode == 0, first.stderr
    steps = steps_by_host(first.stdout)
    assert set(steps) == {"f1"}, first.stdout  # every step line is prefixed by the host
    assert ("release", "changed") in steps["f1"] and ("venv", "changed") in steps["f1"]
    assert ("tool", "changed") in steps["f1"] and "from the wheelhouse" in first.stdout
    assert "deployed 1/1 host(s)" in first.stdout.splitlines()[-1]
    assert_sample_served(h.address)
    # The code arrived as an archive (no git on the host side), pip ran offline from the wheelhouse.
    assert h.exec("test", "-d", "/var/cache/garrison/wheels").returncode == 0
    assert h.exec("sh", "-c", f"ls {BASE}/releases | grep -c .").stdout.strip() == b"1"


def test_second_deploy_changes_nothing(one):
    h, kh, app, env, first = one
    assert first.returncode == 0
    again = garrison("deploy", cwd=app, env=env)
    assert again.returncode == 0, again.stderr
    steps = steps_by_host(again.stdout)["f1"]
    assert steps and all(status in ("unchanged", "skipped") for _, status in steps), steps
    assert "1 changed" not in again.stdout and "0 changed, 1 unchanged" in again.stdout
    assert_sample_served(h.address)


def test_status_and_logs_on_the_remote_host(one):
    h, kh, app, env, first = one
    assert first.returncode == 0
    st = garrison("status", "--host", "f1", cwd=app, env=env)
    assert st.returncode == 0, st.stderr
    assert f"{APP} on f1" in st.stdout and "live slot" in st.stdout and "running" in st.stdout
    logs = garrison("logs", "error", "-n", "5", cwd=app, env=env)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.strip().splitlines()
    assert lines and all(ln.startswith("f1 | ") for ln in lines) and "[INFO]" in logs.stdout


def _tails_running(h) -> int:
    """`tail -F` processes inside the lab host (its own PID namespace)."""
    res = h.sh('for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f" 2>/dev/null; echo; done', check=False)
    return sum(1 for line in res.stdout.decode(errors="replace").splitlines() if line.startswith("tail -n 0 -F "))


def test_logs_follow_on_the_remote_host_streams_until_ctrl_c(one):
    h, kh, app, env, first = one
    assert first.returncode == 0
    log = f"/var/log/{APP}/error.log"
    assert h.exec("test", "-f", log, check=False).returncode == 0
    proc = subprocess.Popen(
        (sys.executable, "-m", "garrison", "logs", "error", "--follow", "-n", "1"),
        cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        wait_for(lambda: _tails_running(h) == 1, 30, "the remote tail -F to start")
        marker = f"follow-marker-{os.getpid()}-{time.monotonic_ns()}"
        h.sh(f'echo "{marker}" >> "$1"', log)
        wait_for(lambda: any(marker in ln for ln in lines), 15, "the new line to be printed")
        assert f"f1 | {marker}\n" in lines
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=20) == 130  # interrupted, as tail -F here
        reader.join(5)
        assert "Traceback" not in proc.stderr.read()
        # The remote tail ends with the client: nothing is left running on the host.
        wait_for(lambda: _tails_running(h) == 0, 15, "the remote tail -F to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_new_code_then_rollback_on_the_remote_host(one):
    h, kh, app, env, first = one
    assert first.returncode == 0
    tpl = app / "templates" / "index.html"
    before = tpl.read_text()
    tpl.write_text(before.replace("Morituri te salutant.", "Morituri te salutant, remotely."))
    try:
        assert garrison("deploy", cwd=app, env=env).returncode == 0
        assert b"remotely" in http_get(h.address)[1]
        back = garrison("rollback", cwd=app, env=env)
        assert back.returncode == 0, back.stdout + back.stderr
        assert "rolled back 1/1 host(s)" in back.stdout
        status, body = http_get(h.address)
        assert status == 200 and b"remotely" not in body and b"Morituri te salutant." in body
    finally:
        tpl.write_text(before)


# -- two hosts in parallel, --host -------------------------------------------------------------


def test_host_option_limits_then_two_hosts_in_parallel(hostlab, wheelhouse, tmp_path):
    a, b = fresh(hostlab.host("f2"), hostlab.host("f3"))
    kh = hostlab.known_hosts([a, b], tmp_path / "known_hosts")
    app = make_app(tmp_path / "app", [host_entry(a), host_entry(b)])
    env = cli_env(hostlab, kh, wheelhouse)

    only = garrison("deploy", "--host", "f2", cwd=app, env=env)
    assert only.returncode == 0, only.stderr
    assert set(steps_by_host(only.stdout)) == {"f2"}
    assert_sample_served(a.address)
    assert b.exec("test", "-e", BASE, check=False).returncode != 0  # f3 untouched

    t0 = time.monotonic()
    both = garrison("deploy", cwd=app, env=env)
    took = time.monotonic() - t0
    assert both.returncode == 0, both.stderr
    steps = steps_by_host(both.stdout)
    assert set(steps) == {"f2", "f3"}
    assert all(s == "unchanged" or s == "skipped" for _, s in steps["f2"]), steps["f2"]
    assert ("venv", "changed") in steps["f3"]
    # Lines of the two hosts interleave: they ran at the same time.
    order = [m.group(1) for m in map(STEP_RE.match, both.stdout.splitlines()) if m]
    first_f3 = order.index("f3")
    assert "f2" in order[first_f3:], order
    assert_sample_served(a.address)
    assert_sample_served(b.address)
    print(f"parallel deploy (f2 no-op + f3 first): {took:.1f} s")

    unknown = garrison("deploy", "--host", "nope", cwd=app, env=env)
    assert unknown.returncode == 2 and "--host nope: no such host" in unknown.stderr


# -- failures: each one line naming its host; the good host deploys ----------------------------


def test_failing_hosts_are_one_line_each_and_the_good_host_deploys(hostlab, wheelhouse, one, tmp_path):
    good, kh_good, _, _, first = one
    if good.manager != "supervisord":
        pytest.skip("documented: its failing hosts are hostlab hosts, which trust another client key than the systemd lab's")
    assert first.returncode == 0
    unknown, changed, nosudo = fresh(hostlab.host("f5"), hostlab.host("f6"), hostlab.host("f7"))
    nosudo.add_user("nosudo")
    other_key = " ".join(unknown.host_key_pub.split()[:2])
    kh = tmp_path / "known_hosts"
    kh.write_text(good.known_hosts_line() + nosudo.known_hosts_line() + f"{changed.address} {other_key}\n")
    hosts = [
        host_entry(good),
        host_entry(unknown),
        host_entry(changed),
        {"name": "gone", "address": UNUSED_ADDRESS},
        host_entry(nosudo, user="nosudo"),
    ]
    app = make_app(tmp_path / "app", hosts)
    env = cli_env(hostlab, kh, wheelhouse)
    res = garrison("deploy", cwd=app, env=env)
    assert res.returncode == 4, (res.stdout, res.stderr)  # the number of failed hosts
    errors = [ln for ln in res.stderr.splitlines() if "garrison: error:" in ln]
    by_host = {ln.split("error:", 1)[1].split(":", 1)[0].strip(): ln for ln in errors}
    assert set(by_host) == {"f5", "f6", "gone", "f7"}, res.stderr
    assert "unknown host key" in by_host["f5"] and f"ssh-keyscan -H {unknown.address} >> {kh}" in by_host["f5"]
    assert "CHANGED" in by_host["f6"] and f"ssh-keygen -f {kh} -R {changed.address}" in by_host["f6"]
    assert UNUSED_ADDRESS in by_host["gone"]
    assert "user nosudo" in by_host["f7"] and "no passwordless sudo" in by_host["f7"]
    # One line each: no continuation lines for connection failures.
    assert not [ln for ln in res.stderr.splitlines() if re.match(r"^(f5|f6|f7|gone) \|", ln)], res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert "deployed 1/5 host(s)" in last and "failed: f5, f6, gone, f7" in last
    # The good host deployed (a new release: garrison.toml differs); nothing happened on the others.
    assert_sample_served(good.address)
    for h in (unknown, changed, nosudo):
        assert h.exec("test", "-e", BASE, check=False).returncode != 0
    assert not kh.read_text().count(unknown.address)  # nothing trusted behind the user's back

    # The message's command is the fix; --trust-new-hosts is the other way (TOFU, asked for).
    tofu = garrison("deploy", "--host", "f5", "--trust-new-hosts", "--plan", cwd=app, env=env)
    assert tofu.returncode == 0, tofu.stderr
    assert len(kh.read_text().splitlines()) == 4


# -- 3 app hosts behind 1 load balancer ---------------------------------------------------------

WHOAMI = '''
import socket
from flask import Flask

VERSION = "{version}"
app = Flask(__name__)


@app.get("/")
def index():
    return f"{{VERSION}} {{socket.gethostname()}}"


@app.get("/healthz")
def healthz():
    return "ok"
'''


def through_lb(lb, n: int = 30) -> list[str]:
    answers = []
    for _ in range(n):
        status, body = http_get(lb.address, "/")
        assert status == 200, body[:200]
        answers.append(body.decode())
    return answers


def test_three_app_hosts_behind_a_load_balancer(hostlab, wheelhouse, tmp_path):
    from bench.loadgen import Load
    from garrison import commands as C
    from garrison.layout import ToolLayout

    apps = fresh(*(hostlab.host(f"a{i}") for i in (1, 2, 3)))
    lb = fresh(hostlab.host("lb"))
    kh = hostlab.known_hosts([*apps, lb], tmp_path / "known_hosts")
    hosts = [host_entry(h, private_address=h.address) for h in apps] + [host_entry(lb, roles=["lb"])]
    app = make_app(tmp_path / "app", hosts, app_py=WHOAMI.format(version="v1"), extra="\n[gunicorn]\nworkers = 2\n")
    (app / "requirements.txt").write_text("Flask>=3.0\n")
    env = cli_env(hostlab, kh, wheelhouse)

    first = garrison("deploy", cwd=app, env=env)
    assert first.returncode == 0, first.stderr
    # gunicorn listens on the private address, not on 127.0.0.1 (nor on every address).
    listening = apps[0].exec("ss", "-Hltn").stdout.decode()
    assert f"{apps[0].address}:8000" in listening and "0.0.0.0:8000" not in listening, listening
    answers = through_lb(lb)
    assert {a.split()[1] for a in answers} == {"a1", "a2", "a3"}, answers
    assert {a.split()[0] for a in answers} == {"v1"}
    status, img = http_get(lb.address, "/static/caesar.png")  # from the LB's own copy
    assert status == 200 and img == (SAMPLE / "static" / "caesar.png").read_bytes()
    upstream = lb.exec("cat", f"/etc/nginx/garrison/{APP}-lb-upstream.conf").stdout.decode()
    assert all(f"server {h.address}:8000 max_fails=" in upstream for h in apps), upstream

    # A rolling deploy under continuous load: not one failed request.
    (app / "main.py").write_text(WHOAMI.format(version="v2"))
    with Load(SERVER_NAME, address=lb.address, threads=4, max_seconds=300) as load:
        t0 = time.monotonic()
        roll = garrison("deploy", cwd=app, env=env)
        took = time.monotonic() - t0
        time.sleep(0.5)
    assert roll.returncode == 0, roll.stderr
    print(f"rolling deploy of 3 hosts under load: {took:.1f} s, {load.total} requests, {dict(load.results)}")
    assert load.failures == [], load.failures[:10]
    assert load.total > 50
    # One host at a time: each was taken out, deployed, put back (in this order).
    lb_lines = [ln for ln in roll.stdout.splitlines() if re.match(r"^a\d\s*\|\s+changed lb\b", ln)]
    assert [ln.split()[0] for ln in lb_lines] == ["a1", "a1", "a2", "a2", "a3", "a3"], roll.stdout
    assert {a.split()[0] for a in through_lb(lb)} == {"v2"}

    # One app host's gunicorn stops: the LB keeps answering 200 from the others.
    apps[0].exec(*C.supervisorctl(ToolLayout(), "stop", "all"))
    answers = through_lb(lb, 40)
    assert {a.split()[1] for a in answers} == {"a2", "a3"}


# -- a load balancer config nginx rejects ---------------------------------------------------------

OTHER_DEFAULT = """# Another service on the balancer: it answers the requests for names no site serves.
server {
    listen 80 default_server;
    server_name other.test;
    return 204;
}
"""


def test_a_broken_load_balancer_config_never_reaches_the_live_file(hostlab, wheelhouse, tmp_path):
    """server.default = true where another site on the LB host is already the default server:
    the app host takes it, the balancer's nginx rejects it. The deploy fails with one line naming
    nginx -t, the LB's live site is the very file it was (never rewritten, not even restored),
    and the LB goes on serving the app, at the app host's new slot."""
    c1, lb = fresh(hostlab.host("c1"), hostlab.host("clb"))
    kh = hostlab.known_hosts([c1, lb], tmp_path / "known_hosts")
    app = make_app(tmp_path / "app", [host_entry(c1, private_address=c1.address), host_entry(lb, roles=["lb"])])
    env = cli_env(hostlab, kh, wheelhouse)
    first = garrison("deploy", cwd=app, env=env)
    assert first.returncode == 0, first.stderr
    assert_sample_served(lb.address)

    # The LB host's own default site (instead of the distribution's), loaded by its nginx.
    lb.sh('printf "%s" "$1" > /etc/nginx/sites-available/other\n'
          "ln -sfn /etc/nginx/sites-available/other /etc/nginx/sites-enabled/other\n"
          "rm -f /etc/nginx/sites-enabled/default\n"
          "nginx -t -q && nginx -s reload", OTHER_DEFAULT)
    wait_for(lambda: http_get(lb.address, host="unknown.test")[0] == 204, 15, "the LB's other site to answer")
    site = f"/etc/nginx/sites-available/garrison-lb-{APP}"
    upstream = f"/etc/nginx/garrison/{APP}-lb-upstream.conf"

    def live_site() -> tuple[bytes, bytes]:
        """The site's inode and mtime (a file written and restored gets a new inode), and its bytes."""
        return lb.exec("stat", "-c", "%i %.9Y", site).stdout, lb.exec("cat", site).stdout

    before = live_site()
    old_upstream = lb.exec("cat", upstream).stdout
    assert f"{c1.address}:8000 max_fails=".encode() in old_upstream

    toml = app / "garrison.toml"
    toml.write_text(toml.read_text().replace(f'names = ["{SERVER_NAME}"]', f'names = ["{SERVER_NAME}"]\ndefault = true'))
    res = garrison("deploy", cwd=app, env=env)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert live_site() == before
    errors = [ln for ln in res.stderr.splitlines() if "garrison: error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("garrison: error: clb: nginx -t rejected the new config"), res.stderr
    assert "duplicate default server" in errors[0], errors[0]
    assert "Traceback" not in res.stderr
    steps = steps_by_host(res.stdout)
    assert ("site", "changed") in steps["c1"]  # the app host took server.default = true
    # c1 out of the upstream and back in (at its new slot) went live; the LB's site did not.
    assert steps["c1"].count(("lb", "changed")) == 2, res.stdout
    assert ("lb-upstream", "unchanged") in steps["clb"] and ("lb-site", "failed") in steps["clb"], res.stdout

    assert lb.exec("test", "-L", f"/etc/nginx/sites-enabled/garrison-lb-{APP}", check=False).returncode == 0
    # The upstream did change (the app host serves from its other slot now).
    now_upstream = lb.exec("cat", upstream).stdout
    assert f"{c1.address}:8001 max_fails=".encode() in now_upstream and b" down;" not in now_upstream
    assert_sample_served(lb.address)
    assert http_get(lb.address, host="unknown.test")[0] == 204  # the other site still answers unknown names
