"""ruff and mypy, as configured in pyproject.toml, over the code: part of `./test`.

Each runs as `python -m <tool>` of the interpreter running the tests (the venv's,
where the `test` extra installs both), from the repository root so that it
reads pyproject.toml. A failure prints the tool's own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    module = args[0]
    try:
        __import__(module)
    except ImportError:
        pytest.fail(f"{module} is not installed: pip install -e '.[test]' (it is in the test extra)")
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff() -> None:
    res = _run("ruff", "check", "--no-cache", "garrison", "tests", "bench")
    assert res.returncode == 0, f"ruff check garrison tests bench:\n{res.stdout}{res.stderr}"


def test_mypy() -> None:
    # The cache stays in .mypy_cache: a warm run takes about a second, a cold one ~15 s.
    res = _run("mypy", "garrison")
    assert res.returncode == 0, f"mypy garrison:\n{res.stdout}{res.stderr}"
    # An empty file list would "pass" too.
    assert "Success: no issues found" in res.stdout, res.stdout
