"""Targeted checks of the rendered files, the ones a golden diff could let slip by.

The golden tests pin every byte; these say which properties matter and why.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
import pytest

from garrison.config import Config, parse_config
from garrison.layout import Layout
from garrison.render import _env, gunicorn_conf, nginx_site, nginx_upstream, render_all, systemd_unit


def config(**tables: Any) -> Config:
    app = {"name": "myapp", "entry": "main:app", **tables.pop("app", {})}
    return parse_config({"app": app, **tables})


def block(text: str, opening: str) -> str:
    """The body of the first `opening {` … matching `}` block of an nginx file."""
    start = text.index(opening + " {")
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    raise AssertionError(f"unclosed block {opening!r}")


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


# --- nginx --------------------------------------------------------------------------


def test_no_default_server_unless_asked() -> None:
    cfg = config()
    site = nginx_site(cfg, Layout.of(cfg))
    assert "default_server" not in site
    assert [d for d in directives(site) if d.startswith("listen ")] == ["listen 80;", "listen [::]:80;"]


def test_default_server_on_every_listen_when_asked() -> None:
    cfg = config(server={"default": True, "port": 8080})
    listens = [d for d in directives(nginx_site(cfg, Layout.of(cfg))) if d.startswith("listen ")]
    assert listens == ["listen 8080 default_server;", "listen [::]:8080 default_server;"]


def test_no_ipv6_listen_without_ipv6() -> None:
    cfg = config()
    listens = [d for d in directives(nginx_site(cfg, Layout.of(cfg), ipv6=False)) if d.startswith("listen ")]
    assert listens == ["listen 80;"]


def test_static_folders_are_aliased_to_the_current_release() -> None:
    cfg = config(app={"static": [{"url": "/static/", "path": "static"}, {"url": "/media", "path": "assets/media/"}]})
    site = nginx_site(cfg, Layout.of(cfg))
    static = directives(block(site, "location /static/"))
    media = directives(block(site, "location /media/"))
    assert "alias /srv/myapp/current/static/;" in static
    assert "alias /srv/myapp/current/assets/media/;" in media
    # Served by nginx itself: no proxy_pass to gunicorn in a static location.
    assert not any(d.startswith("proxy_pass") for d in static + media)


def test_no_static_location_without_static_folders() -> None:
    cfg = config()
    assert "alias " not in nginx_site(cfg, Layout.of(cfg))


def test_proxy_sets_the_headers_the_app_needs() -> None:
    cfg = config()
    root = directives(block(nginx_site(cfg, Layout.of(cfg)), "location /"))
    assert "proxy_pass http://garrison_myapp;" in root
    for header in (
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Real-IP $remote_addr;",
    ):
        assert header in root


def test_upstream_is_an_include_of_the_slot_file() -> None:
    cfg = config()
    layout = Layout.of(cfg)
    upstream = directives(block(nginx_site(cfg, layout), "upstream garrison_myapp"))
    assert "include /etc/nginx/garrison/myapp.upstream.conf;" in upstream
    assert layout.nginx_upstream == "/etc/nginx/garrison/myapp.upstream.conf"
    assert layout.nginx_upstream in render_all(cfg, layout)


@pytest.mark.parametrize(
    ("gunicorn", "slot", "server"),
    [
        ({}, "blue", "server unix:/srv/myapp/run/blue.sock max_fails=0;"),
        ({}, "green", "server unix:/srv/myapp/run/green.sock max_fails=0;"),
        ({"socket": "/srv/myapp/sockets"}, "green", "server unix:/srv/myapp/sockets/green.sock max_fails=0;"),
        ({"bind": "127.0.0.1:9000"}, "blue", "server 127.0.0.1:9000 max_fails=0;"),
        ({"bind": "127.0.0.1:9000"}, "green", "server 127.0.0.1:9001 max_fails=0;"),
    ],
)
def test_upstream_names_the_live_slot(gunicorn: dict[str, str], slot: str, server: str) -> None:
    cfg = config(gunicorn=gunicorn)
    # The same address again as a backup, so that nginx retries on another worker when one dies mid-request.
    assert directives(nginx_upstream(cfg, Layout.of(cfg), slot)) == [server, server.replace(";", " backup;")]


def test_upstream_rejects_an_unknown_slot() -> None:
    cfg = config()
    with pytest.raises(ValueError):
        nginx_upstream(cfg, Layout.of(cfg), "purple")


# --- systemd ------------------------------------------------------------------------


def unit_sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in directives(text):
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = m[1]
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


def test_unit_restarts_gunicorn_whenever_it_dies() -> None:
    cfg = config()
    service = unit_sections(systemd_unit(cfg, Layout.of(cfg)))["Service"]
    assert "Restart=always" in service
    assert "User=myapp" in service
    assert "ExecStart=/srv/myapp/slots/%i/.venv/bin/gunicorn --config /etc/garrison/myapp/gunicorn.conf.py" in service


# --- gunicorn -----------------------------------------------------------------------


def gunicorn_settings(cfg: Config, slot: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The rendered gunicorn.conf.py run as gunicorn runs it: plain Python."""
    monkeypatch.setenv("GARRISON_SLOT", slot)
    namespace: dict[str, Any] = {}
    exec(compile(gunicorn_conf(cfg, Layout.of(cfg)), "gunicorn.conf.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    ("gunicorn", "max_requests", "jitter"),
    [({}, 0, 0), ({"max_requests": 250}, 250, 25), ({"max_requests": 1000, "max_requests_jitter": 7}, 1000, 7),
     ({"max_requests": 1000}, 1000, 100)],
)
def test_jitter_is_rendered(
    gunicorn: dict[str, int], max_requests: int, jitter: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = gunicorn_settings(config(gunicorn=gunicorn), "blue", monkeypatch)
    assert settings["max_requests"] == max_requests
    assert settings["max_requests_jitter"] == jitter


@pytest.mark.parametrize(
    ("gunicorn", "slot", "bind"),
    [
        ({}, "blue", ["unix:/srv/myapp/run/blue.sock"]),
        ({}, "green", ["unix:/srv/myapp/run/green.sock"]),
        ({"bind": "127.0.0.1:9000"}, "green", ["127.0.0.1:9001"]),
    ],
)
def test_each_slot_binds_its_own_address(
    gunicorn: dict[str, str], slot: str, bind: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = gunicorn_settings(config(gunicorn=gunicorn), slot, monkeypatch)
    assert settings["bind"] == bind
    assert settings["chdir"] == f"/srv/myapp/slots/{slot}"
    assert settings["pidfile"].endswith(f"/{slot}.pid")


def test_workers_auto_is_computed_on_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 3)
    # gthread (the default): one process per CPU; sync: the tutorial's 2 x CPU + 1.
    assert gunicorn_settings(config(), "blue", monkeypatch)["workers"] == 3
    assert gunicorn_settings(config(gunicorn={"worker_class": "sync"}), "blue", monkeypatch)["workers"] == 7
    assert gunicorn_settings(config(gunicorn={"workers": 2}), "blue", monkeypatch)["workers"] == 2
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 1)
    assert gunicorn_settings(config(), "blue", monkeypatch)["workers"] == 2  # never fewer than 2


def test_threads_only_for_gthread(monkeypatch: pytest.MonkeyPatch) -> None:
    # gunicorn would quietly turn a sync worker into gthread if it saw threads > 1.
    assert gunicorn_settings(config(), "blue", monkeypatch)["threads"] == 8
    assert gunicorn_settings(config(gunicorn={"worker_class": "sync", "threads": 8}), "blue", monkeypatch)["threads"] == 1


# --- templates ----------------------------------------------------------------------


def test_a_missing_template_variable_raises() -> None:
    with pytest.raises(jinja2.UndefinedError):
        _env().from_string("{{ nope }}").render()
