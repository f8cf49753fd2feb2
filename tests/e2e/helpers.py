"""Small helpers for end-to-end tests: HTTP through nginx, waiting on conditions, running the CLI."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("GARRISON_TEST_OUTPUT", REPO / "test-output"))


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def get(path: str, host: str = "localhost", port: int = 80, timeout: float = 5.0) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        r = conn.getresponse()
        return Response(r.status, r.read(), {k.lower(): v for k, v in r.getheaders()})
    finally:
        conn.close()


def try_get(path: str, **kw) -> Response | None:
    try:
        return get(path, **kw)
    except (OSError, http.client.HTTPException):
        return None


def wait_for(cond: Callable[[], object], deadline: float, what: str, interval: float = 0.05) -> float:
    """Poll cond until truthy; return the seconds it took; fail the test at the deadline."""
    t0 = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - t0 > deadline:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(interval)


def garrison(*args: str, cwd: Path, check: bool = False, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would, in cwd."""
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(
        (sys.executable, "-m", "garrison", *args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"garrison {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def pid_from(path: str) -> int:
    return int(Path(path).read_text().strip())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
