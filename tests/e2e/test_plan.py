"""`garrison up --plan --json` decides exactly what the following `up` does.

For each change in a table (nothing, code, requirements, a gunicorn setting, an
nginx setting, TLS, the environment), the steps the plan marks "change" must
be exactly the steps that `up` then reports "changed", on this machine with
the real nginx, gunicorn and service manager. A second `--plan` after each
`up` must then show no change at all. A separate app (`plantest`) so that the
other end-to-end apps are never touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import garrison, get

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root (they write /etc/nginx, /srv and add a user)"),
]

HOST = "plantest.test"

CONFIG = """
[app]
name = "plantest"
entry = "main:app"
health_deadline = 20
static = [{{ url = "/static/", path = "static" }}]

[server]
names = ["plantest.test"]
{tls}

[gunicorn]
workers = {workers}

[nginx]
client_max_body_size = "{body}"
"""

APP = '''
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return "{text}"
'''

STEP_LINE = re.compile(r"^\s*(changed|unchanged|skipped|failed)\s+(\S+)")


def write_app(root: Path, *, text: str = "v1", workers: int = 2, body: str = "10m", tls: str = "",
              requirements: str = "flask\n") -> None:
    (root / "static").mkdir(exist_ok=True)
    (root / "static" / "site.css").write_text("body { color: #123; }\n")
    (root / "main.py").write_text(APP.format(text=text))
    (root / "requirements.txt").write_text(requirements)
    (root / "garrison.toml").write_text(CONFIG.format(workers=workers, body=body, tls=tls))


def planned(root: Path) -> dict[str, str]:
    proc = garrison("up", "--plan", "--json", cwd=root, check=True)
    decisions = json.loads(proc.stdout)
    assert all({"step", "action", "reason", "diff"} <= d.keys() for d in decisions)
    return {d["step"]: d["action"] for d in decisions}


def done(root: Path) -> dict[str, str]:
    proc = garrison("up", cwd=root, check=True)
    return {m.group(2): m.group(1) for m in map(STEP_LINE.match, proc.stdout.splitlines()) if m}


def changed(steps: dict[str, str], word: str) -> set[str]:
    return {name for name, action in steps.items() if action == word}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("plantest")
    write_app(root)
    yield root
    garrison("down", "--purge", cwd=root)


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "plantest.crt", folder / "plantest.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=DNS:{HOST}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    key.chmod(0o600)
    return cert, key


def test_the_plan_names_exactly_the_steps_up_then_changes(app: Path, tmp_path: Path):
    cert, key = self_signed(tmp_path)
    tls = f'tls = {{ cert = "{cert}", key = "{key}" }}'
    env_file = Path("/srv/plantest/shared/.env")
    table = [
        ("first deploy", lambda: None, {"user", "release", "venv", "config", "slot", "upstream", "site"}),
        ("nothing at all", lambda: None, set()),
        ("code", lambda: write_app(app, text="v2"), {"release", "slot", "upstream", "drain"}),
        ("requirements", lambda: write_app(app, text="v2", requirements="flask\nblinker\n"),
         {"release", "venv", "slot", "upstream", "drain"}),
        ("a gunicorn setting", lambda: write_app(app, text="v2", requirements="flask\nblinker\n", workers=3),
         {"config", "slot", "upstream", "drain"}),
        ("an nginx setting", lambda: write_app(app, text="v2", requirements="flask\nblinker\n", workers=3, body="20m"),
         {"site"}),
        ("TLS", lambda: write_app(app, text="v2", requirements="flask\nblinker\n", workers=3, body="20m", tls=tls),
         {"site"}),
        ("env", lambda: env_file.write_text('PLAN_TEST="1"\n'), {"slot", "upstream", "drain"}),
    ]
    for what, change, must in table:
        change()
        plan = planned(app)
        up = done(app)
        assert changed(plan, "change") == changed(up, "changed"), (what, plan, up)
        # The plan said it for a reason: the steps this change must touch are among them.
        assert must <= changed(plan, "change"), (what, must, plan)
        assert not changed(up, "failed"), (what, up)
        again = planned(app)
        assert changed(again, "change") == set(), (f"{what}: a second plan still wants changes", again)
    assert get("/", host=HOST).status in (200, 301, 308)
