"""Drive a real headless Chromium over the DevTools protocol (CDP), for end-to-end page checks.

What this module owns: one throwaway Chromium per ``with Chromium() as b:`` block -- its temporary
profile directory, the browser process (and its process group: renderer, GPU, crashpad helpers),
and one websocket to its first page target. Leaving the block always closes the socket, stops the
browser by its own PID / process group (SIGTERM, then SIGKILL after a deadline) and deletes the
profile. Nothing here touches any other process.

Why raw CDP rather than Playwright/Selenium: those download their own browser builds (or need a
matching chromedriver), and the test machine has no internet. Debian's ``chromium`` package is
already installed and speaks CDP natively, so the only extra dependency is the small pure-Python
``websocket-client`` package (``import websocket``).

The CDP client is deliberately tiny and synchronous: every command gets the next id, we read
messages until the reply with that id arrives, and events seen on the way are buffered so that
``goto`` can look for its load event among them.

    with Chromium() as b:
        b.goto("http://127.0.0.1:8080/")
        assert b.evaluate("document.images[0].naturalWidth") > 0
        b.screenshot(tmp_path / "page.png")

Flags: ``--no-sandbox`` is required when running as root (Chromium refuses to start without it).
``--disable-background-networking --disable-component-update --disable-sync --disable-quic`` stop
Chromium phoning home, which on an offline machine only produces refused connections and noise
(Debian's /usr/bin/chromium wrapper adds --disable-background-networking too; we pass it anyway).
``--disable-dev-shm-usage`` because containers often have a tiny /dev/shm. The page viewport is
pinned (default 1280x800) so layout and screenshots match from one machine to the next. The
websocket is opened without an Origin header, which Chromium >= 111 would otherwise reject.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import websocket  # pip install websocket-client

DEFAULT_TIMEOUT = 15.0

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium could not be started, did not answer, or a CDP command failed."""


class NavigationError(BrowserError):
    """``goto`` could not load the page (net error such as connection refused, or a timeout)."""


class JavaScriptError(BrowserError):
    """The expression given to ``evaluate`` threw (or its promise rejected)."""


def chromium_path() -> str | None:
    """The Chromium binary to use, or None when it is not installed (tests skip on None)."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _exit_status(pid: int) -> str | None:
    """How our child pid ended, or None while it runs. Never reaps it (WNOWAIT): as long as the
    zombie stays, its pid and process-group id cannot be handed to an unrelated process."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return "already reaped"
    if info is None:
        return None
    how = "exit code" if info.si_code == os.CLD_EXITED else "signal"
    return f"{how} {info.si_status}"


