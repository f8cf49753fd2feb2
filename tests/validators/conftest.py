"""Fixtures of the validator tests: a case rendered under tmp_path, and the tools.

A missing tool skips the tests that need it, saying which tool and how to get it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from rendered_tree import Tree, find_tool, write_tree

from garrison.config import Config, parse_config


@pytest.fixture
def tree(golden_config: Config, tmp_path: Path) -> Tree:
    """The golden case rendered under tmp_path/root."""
    return write_tree(golden_config, tmp_path / "root")


@pytest.fixture
def minimal_tree(tmp_path: Path) -> Tree:
    """A plain app, for the tests that break one of its files on purpose."""
    return write_tree(parse_config({"app": {"name": "myapp", "entry": "main:app"}}), tmp_path / "root")


@pytest.fixture(scope="session")
def nginx() -> str:
    # /usr/sbin is not on a normal user's PATH on Debian.
    found = find_tool("nginx", Path("/usr/sbin/nginx"))
    if found is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return found


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (it comes with systemd)")
    return found


@pytest.fixture(scope="session")
def gunicorn() -> str:
    # The test interpreter's own gunicorn first (CI installs gunicorn[gevent] in the test venv), then PATH.
    found = find_tool("gunicorn", Path(sys.executable).parent / "gunicorn")
    if found is None:
        pytest.skip("gunicorn is not installed next to this Python nor on PATH (pip install 'gunicorn[gevent]')")
    return found
