"""The rendered files of worker processes and jobs, through the real tools.

- each process's template unit as the instances Garrison starts (<app>-NAME@0.service …),
  and each job's service and timer, through `systemd-analyze verify` (every key known,
  every value parsed, the timer's unit present);
- every OnCalendar= value through `systemd-analyze calendar`, whose normalized form
  and next elapse prove systemd reads it as the cron schedule means;
- the supervisord program of each process through supervisord's own parser
  (numprocs copies named <group>-N, stop timeout, log, the launcher through garrison-exec);
- the launchers and job scripts through `sh -n` (dash, /bin/sh on Debian).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rendered_tree import Tree, run, write_tree
from test_supervisord import realize
from test_systemd import verify_options

from garrison.config import parse_config
from garrison.render import on_calendar

CASE = {
    "app": {"name": "shop", "entry": "main:app"},
    "processes": {"worker": {"command": "rq worker high default", "count": 2, "stop_timeout": 60},
                  "mailer": {"command": "python -m mailer"}},
    "jobs": {"sweep": {"schedule": "*/5 * * * *", "command": "python manage.py clearsessions", "timeout": 240},
             "report": {"schedule": "30 6 1 * mon-fri", "command": "python manage.py report --to 'ops@example.com'"}},
}


@pytest.fixture
def ptree(tmp_path: Path) -> Tree:
    return write_tree(parse_config(CASE), tmp_path / "root")


def verify_units(systemd_analyze: str, tree: Tree, units: dict[str, str]) -> list[str]:
    folder = tree.root / "verify"
    folder.mkdir(exist_ok=True)
    for name, text in units.items():
        (folder / name).write_text(text)
    proc = run([systemd_analyze, "verify", *verify_options(systemd_analyze), *(str(folder / n) for n in units)])
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in units)]
    assert proc.returncode == 0, f"systemd-analyze verify failed:\n{proc.stdout}{proc.stderr}"
    return ours


def test_process_instances_pass_systemd_analyze_verify(systemd_analyze: str, ptree: Tree) -> None:
    L = ptree.layout
    units = {}
    for name, proc in ptree.cfg.processes.items():
        text = Path(L.process_unit(name)).read_text()
        units.update({L.process_instance(name, i): text for i in range(proc.count)})
    assert set(units) == {"shop-worker@0.service", "shop-worker@1.service", "shop-mailer@0.service"}
    ours = verify_units(systemd_analyze, ptree, units)
    assert not ours, "systemd-analyze verify complained:\n" + "\n".join(ours)


def test_job_services_and_timers_pass_systemd_analyze_verify(systemd_analyze: str, ptree: Tree) -> None:
    L = ptree.layout
    units = {}
    for name in ptree.cfg.jobs:
        units[L.job_service(name)] = Path(L.job_unit(name)).read_text()
        units[L.job_timer_unit(name)] = Path(L.job_timer(name)).read_text()
    ours = verify_units(systemd_analyze, ptree, units)
    assert not ours, "systemd-analyze verify complained:\n" + "\n".join(ours)


def test_a_broken_timer_fails_verify(systemd_analyze: str, ptree: Tree) -> None:
    L = ptree.layout
    text = Path(L.job_timer("sweep")).read_text()
    assert "\nAccuracySec=1s\n" in text
    folder = ptree.root / "verify"
    folder.mkdir(exist_ok=True)
    (folder / L.job_service("sweep")).write_text(Path(L.job_unit("sweep")).read_text())
    (folder / L.job_timer_unit("sweep")).write_text(text.replace("AccuracySec=1s", "AccuracySec=soon"))
    proc = run([systemd_analyze, "verify", *verify_options(systemd_analyze), str(folder / L.job_timer_unit("sweep"))])
    # systemd only warns ("ignoring"), naming our file: the check above treats any such line as failure.
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if L.job_timer_unit("sweep") in line]
    assert any("Failed to parse sec value" in line for line in ours), proc.stdout + proc.stderr


@pytest.mark.parametrize("schedule, normalized", [
    ("*/5 * * * *", "*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00"),
    ("0 * * * *", "*-*-* *:00:00"),
    ("0 0 * * 0", "Sun *-*-* 00:00:00"),
    ("30 6 1 * mon-fri", "*-*-01 06:30:00"),
    ("15 3,15 1-10/3 jan,jul 7", "*-01,07-01,04,07,10 03,15:15:00"),
])
def test_on_calendar_values_are_read_by_systemd_as_cron_means(systemd_analyze: str, schedule: str, normalized: str) -> None:
    values = on_calendar(schedule)
    for value in values:
        proc = run([systemd_analyze, "calendar", value])
        assert proc.returncode == 0, proc.stderr
        assert "Next elapse" in proc.stdout
    first = run([systemd_analyze, "calendar", values[0]]).stdout
    got = re.search(r"Normalized form: (.*)", first)
    assert got is not None and got.group(1).strip() == normalized


def test_process_programs_parse_with_their_copies(ptree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    opts, _looked_up = realize(ptree, monkeypatch)
    assert not opts.parse_criticals and not opts.parse_warnings, opts.parse_criticals + opts.parse_warnings
    L, T = ptree.layout, ptree.tool
    groups = {g.name: g for g in opts.process_group_configs}
    worker = groups[L.process_program("worker")]
    assert [p.name for p in worker.process_configs] == ["shop-worker-0", "shop-worker-1"]
    for i, p in enumerate(worker.process_configs):
        assert p.command == f"/usr/bin/python3 {T.exec_helper} {L.env_file} shop -- /bin/sh {L.process_script('worker')}"
        assert p.environment["GARRISON_INSTANCE"] == str(i)
        assert p.stopwaitsecs == 60 and p.stopasgroup and p.killasgroup and p.autostart
        assert p.stdout_logfile == L.process_log("worker") and p.stdout_logfile_maxbytes == 0
    assert [p.name for p in groups[L.process_program("mailer")].process_configs] == ["shop-mailer-0"]


def test_scripts_are_valid_sh(ptree: Tree) -> None:
    L = ptree.layout
    scripts = [L.process_script(n) for n in ptree.cfg.processes] + [L.job_script(n) for n in ptree.cfg.jobs]
    for path in scripts:
        proc = run(["sh", "-n", path])
        assert proc.returncode == 0, f"{path}: {proc.stderr}"
    broken = Path(scripts[-1])
    broken.write_text(broken.read_text().replace("fi\n", "", 1))
    assert run(["sh", "-n", str(broken)]).returncode != 0