class Chromium:
    """A headless Chromium with one page, driven over CDP. Use as a context manager."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        viewport: tuple[int, int] = (1280, 800),
        start_timeout: float = 20.0,
        command_timeout: float = DEFAULT_TIMEOUT,
    ):
        self.binary = binary or chromium_path()
        self.viewport = viewport
        self.start_timeout = start_timeout
        self.command_timeout = command_timeout
        self.port: int | None = None
        self._tmp: Path | None = None
        self._log = None
        self._proc: subprocess.Popen | None = None
        self._ws: websocket.WebSocket | None = None
        self._next_id = 0
        self._events: list[dict] = []

    # ---- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        if not self.binary:
            raise BrowserError("chromium not found (looked at /usr/bin/chromium and PATH)")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="garrison-chromium-"))
        profile = self._tmp / "profile"
        profile.mkdir()
        self._log = open(self._tmp / "chromium.log", "wb")
        self._proc = subprocess.Popen(
            (
                self.binary,
                *FLAGS,
                "--window-size={},{}".format(*self.viewport),
                f"--user-data-dir={profile}",
                "about:blank",
            ),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so helpers can be swept up on close
        )
        deadline = time.monotonic() + self.start_timeout
        self.port = self._wait_for_port(profile / "DevToolsActivePort", deadline)
        ws_url = self._wait_for_page_target(deadline)
        self._ws = websocket.create_connection(
            ws_url,
            timeout=max(0.1, deadline - time.monotonic()),
            suppress_origin=True,  # Chromium >= 111 rejects websocket Origins it wasn't told to allow
            http_no_proxy=["127.0.0.1", "localhost"],
        )
        # The window size includes headless "browser chrome"; pin the page's viewport itself so that
        # layout and screenshots are the same on every machine.
        width, height = self.viewport
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def _wait_for_port(self, path: Path, deadline: float) -> int:
        # Chromium writes "<port>\n<browser ws path>\n"; wait for both lines, not just the file.
        while True:
            self._check_alive("while starting")
            try:
                lines = path.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= 2 and lines[0].strip().isdigit():
                return int(lines[0])
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium did not write {path} within {self.start_timeout} s{self._log_tail()}")
            time.sleep(0.02)

    def _wait_for_page_target(self, deadline: float) -> str:
        last_error: object = None
        while True:
            self._check_alive("while listing targets")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/json")
                    targets = json.loads(conn.getresponse().read())
                finally:
                    conn.close()
                for t in targets:
                    if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                        return t["webSocketDebuggerUrl"]
                last_error = f"no page target in {targets!r}"
            except (OSError, ValueError) as e:
                last_error = e
            if time.monotonic() > deadline:
                raise BrowserError(f"no page target on port {self.port}: {last_error}{self._log_tail()}")
            time.sleep(0.05)

    def _check_alive(self, when: str) -> None:
        # Not Popen.poll(): that would reap the leader, and then close() could no longer safely
        # sweep its process group (the group id would be free for reuse).
        status = _exit_status(self._proc.pid) if self._proc is not None else None
        if status is not None:
            raise BrowserError(f"chromium exited ({status}) {when}{self._log_tail()}")

    def _log_tail(self, n: int = 2000) -> str:
        try:
            data = (self._tmp / "chromium.log").read_bytes()[-n:].decode(errors="replace")  # type: ignore[operator]
        except (OSError, TypeError):
            return ""
        return f"\n--- chromium output (tail) ---\n{data}" if data.strip() else ""

    def close(self) -> None:
        """Close the socket, stop our Chromium (TERM, then KILL after 5 s), delete the profile. Idempotent."""
        if self._ws is not None:
            try:
                self._ws.close(timeout=1)
            except Exception:
                pass
            self._ws = None
        if self._proc is not None:
            self._stop(self._proc)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @staticmethod
    def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
        pid = proc.pid  # == its process group id (start_new_session=True)

        def exited() -> bool:
            return _exit_status(pid) is not None

        if proc.returncode is None:
            if not exited():
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + grace
                while not exited() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not exited():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            # Leader is dead but not reaped: the group id is still ours. Sweep any helper left behind.
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    # ---- tiny synchronous CDP loop ---------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        """Send one CDP command and return its ``result``; events received meanwhile are buffered."""
        if self._ws is None:
            raise BrowserError("not connected; use Chromium() as a context manager")
        self._next_id += 1
        msg_id = self._next_id
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + (self.command_timeout if timeout is None else timeout)
        while True:
            msg = self._recv(deadline, f"reply to {method}")
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)
            # anything else is a reply to an earlier, abandoned command: drop it

    def _recv(self, deadline: float, what: str) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"timed out waiting for {what}")
        self._ws.settimeout(remaining)  # type: ignore[union-attr]
        try:
            raw = self._ws.recv()  # type: ignore[union-attr]
        except websocket.WebSocketTimeoutException:
            raise BrowserError(f"timed out waiting for {what}") from None
        except (websocket.WebSocketException, OSError) as e:
            raise BrowserError(f"lost the DevTools connection waiting for {what}: {e}{self._log_tail()}") from e
        return json.loads(raw)

    def _wait_event(self, match, deadline: float, what: str) -> dict:
        """Pop and return the first buffered-or-new event for which match(event) is true."""
        while True:
            for i, ev in enumerate(self._events):
                if match(ev):
                    del self._events[: i + 1]  # earlier events are no longer interesting
                    return ev
            self._events.clear()
            msg = self._recv(deadline, what)
            if "method" in msg:
                self._events.append(msg)

    # ---- the API tests use -----------------------------------------------------------------------

    def goto(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Load url in the page and wait for its load event.

        Raises NavigationError when Chromium reports a net error (``errorText``, e.g.
        ``net::ERR_CONNECTION_REFUSED``; also ``net::ERR_HTTP_RESPONSE_CODE_FAILURE`` for an HTTP
        error status with an empty body) or when the load event does not come within timeout.
        An HTTP error *with* a body loads normally: check the page content.
        """
        try:
            self._navigate(url, time.monotonic() + timeout)
        except NavigationError:
            raise
        except BrowserError as e:
            try:
                self.send("Page.stopLoading", timeout=2)  # leave the page usable for what follows
            except BrowserError:
                pass
            raise NavigationError(f"navigating to {url} (timeout {timeout} s): {e}") from None

    def _navigate(self, url: str, deadline: float) -> None:
        self.send("Page.enable", timeout=max(0.1, deadline - time.monotonic()))
        self._events.clear()  # forget anything from earlier pages
        nav = self.send("Page.navigate", {"url": url}, timeout=max(0.1, deadline - time.monotonic()))
        if nav.get("errorText"):
            raise NavigationError(f"navigating to {url}: {nav['errorText']}")
        loader = nav.get("loaderId")
        if not loader:
            return  # same-document navigation (only the #fragment changed): no load event follows
        frame = nav.get("frameId")

        def committed(ev: dict) -> bool:
            f = ev.get("params", {}).get("frame", {})
            return ev["method"] == "Page.frameNavigated" and f.get("id") == frame and f.get("loaderId") == loader

        # Our document commits first; the next load event is then ours, not an earlier page's.
        self._wait_event(committed, deadline, f"{url} to commit")
        self._wait_event(lambda ev: ev["method"] == "Page.loadEventFired", deadline, f"{url} to load")

    def evaluate(self, expr: str, timeout: float | None = None) -> Any:
        """Run a JS expression in the page (promises are awaited); return its JSON-able value.

        Raises JavaScriptError with the exception text when it throws. ``undefined`` comes back as None.
        """
        r = self.send(
            "Runtime.evaluate",
            {"expression": expr, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = (d.get("exception") or {}).get("description") or d.get("text") or repr(d)
            raise JavaScriptError(f"{expr!r} threw: {text}")
        return r.get("result", {}).get("value")

    def screenshot(self, path: str | os.PathLike) -> Path:
        """Save a PNG of the viewport (``viewport`` pixels, default 1280x800) to path; return the path."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        out = Path(path)
        out.write_bytes(base64.b64decode(data))
        return out
