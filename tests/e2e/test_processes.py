"""Worker processes and scheduled jobs, end to end, with a real queue (supervisord path).

Debian's redis-server is started by this test on loopback (a port of its own)
until Garrison can start data services itself. The app (`proctest`) enqueues an
RQ job from a web request; its `[processes.worker]` (a real `rq worker`) runs it
and writes the result into shared/. Its `[jobs.rows]` appends a row per run
(start, end, release) to shared/rows.txt, and sleeps as long as
shared/job-seconds says.

Checked here: the worker does the web request's job; kill -9 of the worker →
a new one running within 2 s, and `status` counts the restart; a deploy while a
10 s queue job and a job run are going lets both finish in the old release, and
the new release's worker takes the next job; a second `jobs run` while one runs
is skipped (and logged); `status` shows the last run; cron itself starts the job
(once a minute, never two runs overlapping); bad input gets one line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import alive, garrison, get, wait_for

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(os.geteuid() != 0, reason="deploys need root (they write /etc/nginx, /srv and add a user)"),
]

HOST = "proctest.test"
BASE = Path("/srv/proctest")
SHARED = BASE / "shared"
SUPERVISORCTL = ("/opt/garrison/venv/bin/supervisorctl", "-c", "/etc/garrison/supervisord.conf")
CRON_PID = Path("/run/crond.pid")

CONFIG = """
[app]
name = "proctest"
entry = "main:app"
health_deadline = 30

[server]
names = ["proctest.test"]

[processes.worker]
command = "rq worker --path . default"
stop_timeout = 30

