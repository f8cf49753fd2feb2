"""The headless-Chromium helper itself, against a throwaway local http.server (no nginx needed).

Decision on unreachable pages: ``goto`` raises ``NavigationError`` carrying Chromium's net error
(``net::ERR_CONNECTION_REFUSED`` for a closed port) instead of quietly leaving Chromium's own error
page loaded, so a test can never mistake "nothing was listening" for a page.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip("websocket", reason="needs the websocket-client package (pip install websocket-client)")

from tests.e2e.browser import Chromium, JavaScriptError, NavigationError, chromium_path  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed (apt-get install chromium)"),
]

IMG_W, IMG_H = 240, 120
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_png(width: int, height: int) -> bytes:
    """A valid RGB PNG: a horizontal gradient with a dark band, so it's visible in a screenshot."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            if height // 3 <= y < 2 * height // 3:
                rows += bytes((20, 40, 90))
            else:
                rows += bytes((255 * x // width, 160, 255 - 255 * x // width))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, truecolour
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>browser helper check</title></head>
<body style="font-family: sans-serif; margin: 24px">
<img id="logo" src="logo.png" alt="logo">
<p id="below">This paragraph sits below the image.</p>
</body></html>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Serve a folder with index.html + logo.png on 127.0.0.1:<free port>; yield the base URL."""
    root = tmp_path_factory.mktemp("site")
    (root / "logo.png").write_bytes(make_png(IMG_W, IMG_H))
    (root / "index.html").write_text(INDEX)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_page_renders_image_above_paragraph(browser, site, tmp_path):
    t0 = time.monotonic()
    browser.goto(site + "/")
    assert browser.evaluate("document.title") == "browser helper check"
    assert browser.evaluate("document.getElementById('logo').naturalWidth") == IMG_W
    geometry = browser.evaluate(
        """(() => {
            const img = document.getElementById('logo').getBoundingClientRect();
            const p = document.getElementById('below').getBoundingClientRect();
            return {imgBottom: img.bottom, imgHeight: img.height, pTop: p.top};
        })()"""
    )
    assert geometry["imgHeight"] == IMG_H, geometry
    assert geometry["pTop"] >= geometry["imgBottom"], geometry

    shot = browser.screenshot(tmp_path / "page.png")
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1024, len(data)
    assert struct.unpack(">II", data[16:24]) == (1280, 800)  # IHDR width, height: the pinned viewport
    assert time.monotonic() - t0 < 10


def test_evaluate_awaits_promises(browser, site):
    browser.goto(site + "/")
    assert browser.evaluate("new Promise(r => setTimeout(() => r(6 * 7), 10))") == 42
    assert browser.evaluate("undefined") is None


def test_evaluate_raises_on_javascript_error(browser, site):
    browser.goto(site + "/")
    with pytest.raises(JavaScriptError, match="no_such_function"):
        browser.evaluate("no_such_function()")
    with pytest.raises(JavaScriptError, match="boom"):
        browser.evaluate("Promise.reject(new Error('boom'))")
    assert browser.evaluate("1 + 1") == 2  # the page is still usable afterwards


def test_goto_closed_port_raises(browser, site):
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(NavigationError, match="ERR_CONNECTION_REFUSED"):
        browser.goto(url)
    browser.goto(site + "/")  # and the browser recovers
    assert browser.evaluate("location.href") == site + "/"


def test_goto_times_out_on_a_server_that_never_answers(browser, site):
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        t0 = time.monotonic()
        with pytest.raises(NavigationError, match="timeout 1"):
            browser.goto(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=1)
        assert time.monotonic() - t0 < 5
    browser.goto(site + "/")  # the stalled load was stopped; the page works again
    assert browser.evaluate("document.title") == "browser helper check"


def test_close_leaves_nothing_behind():
    with Chromium() as b:
        pid, tmp = b._proc.pid, b._tmp
        assert tmp.is_dir()
        assert b.evaluate("navigator.userAgent").count("HeadlessChrome") == 1
    assert not tmp.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # Zombies don't count: they are dead, and reaping orphans is init's job (in some containers
    # PID 1 never does it, so they linger there whatever we do).
    leftovers = [s for s in map(_stat, Path("/proc").iterdir()) if s and s[1] == pid and s[0] != "Z"]
    assert leftovers == [], f"live processes left in chromium's group {pid}: {leftovers}"


def _stat(proc_dir: Path) -> tuple[str, int] | None:
    """(state, pgrp) of a /proc/PID entry, or None."""
    if not proc_dir.name.isdigit():
        return None
    try:
        # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces, so split after ')'.
        fields = proc_dir.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None
