"""Helpers of the end-to-end tests that deploy to lab hosts over SSH (tests/hostlab.py,
tests/systemdlab.py): the wheelhouse the hosts install from, an app with [[hosts]], the
CLI's environment for a lab, HTTP to a host, a fresh host. One place, used by
test_fleet, test_managers, test_provision, test_remote_parity and bench/.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "garrison" / "sample_app"
WHEELHOUSE = Path("/tmp/garrison-wheelhouse")
WHEELS = ("supervisor>=4.2", "uv", "gunicorn[gevent]>=23", "Flask>=3.0")
SERVER_NAME = "ave.test"
APP = "fleetave"
BASE = f"/srv/{APP}"


def build_wheelhouse(folder: Path = WHEELHOUSE) -> Path:
    """Wheels for the lab hosts' python (the machine's /usr/bin/python3), downloaded once."""
    marker = folder / ".complete"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ("/usr/bin/python3", "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", str(folder), *WHEELS),
            capture_output=True, text=True, timeout=600,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot build the wheelhouse (pip download): {res.stderr.strip()[-300:]}")
        marker.write_text("")
    return folder


def hosts_toml(hosts: list[dict]) -> str:
    text = ""
    for h in hosts:
        text += "\n[[hosts]]\n" + "".join(
            f"{k} = {v!r}\n".replace("'", '"') if not isinstance(v, list) else f"{k} = {str(v).replace(chr(39), chr(34))}\n"
            for k, v in h.items()
        )
    return text


def make_app(folder: Path, hosts: list[dict], app_py: str | None = None, extra: str = "") -> Path:
    """A copy of the sample app with [[hosts]] (and optionally another main.py)."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(SAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (SAMPLE / "garrison.toml").read_text()
    toml = toml.replace('names = ["localhost"]\ndefault = true', f'names = ["{SERVER_NAME}"]')
    toml = toml.replace('name = "ave_caesar"', f'name = "{APP}"')  # not the name local tests deploy here
    (folder / "garrison.toml").write_text(toml + extra + hosts_toml(hosts))
    if app_py is not None:
        (folder / "main.py").write_text(app_py)
    return folder


def cli_env(hostlab, known_hosts: Path | None, wheelhouse: Path | None, identity: Path | None = None) -> dict:
    env = dict(os.environ, COLUMNS="250", PYTHONPATH=str(REPO))
    env.pop("SSH_AUTH_SOCK", None)
    env["GARRISON_KNOWN_HOSTS"] = str(known_hosts) if known_hosts else "/nonexistent/known_hosts"
    env["GARRISON_SSH_CONFIG"] = ""
    env["GARRISON_IDENTITY"] = str(identity or hostlab.client_key)
    env["GARRISON_CONNECT_TIMEOUT"] = "3"
    if wheelhouse:
        env["GARRISON_WHEELHOUSE"] = str(wheelhouse)
    return env


def garrison(*args: str, cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run((sys.executable, "-m", "garrison", *args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    print(f"$ garrison {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def http_get(address: str, path: str = "/", host: str = SERVER_NAME, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


STEP_RE = re.compile(r"^(\S+)\s*\|\s+(changed|unchanged|skipped|failed)\s+(\S+)")


def steps_by_host(stdout: str) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for line in stdout.splitlines():
        m = STEP_RE.match(line)
        if m:
            found.setdefault(m.group(1), []).append((m.group(3), m.group(2)))
    return found


def assert_sample_served(address: str) -> None:
    status, body = http_get(address, "/")
    assert status == 200 and b"caesar" in body.lower(), body[:300]
    status, img = http_get(address, "/static/caesar.png")
    assert status == 200 and img == (SAMPLE / "static" / "caesar.png").read_bytes()


FRESH = r"""
set -e
# A folder removed and made again in the overlay is opaque: later changes on the machine
# (other tests deploying there) no longer show through.
rm -rf /tmp/nginx-copy && cp -a /etc/nginx /tmp/nginx-copy
for d in /etc/nginx /opt/garrison /etc/garrison /var/log/garrison /var/cache/garrison; do
  rm -rf "$d" && mkdir -p "$d"
done
cp -a /tmp/nginx-copy/. /etc/nginx/ && rm -rf /tmp/nginx-copy
rm -rf /srv/* /etc/cron.d/garrison*
find /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/nginx/conf.d /etc/nginx/garrison -mindepth 1 ! -name default -delete 2>/dev/null || true
if [ -e /etc/nginx/sites-available/default ]; then ln -sfn /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default; fi
"""


def fresh(*hosts):
    """A lab host's overlays show this machine's folders through: it would inherit Garrison's
    tool venv, supervisor programs, nginx sites and /srv apps from local deploys on this
    machine (which other tests change while we run). A fresh server has none of them:
    remove them (in the host's overlay only)."""
    for h in hosts:
        h.sh(FRESH)
    return hosts[0] if len(hosts) == 1 else hosts


def host_entry(h, **kw) -> dict:
    return {"name": h.name, "address": h.address, **kw}
