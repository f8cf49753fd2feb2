"""A bounded HTTP load through nginx on loopback, for zero-downtime tests and benchmarks.

Threads that each open a new connection per request (as a browser does after
nginx closes an idle keep-alive connection on reload), bounded in time and
count, recording every answer: the version string a 200 carries, or why it
failed.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter


def get(
    path: str, host: str, port: int = 80, timeout: float = 10.0, address: str = "127.0.0.1"
) -> tuple[int, str] | None:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class Load:
    def __init__(
        self,
        host: str,
        path: str = "/",
        port: int = 80,
        threads: int = 3,
        max_seconds: float = 180,
        max_requests: int = 250_000,
        address: str = "127.0.0.1",
    ):
        self.host, self.path, self.port, self.address = host, path, port, address
        self.stop = threading.Event()
        self.results: Counter[str] = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            r = get(self.path, self.host, self.port, address=self.address)
            with self.lock:
                if self.total >= self.max_requests:
                    return
                if r is None:
                    self.failures.append("connection error")
                elif r[0] != 200:
                    self.failures.append(f"HTTP {r[0]}")
                else:
                    self.results[r[1]] += 1

    @property
    def total(self) -> int:
        return sum(self.results.values()) + len(self.failures)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        end = time.monotonic() + 10
        while self.total <= 10:
            if time.monotonic() > end:
                raise RuntimeError(f"the load got no answers from http://{self.host}:{self.port}{self.path} at {self.address}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)