[jobs.rows]
schedule = "* * * * *"
command = "python rows.py"
timeout = 120
"""

APP = '''
import os
from flask import Flask, request
from redis import Redis
from rq import Queue

app = Flask(__name__)

@app.get("/")
def index():
    return "{text}"

@app.get("/enqueue")
def enqueue():
    q = Queue("default", connection=Redis.from_url(os.environ["REDIS_URL"]))
    job = q.enqueue("tasks.work", request.args["n"], float(request.args.get("seconds", "0")), job_timeout=120)
    return job.id
'''

TASKS = '''
import os, time

SHARED = "/srv/proctest/shared"

def work(n, seconds):
    release = os.environ.get("GARRISON_RELEASE", "?")
    with open(f"{SHARED}/result-{n}.started", "w") as f:
        f.write(release)
    time.sleep(seconds)
    with open(f"{SHARED}/result-{n}", "w") as f:
        f.write(f"done {release} {os.getpid()}")
'''

ROWS = '''
import os, time

SHARED = "/srv/proctest/shared"
start = time.time()
try:
    seconds = float(open(f"{SHARED}/job-seconds").read())
except OSError:
    seconds = 0.5
time.sleep(seconds)
with open(f"{SHARED}/rows.txt", "a") as f:
    f.write(f"{start:.3f} {time.time():.3f} {os.environ.get('GARRISON_RELEASE', '?')}\\n")
print("row written")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_app(root: Path, text: str = "v1") -> None:
    (root / "main.py").write_text(APP.format(text=text))
    (root / "tasks.py").write_text(TASKS)
    (root / "rows.py").write_text(ROWS)
    (root / "requirements.txt").write_text("flask\nrq\n")
    (root / "garrison.toml").write_text(CONFIG)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(data)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_for(answers, 10, "redis-server to answer PING")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()  # ours, by PID
    proc.wait(10)


@pytest.fixture(scope="module")
def app(tmp_path_factory, redis_url):
    cron_before = _cron_pid()
    root = tmp_path_factory.mktemp("proctest")
    write_app(root)
    # The env file before the first deploy: the worker needs the queue's address from its first start.
    SHARED.mkdir(parents=True, exist_ok=True)
    env = SHARED / ".env"
    env.write_text(f'REDIS_URL="{redis_url}"\nRQ_REDIS_URL="{redis_url}"\n')
    env.chmod(0o600)
    proc = garrison("up", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield root
    garrison("down", "--purge", cwd=root)
    cron_now = _cron_pid()
    if cron_before is None and cron_now is not None:
        os.kill(cron_now, signal.SIGTERM)  # `up` started it for this test: by its PID


def _cron_pid() -> int | None:
    try:
        pid = int(CRON_PID.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def worker_pid(states: tuple[str, ...] = ("RUNNING",)) -> int | None:
    res = subprocess.run([*SUPERVISORCTL, "status", "proctest-worker:*"], capture_output=True, text=True)
    words = res.stdout.split()
    if len(words) >= 4 and words[1] in states and words[2] == "pid":
        return int(words[3].rstrip(","))
    return None


def current_release() -> str:
    return os.readlink(BASE / "current").rsplit("/", 1)[-1]


def enqueue(n: str, seconds: float = 0) -> None:
    r = get(f"/enqueue?n={n}&seconds={seconds}", host=HOST)
    assert r.status == 200, r.text


def test_the_worker_runs_a_job_a_web_request_enqueued(app):
    enqueue("1")
    result = SHARED / "result-1"
    wait_for(result.exists, 30, "the worker to write result-1")
    assert result.read_text().startswith(f"done {current_release()} ")
    # The worker runs as the app user, in the release (not through the `current` link), with the venv.
    pid = worker_pid()
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid) == int(subprocess.run(["id", "-u", "proctest"], capture_output=True, text=True).stdout)
    assert os.readlink(f"/proc/{pid}/cwd") == str(BASE / "releases" / current_release())
    assert b"rq" in Path(f"/proc/{pid}/cmdline").read_bytes()  # the launcher exec'd the command itself


def test_kill_9_of_the_worker_brings_it_back_within_2_seconds(app):
    old = worker_pid()
    assert old is not None
    os.kill(old, signal.SIGKILL)
    # Running again: a new process (supervisord calls it STARTING for its first second, startsecs).
    took = wait_for(lambda: (p := worker_pid(("STARTING", "RUNNING"))) is not None and p != old and alive(p), 2.0,
                    "a new worker process")
    assert took <= 2.0
    wait_for(lambda: worker_pid() is not None, 10, "the new worker to be RUNNING")
    status = garrison("status", cwd=app)
    row = next(line for line in status.stdout.splitlines() if "process worker" in line)
    assert "1/1 running under supervisord" in row and re.search(r"\b1 restart\b", row), row
    # And the new one works.
    enqueue("after-kill")
    wait_for((SHARED / "result-after-kill").exists, 30, "the restarted worker to run a job")


def test_a_deploy_lets_running_work_finish_in_the_old_release(app):
    old_release = current_release()
    enqueue("long", seconds=10)
    wait_for((SHARED / "result-long.started").exists, 30, "the 10 s queue job to start")
    clear_of_cron(15)
    (SHARED / "job-seconds").write_text("8")
    run = subprocess.Popen([sys.executable, "-m", "garrison", "jobs", "run", "rows"], cwd=app,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: _started_since(old_release), 20, "the job run to start")
    write_app(app, text="v2")
    plan = {d["step"]: d for d in json.loads(garrison("up", "--plan", "--json", cwd=app, check=True).stdout)}
    assert plan["processes"]["action"] == "change" and plan["processes"]["reason"] == "worker: restart: new release"
    assert plan["jobs"]["action"] == "unchanged", plan["jobs"]
    proc = garrison("up", cwd=app)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "processes" in proc.stdout and "restart: new release" in proc.stdout, proc.stdout
    new_release = current_release()
    assert new_release != old_release
    assert get("/", host=HOST).text == "v2"
    # The queue job finished in the old release: the old worker had stop_timeout to finish it.
    assert (SHARED / "result-long").read_text().startswith(f"done {old_release} ")
    # The job run finishes too, in the release it started in.
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out
    last = (SHARED / "rows.txt").read_text().splitlines()[-1].split()
    assert last[2] == old_release and float(last[1]) - float(last[0]) >= 8
    # The new release's worker takes the next job.
    enqueue("next")
    wait_for((SHARED / "result-next").exists, 30, "the new worker to run a job")
    assert (SHARED / "result-next").read_text().startswith(f"done {new_release} ")


def clear_of_cron(seconds: float) -> None:
    """Wait until cron's next firing (on the minute) is more than `seconds` away, so that a run
    this test starts is not the one cron's run makes skip (or the other way round)."""
    def clear() -> bool:
        return 1 < time.time() % 60 < 60 - seconds and not _job_running()

    wait_for(clear, 75, f"no job run going and {seconds:.0f} s clear of cron's next minute", interval=0.2)


def _job_running() -> bool:
    try:
        return alive(int(json.loads((BASE / "jobs" / "rows.started").read_text())["pid"]))
    except (OSError, ValueError, KeyError):
        return False


