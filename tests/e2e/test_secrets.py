"""The app's secrets never reach the process table, a file others can read, or Garrison's output.

`garrison env set` stores them root-only; a release hook that runs for a while
(as a migration would) is watched from outside: every /proc/*/cmdline on the
machine is scanned while it runs, and the secret must not be in any of them.
Then every file Garrison wrote that other users can read, and the output of
`up`, `--plan`, `status` and `logs`, must not hold it either. A separate app
(`sekret`) so that the other end-to-end apps are never touched.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import garrison, get

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root (they write /etc/nginx, /srv and add a user)"),
]

HOST = "sekret.test"
CONFIG = """
[app]
name = "sekret"
entry = "main:app"
health_deadline = 20

[server]
names = ["sekret.test"]

[hooks]
release = "sleep 3; test -n \\"$SEKRET_TOKEN\\" && echo $((6 * 7))-seen"
"""
APP = '''
import os
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return "has secret" if os.environ.get("SEKRET_TOKEN") else "no secret"
'''
# Everything Garrison writes for an app, and what it installs for itself.
WRITTEN = ["/srv/sekret", "/var/log/sekret", "/etc/garrison", "/etc/nginx", "/opt/garrison", "/etc/systemd/system",
           "/etc/cron.d", "/etc/logrotate.d", "/var/lib/garrison"]


def cmdlines() -> list[tuple[int, bytes]]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append((int(entry.name), (entry / "cmdline").read_bytes()))
            except OSError:  # the process ended while we looked
                continue
    return out


def world_readable_files_holding(value: bytes) -> list[str]:
    found = []
    for top in WRITTEN:
        for folder, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IROTH or st.st_size > 5_000_000:
                        continue
                    if value in Path(path).read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("sekret")
    (root / "main.py").write_text(APP)
    (root / "requirements.txt").write_text("flask\n")
    (root / "garrison.toml").write_text(CONFIG)
    yield root
    garrison("down", "--purge", cwd=root)


def test_a_secret_stays_out_of_argv_files_and_output(app: Path):
    token = "s3cr3t-" + secrets.token_hex(16)
    garrison("env", "set", f"SEKRET_TOKEN={token}", cwd=app, check=True)
    proc = subprocess.Popen(
        (sys.executable, "-m", "garrison", "up"), cwd=app, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(os.environ, COLUMNS="200"),
    )
    seen_hook, leaks = False, []
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        for pid, line in cmdlines():
            if token.encode() in line:
                leaks.append((pid, line.replace(b"\0", b" ")[:300]))
            if b"sleep 3; test -n" in line:
                seen_hook = True
        time.sleep(0.05)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert seen_hook, "the scan never saw the release hook running: it proves nothing"
    assert not leaks, f"the secret was in a command line: {leaks}"
    assert "42-seen" not in output  # what a hook prints is shown only when it fails
    assert get("/", host=HOST).text == "has secret"

    assert world_readable_files_holding(token.encode()) == []
    env_file = Path("/srv/sekret/shared/.env")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and env_file.stat().st_uid == 0

    outputs = {"up": output}
    for args in (("up", "--plan"), ("up", "--plan", "--json"), ("status",), ("logs",), ("logs", "supervisor"),
                 ("env", "list")):
        res = garrison(*args, cwd=app)
        outputs[" ".join(args)] = res.stdout + res.stderr
    assert [name for name, text in outputs.items() if token in text] == []
