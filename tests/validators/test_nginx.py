"""The rendered nginx site, through `nginx -t` itself.

What this really checks: nginx parses the site and the upstream file it
includes, every directive exists in this nginx build, is allowed where it is
and has valid arguments (sizes, times, listen options, duplicate locations or
default servers), the log files it names can be opened, and the listen
addresses can be bound (a port already in use is not an error under -t). It
does not connect to gunicorn's socket, nor look at the static or error-page
folders. Warnings count as failures: nginx -t exits 0 on them, but they are
mistakes.

`nginx -t` binds the listen ports, which an unprivileged user cannot do below
net.ipv4.ip_unprivileged_port_start: when the tests do not run as root, such a
port is replaced by 8080 before rendering (nothing else in the site depends
on the port's value).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from rendered_tree import Tree, run, write_tree

from garrison.config import Config, parse_config
from garrison.render import nginx_upstream

LEVELS = re.compile(r"\[(warn|error|crit|alert|emerg)\]")


def bindable(cfg: Config) -> Config:
    """`cfg` with a listen port this process may bind (see the module's docstring)."""
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    first_free = int(start.read_text()) if start.exists() else 1024
    if os.geteuid() == 0 or cfg.server.port >= first_free:
        return cfg
    return cfg.model_copy(update={"server": cfg.server.model_copy(update={"port": 8080})})


@pytest.fixture
def site_tree(golden_config: Config, tmp_path: Path) -> Tree:
    return write_tree(bindable(golden_config), tmp_path / "root")


@pytest.fixture
def plain_tree(tmp_path: Path) -> Tree:
    """A plain app, for the tests that break its site on purpose."""
    cfg = parse_config({"app": {"name": "myapp", "entry": "main:app"}})
    return write_tree(bindable(cfg), tmp_path / "root")


def mime_types(nginx: str) -> Path:
    """The distribution's mime.types, next to nginx's compiled-in nginx.conf."""
    conf = re.search(r"--conf-path=(\S+)", run([nginx, "-V"]).stderr)
    for path in ([Path(conf[1]).parent / "mime.types"] if conf else []) + [Path("/etc/nginx/mime.types")]:
        if path.is_file():
            return path
    pytest.skip("nginx's mime.types was not found")


def nginx_t(nginx: str, tree: Tree, site: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` of a main config under tree.root that includes `site`, as nginx.conf would."""
    root = tree.root
    temp = root / "nginx-temp"
    temp.mkdir(exist_ok=True)
    main = root / "nginx.conf"
    main.write_text(
        f"""\
pid {root}/nginx.pid;
error_log {root}/nginx-main-error.log;
events {{}}
http {{
    include {mime_types(nginx)};
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""
    )
    # -e: the log nginx writes before it has read the config (else /var/log/nginx, not writable by a user).
    return run([nginx, "-t", "-c", str(main), "-p", f"{root}/", "-e", f"{root}/nginx-startup-error.log"])


def assert_nginx_accepts(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"nginx -t failed:\n{proc.stderr}"
    assert "test is successful" in proc.stderr, proc.stderr
    problems = [line for line in proc.stderr.splitlines() if LEVELS.search(line)]
    assert not problems, "nginx -t passed with warnings:\n" + "\n".join(problems)


def test_site_passes_nginx_t(nginx: str, site_tree: Tree) -> None:
    layout = site_tree.layout
    site = Path(layout.nginx_site)
    # The upstream include really is under the tmp root, not /etc.
    assert f"include {layout.nginx_upstream};" in site.read_text()
    assert Path(layout.nginx_upstream).is_file()
    assert_nginx_accepts(nginx_t(nginx, site_tree, site))
    # nginx opened (created) the site's own logs under the tmp root.
    assert Path(layout.nginx_error_log).exists()


def test_site_passes_with_the_green_slot_live(nginx: str, plain_tree: Tree) -> None:
    layout = plain_tree.layout
    Path(layout.nginx_upstream).write_text(nginx_upstream(plain_tree.cfg, layout, "green"))
    assert_nginx_accepts(nginx_t(nginx, plain_tree, Path(layout.nginx_site)))


def test_a_broken_site_fails(nginx: str, plain_tree: Tree) -> None:
    site = Path(plain_tree.layout.nginx_site)
    text = site.read_text()
    assert "server_tokens off;\n" in text
    site.write_text(text.replace("server_tokens off;\n", "server_tokens off\n"))  # a missing ";"
    proc = nginx_t(nginx, plain_tree, site)
    assert proc.returncode != 0
    assert "[emerg]" in proc.stderr and 'invalid number of arguments in "server_tokens"' in proc.stderr, proc.stderr


def test_a_warning_fails_too(nginx: str, plain_tree: Tree) -> None:
    # nginx -t exits 0 on a warning; assert_nginx_accepts must still refuse it.
    site = Path(plain_tree.layout.nginx_site)
    text = site.read_text()
    assert "gzip_types text/css" in text
    site.write_text(text.replace("gzip_types text/css", "gzip_types text/html text/css"))  # text/html is implied
    proc = nginx_t(nginx, plain_tree, site)
    assert proc.returncode == 0
    assert "[warn]" in proc.stderr, proc.stderr
    with pytest.raises(AssertionError, match="passed with warnings"):
        assert_nginx_accepts(proc)
