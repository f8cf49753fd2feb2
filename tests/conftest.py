"""Shared by the golden and validator tests: the golden cases and --update-golden.

A case is a garrison.toml: tests/golden/cases/<case>.toml, plus "sample_app",
which is the bundled sample app's own garrison.toml (so it cannot drift).
Any test that takes a `golden_case` argument runs once per case.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from garrison.config import Config, parse_config

TESTS = Path(__file__).resolve().parent
GOLDEN_CASES = TESTS / "golden" / "cases"
SAMPLE_APP_TOML = TESTS.parent / "garrison" / "sample_app" / "garrison.toml"


def golden_case_files() -> dict[str, Path]:
    files = {p.stem: p for p in sorted(GOLDEN_CASES.glob("*.toml"))}
    files["sample_app"] = SAMPLE_APP_TOML
    return files


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/expected/ from what the templates render now",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_case" in metafunc.fixturenames:
        metafunc.parametrize("golden_case", sorted(golden_case_files()))


@pytest.fixture(scope="session")
def golden_cases() -> dict[str, Path]:
    """Case name -> its TOML file (for tests about the set of cases itself)."""
    return golden_case_files()


@pytest.fixture
def golden_data(golden_case: str) -> dict[str, Any]:
    """The case's garrison.toml as parsed TOML (a fresh dict: tests may change it)."""
    return tomllib.loads(golden_case_files()[golden_case].read_text(encoding="utf-8"))


@pytest.fixture
def golden_config(golden_case: str, golden_data: dict[str, Any]) -> Config:
    return parse_config(golden_data, f"{golden_case}.toml")
