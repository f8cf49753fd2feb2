"""The load balancer's rendered site and upstream (render_lb), through `nginx -t` itself.

The same check as test_nginx.py's for the app's site: nginx parses the
balancer's site and the upstream file it includes, every directive is valid
where it is, its logs can be opened; warnings count as failures. Every golden
case is rendered as a balancer's site, in front of two app hosts of which one
is out of the rotation (a rolling deploy on it).
"""

from __future__ import annotations

from pathlib import Path

from rendered_tree import IPV6, Tree, write_tree
from test_nginx import assert_nginx_accepts, bindable, nginx_t

from garrison.config import Config, parse_config
from garrison.render import LbServer, lb_upstream, render_lb

SERVERS = [LbServer("a1", "10.0.0.1:8000"), LbServer("a2", "10.0.0.2:8001", down=True)]


def lb_tree(cfg: Config, root: Path, servers: list[LbServer] = SERVERS) -> Tree:
    """The case's files with the balancer's site and upstream under root."""
    tree = write_tree(bindable(cfg), root)
    for path, text in render_lb(tree.cfg, tree.layout, servers, ipv6=IPV6).items():
        # Every file must stay under the root: one that escaped it would be written to the host.
        assert Path(path).is_relative_to(root), f"{path} is outside {root}"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    Path(tree.layout.lb_error_log).parent.mkdir(parents=True, exist_ok=True)
    return tree


def test_lb_site_passes_nginx_t(nginx: str, golden_config: Config, tmp_path: Path) -> None:
    tree = lb_tree(golden_config, tmp_path / "root")
    L = tree.layout
    site = Path(L.lb_site)
    # The upstream include really is under the tmp root, not /etc.
    assert f"include {L.lb_upstream};" in site.read_text()
    assert "server 10.0.0.2:8001 max_fails=2 fail_timeout=5s down;" in Path(L.lb_upstream).read_text()
    assert_nginx_accepts(nginx_t(nginx, tree, site))
    # nginx opened (created) the balancer's own logs under the tmp root.
    assert Path(L.lb_error_log).exists()


def test_an_lb_upstream_without_servers_fails(nginx: str, tmp_path: Path) -> None:
    # Why the lb step refuses to take the last app host out: nginx would reject the site.
    tree = lb_tree(parse_config({"app": {"name": "myapp", "entry": "main:app"}}), tmp_path / "root")
    Path(tree.layout.lb_upstream).write_text(lb_upstream(tree.cfg, []))
    proc = nginx_t(nginx, tree, Path(tree.layout.lb_site))
    assert proc.returncode != 0
    assert "no servers are inside upstream" in proc.stderr, proc.stderr


def test_a_broken_lb_site_fails(nginx: str, tmp_path: Path) -> None:
    tree = lb_tree(parse_config({"app": {"name": "myapp", "entry": "main:app"}}), tmp_path / "root")
    site = Path(tree.layout.lb_site)
    text = site.read_text()
    assert "proxy_next_upstream_tries 3;\n" in text
    site.write_text(text.replace("proxy_next_upstream_tries 3;\n", "proxy_next_upstream_tries three;\n"))
    proc = nginx_t(nginx, tree, site)
    assert proc.returncode != 0
    assert "[emerg]" in proc.stderr and "proxy_next_upstream_tries" in proc.stderr, proc.stderr
