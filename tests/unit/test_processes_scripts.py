"""The rendered job script and process launcher, run for real by /bin/sh under a tmp root.

The files are rendered with `Layout.of(cfg, root=tmp)`, so every path they name
(the `current` link, the jobs folder, the logs) is under tmp; a fake release
with a `.venv/bin` is enough for them to run as this user. No root, no host
changes: what runs is exactly the text the hosts get, only the prefix differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from garrison import render as R
from garrison.config import parse_config
from garrison.layout import Layout

APP = {"name": "shop", "entry": "main:app"}


def setup(tmp_path: Path, jobs: dict | None = None, processes: dict | None = None) -> tuple[Layout, str]:
    cfg = parse_config({"app": APP, "jobs": jobs or {}, "processes": processes or {}})
    L = Layout.of(cfg, root=str(tmp_path))
    for folder in (L.jobs_dir, L.log_dir, L.run_dir, L.etc_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    for rid in ("r1", "r2"):
        (Path(L.release(rid)) / ".venv" / "bin").mkdir(parents=True)
    os.symlink("releases/r1", L.current)
    for name in cfg.jobs:
        Path(L.job_script(name)).write_text(R.job_script(cfg, L, name))
    for name in cfg.processes:
        Path(L.process_script(name)).write_text(R.process_script(cfg, L, name))
    return L, str(tmp_path)


def run_job(L: Layout, name: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(["/bin/sh", L.job_script(name)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def record(L: Layout, name: str, which: str = "finished") -> dict:
    path = L.job_finished(name) if which == "finished" else L.job_started(name)
    return json.loads(Path(path).read_text())


def wait_until(cond, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)


def test_a_run_records_its_start_end_and_exit_code(tmp_path):
    L, _ = setup(tmp_path, jobs={"fail": {"schedule": "@hourly", "command": "echo out; echo err >&2; exit 3"}})
    proc = run_job(L, "fail")
    assert proc.wait(10) == 3
    rec = record(L, "fail")
    assert rec["exit"] == 3 and rec["release"] == "r1" and rec["end"] >= rec["start"]
    log = Path(L.job_log("fail")).read_text()
    assert "start in release r1" in log and "out\nerr\n" in log and "exit 3 after" in log


def test_a_second_run_while_one_holds_the_lock_is_skipped_and_logged(tmp_path):
    L, _ = setup(tmp_path, jobs={"slow": {"schedule": "@hourly", "command": "sleep 2"}})
    first = run_job(L, "slow")
    wait_until(lambda: Path(L.job_started("slow")).exists())
    second = run_job(L, "slow")
    assert second.wait(10) == 75
    assert first.wait(10) == 0
    assert "skipped: the previous run is still going" in Path(L.job_log("slow")).read_text()
    assert record(L, "slow")["exit"] == 0
    assert run_job(L, "slow").wait(10) == 0  # the lock is free again once the run ended


def test_a_run_stays_in_the_release_it_started_in(tmp_path):
    L, _ = setup(tmp_path, jobs={"pwd": {"schedule": "@hourly", "command": "sleep 1; pwd; echo $GARRISON_RELEASE"}})
    proc = run_job(L, "pwd")
    wait_until(lambda: Path(L.job_started("pwd")).exists())
    # A deploy makes r2 current meanwhile.
    os.unlink(L.current)
    os.symlink("releases/r2", L.current)
    assert proc.wait(10) == 0
    assert record(L, "pwd")["release"] == "r1"
    assert f"{L.release('r1')}\nr1\n" in Path(L.job_log("pwd")).read_text()


def test_a_run_over_its_timeout_is_stopped(tmp_path):
    L, _ = setup(tmp_path, jobs={"hang": {"schedule": "@hourly", "command": "sleep 30", "timeout": 1}})
    t0 = time.monotonic()
    assert run_job(L, "hang").wait(20) == 124  # timeout(1)'s status
    assert time.monotonic() - t0 < 10
    assert record(L, "hang")["exit"] == 124


def test_the_command_does_not_inherit_the_lock(tmp_path):
    # A daemon the command leaves behind must not keep the job locked forever.
    L, _ = setup(tmp_path, jobs={"bg": {"schedule": "@hourly", "command": "sleep 3 & echo started"}})
    assert run_job(L, "bg").wait(10) == 0
    assert run_job(L, "bg").wait(10) == 0  # not 75: the background sleep holds no lock


def test_the_launcher_execs_the_command_in_the_live_release_and_counts_starts(tmp_path):
    L, _ = setup(tmp_path, processes={"worker": {"command": "python3 -c 'import os; print(os.getcwd(), os.getpid())'"}})
    env = dict(os.environ, GARRISON_INSTANCE="1")
    for _ in range(2):
        proc = subprocess.Popen(["/bin/sh", L.process_script("worker")], stdout=subprocess.PIPE, env=env, text=True)
        out, _ = proc.communicate(timeout=10)
        cwd, pid = out.split()
        assert cwd == L.release("r1")
        assert int(pid) == proc.pid  # exec: the manager's signals reach the command, not a shell
    assert len(Path(L.process_starts("worker", 1)).read_text().split()) == 2


@pytest.mark.parametrize("name", ["worker"])
def test_the_launcher_stops_when_the_release_is_missing(tmp_path, name):
    L, _ = setup(tmp_path, processes={name: {"command": "true"}})
    os.unlink(L.current)
    os.symlink("releases/gone", L.current)
    proc = subprocess.run(["/bin/sh", L.process_script(name)], capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0  # set -e: no command runs outside a release
