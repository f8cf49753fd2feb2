"""gunicorn is unreachable from another machine: a network namespace host (tests/hostlab.py)
reaches this machine's nginx on port 80 but not gunicorn, bound to loopback."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.helpers import garrison, try_get
from tests.hostlab import GATEWAY, hostlab  # noqa: F401  (the fixture)

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (deploys, network namespaces)"),
    pytest.mark.skipif(not (shutil.which("unshare") and shutil.which("ip") and shutil.which("sshd")),
                       reason="needs unshare, ip and sshd for the lab host"),
]

CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close(); print('open')\n"
    "except OSError as e:\n"
    "    print('closed', type(e).__name__)\n"
)


def test_gunicorn_on_loopback_is_unreachable_from_another_host(hostlab, tmp_path):  # noqa: F811
    app = tmp_path / "iso"
    app.mkdir()
    (app / "main.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'isolated']\n"
    )
    (app / "garrison.toml").write_text(
        '[app]\nname = "iso"\nentry = "main:app"\nrequirements = ""\n\n'
        '[server]\nnames = ["iso.test"]\n\n[gunicorn]\nbind = "127.0.0.1:9710"\n'
    )
    try:
        assert garrison("up", cwd=app).returncode == 0
        assert try_get("/", host="iso.test").text == "isolated"
        other = hostlab.host("outsider")

        def from_outside(port: int) -> str:
            return other.exec("/usr/bin/python3", "-c", CONNECT, GATEWAY, str(port)).stdout.decode().strip()

        assert from_outside(80) == "open"  # the network works: nginx answers the other host
        live = 9710 if "9710" in open("/etc/nginx/garrison/iso.upstream.conf").read() else 9711
        assert from_outside(live).startswith("closed")  # gunicorn does not
    finally:
        garrison("down", "--purge", cwd=app)
