"""A deploy over SSH that fails explains itself with the cause read on THAT host, and `logs`
and `status` read the host's own files (a lab host, tests/hostlab.py).

This machine has no app of that name: a doctor run here could only say "not
deployed here", so the app's own exception in the output proves the cause was
read on the lab host.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_fleet import (  # noqa: F401  (wheelhouse is a fixture)
    cli_env,
    fresh,
    garrison,
    host_entry,
    make_app,
    wheelhouse,
)
from tests.hostlab import hostlab, lab_unavailable_reason  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())),
]

BROKEN = """
raise RuntimeError("boom: the settings module is missing DATABASE_URL")
"""


def test_a_failed_remote_deploy_prints_that_hosts_cause_and_its_logs(hostlab, wheelhouse, tmp_path):  # noqa: F811
    h = fresh(hostlab.host("rp1"))
    kh = hostlab.known_hosts([h], tmp_path / "known_hosts")
    env = cli_env(hostlab, kh, wheelhouse)
    app = make_app(tmp_path / "app", [host_entry(h)])
    first = garrison("deploy", cwd=app, env=env)
    assert first.returncode == 0, first.stdout + first.stderr

    make_app(tmp_path / "app", [host_entry(h)], app_py=BROKEN)
    failed = garrison("deploy", cwd=app, env=env)
    text = failed.stdout + failed.stderr
    assert failed.returncode == 1, text  # one host failed
    assert "rp1 | doctor (" in text, text  # the doctor's cause, printed for that host
    assert "boom: the settings module is missing DATABASE_URL" in text
    assert "not deployed here" not in text  # not a doctor run on this machine

    logs = garrison("logs", "error", "--host", "rp1", "-n", "200", cwd=app, env=env)
    assert logs.returncode == 0, logs.stderr
    assert any(line.startswith("rp1 | ") and "boom" in line for line in logs.stdout.splitlines()), logs.stdout

    status = garrison("status", "--host", "rp1", cwd=app, env=env)
    assert "rp1" in status.stdout and "live slot" in status.stdout, status.stdout + status.stderr