def _started_since(release: str) -> bool:
    try:
        rec = json.loads((BASE / "jobs" / "rows.started").read_text())
    except (OSError, ValueError):
        return False
    return rec.get("release") == release and alive(int(rec["pid"]))


def test_a_job_never_runs_twice_at_once_and_status_shows_its_last_run(app):
    clear_of_cron(15)
    (SHARED / "job-seconds").write_text("4")
    first = subprocess.Popen([sys.executable, "-m", "garrison", "jobs", "run", "rows"], cwd=app,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: _started_since(current_release()) and first.poll() is None, 20, "the first run to start")
    second = garrison("jobs", "run", "rows", cwd=app)
    assert second.returncode == 75, second.stdout + second.stderr
    assert "skipped: its previous run is still going" in second.stdout
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0 and "exited 0 after" in out, out
    assert "skipped: the previous run is still going" in Path("/var/log/proctest/job-rows.log").read_text()
    status = garrison("status", cwd=app)
    row = next(line for line in status.stdout.splitlines() if "job rows" in line)
    assert '"* * * * *" (cron)' in row and "last run" in row and "exit 0" in row, row
    logs = garrison("logs", "job", "rows", cwd=app)
    assert logs.returncode == 0 and "row written" in logs.stdout


def test_cron_starts_the_job_every_minute_never_two_at_once(app):
    (SHARED / "job-seconds").write_text("0.5")
    rows = SHARED / "rows.txt"
    before = len(rows.read_text().splitlines())
    # No `jobs run` here: only cron can add this row (it fires at the next minute).
    wait_for(lambda: len(rows.read_text().splitlines()) > before, 75, "cron to run the job", interval=0.5)
    spans = sorted((float(a), float(b)) for a, b, _ in (line.split() for line in rows.read_text().splitlines()))
    overlaps = [(x, y) for x, y in zip(spans, spans[1:], strict=False) if y[0] < x[1]]
    assert not overlaps, overlaps


def test_bad_input_gets_one_clear_line(app, tmp_path):
    unknown = garrison("logs", "nope", cwd=app)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "garrison: error: logs nope: no such log or process; expected one of: "
        "error, access, nginx, nginx-error, supervisor, service, worker, job NAME"
    ]
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "main.py").write_text("app = None\n")
    for table, line in (
        ('[processes.web]\ncommand = "rq worker"\n', 'processes.web: expected another name: "web" is the app\'s web server'),
        ('[jobs.rows]\ncommand = "true"\nschedule = "every minute"\n', "jobs.rows.schedule: expected cron syntax"),
    ):
        (tmp_path / "garrison.toml").write_text('[app]\nname = "badproc"\nentry = "main:app"\n' + table)
        proc = garrison("up", "--plan", cwd=tmp_path)
        assert proc.returncode == 2
        (only,) = proc.stderr.strip().splitlines()
        assert only.startswith("garrison: error: garrison.toml: " + line), only


def test_status_lists_the_worker_with_pid_uptime_and_restarts(app):
    status = garrison("status", cwd=app)
    row = next(line for line in status.stdout.splitlines() if "process worker" in line)
    pid = worker_pid()
    assert f"pid {pid}, up " in row and "0 restarts" in row, row  # the deploy started a new one


def test_a_plan_after_up_has_nothing_to_do_for_processes_and_jobs(app):
    plan = {d["step"]: d for d in json.loads(garrison("up", "--plan", "--json", cwd=app, check=True).stdout)}
    assert plan["processes"]["action"] == "unchanged" and "worker (1) running the live release" in plan["processes"]["reason"]
    assert plan["jobs"]["action"] == "unchanged" and plan["jobs"]["reason"] == "rows (* * * * *) scheduled by cron"


def test_down_stops_the_worker_and_unschedules_the_job(app):
    pid = worker_pid()
    assert pid is not None
    proc = garrison("down", cwd=app)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for(lambda: not alive(pid), 35, "the worker to stop")
    assert worker_pid(("STARTING", "RUNNING", "BACKOFF")) is None
    assert not Path("/etc/garrison/supervisor.d/proctest-worker.conf").exists()
    assert not Path("/etc/cron.d/garrison-proctest").exists()
    # down keeps the data and the jobs' records; only --purge (the fixture's teardown) removes them.
    assert (SHARED / "rows.txt").exists() and (BASE / "jobs" / "rows.finished").exists()
