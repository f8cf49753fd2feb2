"""Fixtures shared by the end-to-end tests: lab hosts of either service manager.

`lab` is parametrised by service manager, so a test (or a module-scoped fixture)
that asks for it runs once against hosts whose PID 1 is a tiny init (Garrison
takes its supervisord path there: tests/hostlab.py) and once against hosts that
boot a real systemd as PID 1 (tests/systemdlab.py). Both labs offer the same
surface: `.host(name)` (a booted host with `.address`, `.exec`, `.sh`,
`.manager`), `.known_hosts(hosts, path)`, `.client_key`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.lab import build_wheelhouse
from tests.hostlab import hostlab  # noqa: F401  (fixture)
from tests.systemdlab import systemdlab  # noqa: F401  (fixture)

MANAGERS = ("supervisord", "systemd")


@pytest.fixture(scope="session", params=MANAGERS)
def lab(request):
    """The lab of one service manager (the test's parameter): hostlab or systemdlab."""
    return request.getfixturevalue("hostlab" if request.param == "supervisord" else "systemdlab")


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    return build_wheelhouse()
