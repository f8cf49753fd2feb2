"""A deploy over SSH that fails explains itself with the cause read on THAT host, and `logs`
and `status` read the host's own files (a lab host, tests/hostlab.py).

This machine has no app of that name: a doctor run here could only say "not
deployed here", so the app's own exception in the output proves the cause was
read on the lab host.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.lab import (
    cli_env,
    fresh,
    garrison,
    host_entry,
    make_app,
)
from tests.hostlab import hostlab, lab_unavailable_reason  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())),
]

BROKEN = """
raise RuntimeError("boom: the settings module is missing DATABASE_URL")
"""


def test_a_failed_remote_deploy_prints_that_hosts_cause_and_its_logs(hostlab, wheelhouse, tmp_path):  # noqa: F811
    h = fresh(hostlab.host("rp1"))
    kh = hostlab.known_hosts([h], tmp_path / "known_hosts")
    env = cli_env(hostlab, kh, wheelhouse)
    app = make_app(tmp_path / "app", [host_entry(h)])
    first = garrison("deploy", cwd=app, env=env)
    assert first.returncode == 0, first.stdout + first.stderr

    make_app(tmp_path / "app", [host_entry(h)], app_py=BROKEN)
    failed = garrison("deploy", cwd=app, env=env)
    text = failed.stdout + failed.stderr
    assert failed.returncode == 1, text  # one host failed
    assert "rp1 | doctor (" in text, text  # the doctor's cause, printed for that host
    assert "boom: the settings module is missing DATABASE_URL" in text
    assert "not deployed here" not in text  # not a doctor run on this machine

    logs = garrison("logs", "error", "--host", "rp1", "-n", "200", cwd=app, env=env)
    assert logs.returncode == 0, logs.stderr
    assert any(line.startswith("rp1 | ") and "boom" in line for line in logs.stdout.splitlines()), logs.stdout

    status = garrison("status", "--host", "rp1", cwd=app, env=env)
    assert "rp1" in status.stdout and "live slot" in status.stdout, status.stdout + status.stderr

    # `garrison run` on the host: in its live release, as the app user; exit status and stdin pass through.
    code = "import os, pwd, sys; print(pwd.getpwuid(os.getuid()).pw_name, sys.stdin.read().upper()); sys.exit(3)"
    ran = subprocess.run((sys.executable, "-m", "garrison", "run", "--host", "rp1", "--", "python", "-c", code),
                         cwd=app, env=env, input="from the caller", capture_output=True, text=True, timeout=120)
    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert ran.stdout.split() == ["fleetave", "FROM", "THE", "CALLER"], ran.stdout


SECRET_HOOK = 'sleep 3; test -n "$LAB_TOKEN"'


def test_secrets_stay_out_of_every_command_line_over_ssh(hostlab, wheelhouse, tmp_path):  # noqa: F811
    """`garrison env set --host`, then a deploy whose release hook runs a while: every
    /proc/*/cmdline of this machine (the lab host's processes included: its PID namespace
    is inside ours) is scanned meanwhile; the value is in none, nor in any output."""
    import secrets as pysecrets
    import subprocess
    import sys
    import time
    from pathlib import Path

    h = fresh(hostlab.host("rp2"))
    kh = hostlab.known_hosts([h], tmp_path / "known_hosts")
    env = cli_env(hostlab, kh, wheelhouse)
    app = make_app(tmp_path / "app", [host_entry(h)], extra=f'\n[hooks]\nrelease = "{SECRET_HOOK.replace(chr(34), chr(92) + chr(34))}"\n')
    token = "lab-" + pysecrets.token_hex(16)
    setting = garrison("env", "set", f"LAB_TOKEN={token}", "--host", "rp2", cwd=app, env=env)
    assert setting.returncode == 0, setting.stdout + setting.stderr
    deploy = subprocess.Popen((sys.executable, "-m", "garrison", "deploy"), cwd=app, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    seen_hook, leaks = False, []
    end = time.monotonic() + 600
    while deploy.poll() is None and time.monotonic() < end:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                line = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            seen_hook |= b"sleep 3; test -n" in line
            if token.encode() in line:
                leaks.append(line.replace(b"\0", b" ")[:200])
        time.sleep(0.05)
    output = deploy.communicate(timeout=60)[0].decode()
    assert deploy.returncode == 0, output
    assert seen_hook, "the scan never saw the hook running on the lab host"
    assert leaks == []
    listing = garrison("env", "list", "--host", "rp2", cwd=app, env=env)
    assert "LAB_TOKEN=" in listing.stdout and token not in listing.stdout + output + setting.stdout
    mode = h.exec("stat", "-c", "%a %U", "/srv/fleetave/shared/.env").stdout.decode().split()
    assert mode == ["600", "root"]
