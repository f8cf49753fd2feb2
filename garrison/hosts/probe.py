"""HTTP health probe that runs ON the host, under its own python3 (stdlib only).

Its source is sent as `python3 -c`, so it works the same locally and over SSH
and needs no curl on the server. It polls TARGET (unix:/path.sock or
host:port) for PATH with a Host header until a 2xx answer or the deadline,
and prints one JSON line: {"ok", "status", "error", "body", "attempts"}.

usage: python3 -c SOURCE TARGET PATH HOST DEADLINE_S TIMEOUT_S
"""

# Annotations stay strings: the host's python3 may be older than the one running Garrison.
from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import time


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def once(target: str, path: str, host: str, timeout: float) -> tuple[int, str]:
    conn: http.client.HTTPConnection
    if target.startswith("unix:"):
        conn = UnixHTTPConnection(target[5:], timeout)
    elif target.startswith("https://"):
        # A reachability check from the host itself: the certificate is for the public name.
        h, _, p = target[len("https://"):].rpartition(":")
        ctx = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection(h, int(p), timeout=timeout, context=ctx)
    else:
        h, _, p = target.rpartition(":")
        conn = http.client.HTTPConnection(h.strip("[]"), int(p), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "garrison-probe", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(2000).decode("utf-8", "replace")
        return resp.status, body
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    target, path, host, deadline_s, timeout_s = argv[1], argv[2], argv[3], float(argv[4]), float(argv[5])
    deadline = time.monotonic() + deadline_s
    attempts, status, error, body = 0, None, None, ""
    while True:
        attempts += 1
        try:
            status, body = once(target, path, host, timeout_s)
            error = None
            if 200 <= status < 300:
                break
        except (OSError, http.client.HTTPException) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        if time.monotonic() + 0.2 > deadline:
            break
        time.sleep(0.2)
    ok = status is not None and 200 <= status < 300
    print(json.dumps({"ok": ok, "status": status, "error": error, "body": body[:500], "attempts": attempts}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
