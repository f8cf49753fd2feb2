"""The bundled sample app (garrison/sample_app) through Flask's test client.

The folder is deployed as a plain directory (entry `main:app`), not as a
package, so the app is imported by file path here, as gunicorn would see it.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from flask.testing import FlaskClient

SAMPLE_APP = Path(__file__).resolve().parents[2] / "garrison" / "sample_app"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


MODULE_NAME = "garrison_sample_app_main"


@pytest.fixture(scope="module")
def sample_main() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, SAMPLE_APP / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as a real import would be: Flask finds its
    # root folder (templates/, static/) through sys.modules[__name__].__file__.
    sys.modules[MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[MODULE_NAME]


@pytest.fixture()
def client(sample_main: ModuleType) -> FlaskClient:
    sample_main.app.config["TESTING"] = True
    client: FlaskClient = sample_main.app.test_client()
    return client


def test_folder_is_not_a_package() -> None:
    # Deployed as a plain folder with entry main:app; an __init__.py would make
    # setuptools treat it as a sub-package of garrison instead.
    assert not (SAMPLE_APP / "__init__.py").exists()
    assert (SAMPLE_APP / "requirements.txt").read_text().split() == ["Flask>=3.0"]


def test_index_has_caption_below_picture(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "<title>Ave Caesar</title>" in html
    img = re.search(r"<img\b[^>]*>", html)
    assert img is not None
    tag = img.group(0)
    assert 'id="picture"' in tag
    assert re.search(r'\bwidth="\d+"', tag) and re.search(r'\bheight="\d+"', tag)
    assert re.search(r'\balt="[^"]+"', tag)
    caption = html.find('<p id="caption">Ave Caesar! Morituri te salutant.</p>')
    assert caption > img.end()


def test_image_is_served_from_static(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    src = re.search(r'<img\b[^>]*\bsrc="([^"]+)"', html)
    assert src is not None
    url = src.group(1)
    assert url.startswith("/static/")
    resp = client.get(url)
    try:
        assert resp.status_code == 200
        assert resp.mimetype == "image/png"
        body = resp.get_data()
    finally:
        resp.close()  # send_file keeps the file open until the response closes
    on_disk = (SAMPLE_APP / "static" / url.removeprefix("/static/")).read_bytes()
    assert body == on_disk
    assert body.startswith(PNG_SIGNATURE)


def test_image_is_a_reasonable_png() -> None:
    data = (SAMPLE_APP / "static" / "caesar.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert 20_000 <= len(data) <= 60_000
    # IHDR is always the first chunk: width and height follow its type.
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 200 <= width <= 800 and 100 <= height <= 800


def test_healthz(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True) == "ok"


def test_version(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_VERSION", raising=False)
    assert client.get("/version").get_data(as_text=True) == "1"
    monkeypatch.setenv("APP_VERSION", "42")
    resp = client.get("/version")
    assert resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True) == "42"
