"""gixy, the nginx configuration analyzer, on the site of every golden case: no issues.

The site is wrapped in a minimal main config (as for `nginx -t`), with the
upstream include rendered next to it, so gixy sees exactly what nginx loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.validators.rendered_tree import Tree, find_tool, run


@pytest.fixture(scope="session")
def gixy() -> str:
    path = find_tool("gixy", Path(sys.executable).parent / "gixy")
    if path is None:
        pytest.skip("gixy is not installed in the test environment (pip install gixy)")
    return path


def gixy_on(gixy: str, tree: Tree, site_text: str | None = None) -> tuple[int, str]:
    site = Path(tree.layout.nginx_site)
    if site_text is not None:
        site.write_text(site_text)
    main = tree.root / "gixy-main.conf"
    main.write_text(f"events {{}}\nhttp {{\n    include {site};\n}}\n")
    proc = run([gixy, str(main)])
    return proc.returncode, proc.stdout + proc.stderr


def test_every_golden_site_has_no_gixy_issue(gixy: str, tree: Tree) -> None:
    rc, out = gixy_on(gixy, tree)
    assert rc == 0 and "No issues found." in out, out


def test_gixy_catches_a_broken_site(gixy: str, minimal_tree: Tree) -> None:
    # The classic alias traversal: a prefix location without its trailing slash.
    text = Path(minimal_tree.layout.nginx_site).read_text()
    broken = text.replace("    location / {", "    location /files {\n        alias /srv/files/;\n    }\n\n    location / {")
    rc, out = gixy_on(gixy, minimal_tree, broken)
    assert rc != 0 and "alias_traversal" in out.replace("-", "_").lower(), out
