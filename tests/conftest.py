"""The whole suite's rules: the golden cases and --update-golden, and skips under CI.

A case is a garrison.toml: tests/golden/cases/<case>.toml, plus "sample_app",
which is the bundled sample app's own garrison.toml (so it cannot drift).
Any test that takes a `golden_case` argument runs once per case.

With the environment variable CI set, a skipped test fails the run unless its
skip is documented (see `documented_why`); the documented ones are listed at
the end of the run.
"""

from __future__ import annotations

import os
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


# -- skips under CI ----------------------------------------------------------------
# On a developer's machine a skip is a convenience (no root, no chromium). On CI it
# is how a missing install step passed as green: 34 SSH tests skipped for want of
# openssh-server. So with CI set, a skip fails its test unless the skip is
# documented: its reason starts with DOCUMENTED_PREFIX (the test says why it can
# only run under special conditions), or it is listed in DOCUMENTED_SKIPS (for
# reasons written before this rule).

DOCUMENTED_PREFIX = "documented:"

# Reason (its start) -> why that skip may happen on CI too.
DOCUMENTED_SKIPS: dict[str, str] = {
    "the sample app (a configured default server) is deployed here": (
        "test_deploy's catch-all check needs no default server on port 80; a machine where "
        "./up deployed the sample app has one (a fresh machine does not)"
    ),
}

# Allowed only when the tester asked for an offline lab (the lab then may not download .debs).
OFFLINE_SKIPS = ("no sudo .deb available",)

_DOCUMENTED = pytest.StashKey[list[tuple[str, str, str]]]()
_REFUSED = pytest.StashKey[list[tuple[str, str]]]()


def ci_enabled() -> bool:
    """CI is set to anything but empty, 0 or false (CI systems set CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def documented_why(reason: str) -> str | None:
    """Why a skip with this reason is allowed on CI, or None when it is not."""
    if reason.startswith(DOCUMENTED_PREFIX):
        return reason[len(DOCUMENTED_PREFIX):].strip()
    for start, why in DOCUMENTED_SKIPS.items():
        if reason.startswith(start):
            return why
    if os.environ.get("GARRISON_LAB_OFFLINE") == "1" and reason.startswith(OFFLINE_SKIPS):
        return "GARRISON_LAB_OFFLINE=1: the lab may not download .debs"
    return None


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _judge_skip(report: pytest.TestReport | pytest.CollectReport, config: pytest.Config) -> None:
    """Record a skip as documented, or (under CI) turn an undocumented one into a failure."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    why = documented_why(reason)
    if why is not None:
        config.stash.setdefault(_DOCUMENTED, []).append((report.nodeid, reason, why))
    elif ci_enabled():
        config.stash.setdefault(_REFUSED, []).append((report.nodeid, reason))
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI with an undocumented reason: {reason}\n"
            "Install what it needs in ./test, or, if it can only run under special conditions, "
            f"start its reason with {DOCUMENTED_PREFIX!r} (or list it in DOCUMENTED_SKIPS in tests/conftest.py)."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    _judge_skip(report, item.config)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    # Module-level skips (pytest.importorskip at import time) are collection reports.
    report = yield
    _judge_skip(report, collector.config)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    documented = config.stash.get(_DOCUMENTED, [])
    if documented:
        terminalreporter.section(f"documented skips ({len(documented)}, allowed on CI)")
        for nodeid, reason, why in documented:
            # A reason that is not self-documenting gets the allow-list's why.
            allowed = "" if reason.startswith(DOCUMENTED_PREFIX) else f" (allowed: {why})"
            terminalreporter.line(f"documented skip: {nodeid}: {reason}{allowed}")
    refused = config.stash.get(_REFUSED, [])
    if refused:
        terminalreporter.section(f"undocumented skips under CI ({len(refused)}): the run fails", red=True)
        for nodeid, reason in refused:
            terminalreporter.line(f"CI refuses skip: {nodeid}: {reason}", red=True)
