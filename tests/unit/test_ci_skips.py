"""The CI skip rule of tests/conftest.py, checked on small suites run by pytester.

Under CI an undocumented skip fails the run and is named with its reason; a
documented one passes and is listed; without CI a skip stays a plain skip.
"""

from __future__ import annotations

import pytest

# The inner suites get the real hooks, not copies of them.
CONFTEST = (
    "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport, pytest_terminal_summary\n"
)

SUITE = """
import pytest

def test_runs():
    assert True

def test_needs_sshd():
    pytest.skip("host lab needs /usr/sbin/sshd")

@pytest.mark.skipif(True, reason="documented: needs two NUMA nodes")
def test_special():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GARRISON_LAB_OFFLINE", raising=False)
    return pytester


def test_undocumented_skip_fails_under_ci_naming_test_and_reason(suite: pytest.Pytester, monkeypatch) -> None:
    suite.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("CI", "1")
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "*CI refuses skip: test_suite.py::test_needs_sshd: host lab needs /usr/sbin/sshd*",
        "FAILED test_suite.py::test_needs_sshd - skipped under CI with an undocumented reason: host lab needs /usr/sbin/sshd",
    ])


def test_documented_skip_passes_under_ci_and_is_listed(suite: pytest.Pytester, monkeypatch) -> None:
    suite.makepyfile(test_suite=SUITE.replace('"host lab needs', '"documented: host lab needs'))
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*documented skips (2, allowed on CI)*",
        "documented skip: test_suite.py::test_needs_sshd: documented: host lab needs /usr/sbin/sshd",
        "documented skip: test_suite.py::test_special: documented: needs two NUMA nodes",
    ])
    assert "CI refuses skip" not in result.stdout.str()


def test_without_ci_a_skip_stays_a_skip(suite: pytest.Pytester, monkeypatch) -> None:
    suite.makepyfile(test_suite=SUITE)
    for value in (None, "", "0", "false"):
        if value is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", value)
        result = suite.runpytest("-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.OK, value
        result.assert_outcomes(passed=1, skipped=2)


def test_skip_in_a_marker_or_at_module_level_fails_too(suite: pytest.Pytester, monkeypatch) -> None:
    suite.makepyfile(
        test_marker='import pytest\n\n@pytest.mark.skipif(True, reason="needs root")\ndef test_x():\n    pass\n',
        test_module='import pytest\npytest.importorskip("no_such_module_here")\n\ndef test_y():\n    pass\n',
    )
    monkeypatch.setenv("CI", "1")
    result = suite.runpytest("-p", "no:cacheprovider", "--continue-on-collection-errors")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines_random([
        "*CI refuses skip: test_marker.py::test_x: needs root*",
        "*CI refuses skip: test_module.py: could not import 'no_such_module_here'*",
    ])


def test_allow_list_and_offline_lab_are_documented(suite: pytest.Pytester, monkeypatch) -> None:
    suite.makepyfile(test_suite=(
        "import pytest\n\n"
        "def test_default_server():\n"
        "    pytest.skip('the sample app (a configured default server) is deployed here')\n\n"
        "def test_offline():\n"
        "    pytest.skip('no sudo .deb available (apt-get download sudo failed)')\n"
    ))
    monkeypatch.setenv("CI", "1")
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1, failed=1)  # offline only counts when the tester asked for it
    result.stdout.fnmatch_lines(["*CI refuses skip: test_suite.py::test_offline: no sudo .deb available*"])

    monkeypatch.setenv("GARRISON_LAB_OFFLINE", "1")
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines_random([
        "documented skip: test_suite.py::test_default_server: the sample app * is deployed here (allowed: *./up deployed*)",
        "documented skip: test_suite.py::test_offline: no sudo .deb available * (allowed: GARRISON_LAB_OFFLINE=1*)",
    ])
