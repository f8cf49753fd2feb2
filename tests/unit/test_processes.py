"""Worker processes and scheduled jobs: the config's one-line errors, the cron schedule as
systemd calendar values, and the `processes` and `jobs` steps' decisions on the strict
fake host and fake clock (both service managers). A command a test did not allow fails it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from garrison import render as R
from garrison.config import parse_config
from garrison.config.model import cron_schedule
from garrison.errors import ConfigError, DeployError
from garrison.layout import Layout
from garrison.project import Project
from garrison.state import HostFacts
from garrison.steps import Context
from garrison.steps.jobs import Jobs
from garrison.steps.processes import Processes, fingerprint
from garrison.workflows import Run
from tests.fakehost import FakeClock, FakeHost, Reply

APP = {"name": "shop", "entry": "main:app"}
WORKER = {"worker": {"command": "rq worker", "count": 2, "stop_timeout": 45}}
SUPERVISORCTL = ("/opt/garrison/venv/bin/supervisorctl", "-c", "/etc/garrison/supervisord.conf")


def config_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config({"app": APP, **data})
    return str(exc.value)


# -- garrison.toml ---------------------------------------------------------------------------


def test_a_process_named_web_gets_one_line_naming_the_key():
    msg = config_error({"processes": {"web": {"command": "gunicorn x"}}})
    assert msg == 'garrison.toml: processes.web: expected another name: "web" is the app\'s web server (gunicorn)'


@pytest.mark.parametrize("schedule, why", [
    ("* * * *", "it has 4 fields, not 5"),
    ("61 * * * *", '"61" is not a valid minute field'),
    ("*/0 * * * *", '"*/0" is not a valid minute field'),
    ("5/2 * * * *", '"5/2" is not a valid minute field'),  # cron steps only through a range
    ("0 0 * * funday", '"funday" is not a valid day of week field'),
    ("@reboot", "it has 1 fields, not 5"),
])
def test_a_malformed_schedule_gets_one_line_naming_the_key(schedule, why):
    msg = config_error({"jobs": {"rows": {"schedule": schedule, "command": "true"}}})
    assert len(msg.splitlines()) == 1
    assert msg.startswith("garrison.toml: jobs.rows.schedule: expected cron syntax") and msg.endswith(why), msg


def test_pinned_hosts_must_be_app_hosts():
    hosts = [{"name": "web1", "address": "10.0.0.1"}, {"name": "lb", "address": "10.0.0.9", "roles": ["lb"]}]
    msg = config_error({"hosts": hosts, "processes": {"worker": {"command": "x", "hosts": ["lb"]}}})
    assert msg == 'garrison.toml: processes.worker.hosts: expected names of app [[hosts]] (web1), got "lb"'
    msg = config_error({"hosts": hosts, "jobs": {"j": {"schedule": "@daily", "command": "x", "host": "web9"}}})
    assert msg == 'garrison.toml: jobs.j.host: expected the name of an app [[hosts]] (web1), got "web9"'


def test_schedules_are_stored_as_five_fields():
    cfg = parse_config({"app": APP, "jobs": {"a": {"schedule": "@weekly", "command": "x"},
                                             "b": {"schedule": " */5   * * *  mon-fri ", "command": "y"}}})
    assert cfg.jobs["a"].schedule == "0 0 * * 0"
    assert cfg.jobs["b"].schedule == "*/5 * * * mon-fri"


def test_cron_fields_expand_as_cron_reads_them():
    minute, hour, dom, month, dow = cron_schedule("0-10/5,30 */6 1,15 jan-mar 7")
    assert minute == {0, 5, 10, 30} and hour == {0, 6, 12, 18} and dom == {1, 15}
    assert month == {1, 2, 3} and dow == {0}  # 7 is Sunday, as 0


def test_on_calendar_spells_out_each_field_and_ors_day_of_month_with_day_of_week():
    assert R.on_calendar("*/15 * * * *") == ["*-*-* *:00,15,30,45:00"]
    assert R.on_calendar("0 0 * * 0") == ["Sun *-*-* 00:00:00"]
    # cron: the 1st of the month OR any weekday; systemd ANDs its fields, so two values.
    assert R.on_calendar("30 6 1 * mon-fri") == ["*-*-01 06:30:00", "Mon,Tue,Wed,Thu,Fri *-*-* 06:30:00"]


# -- the processes step ----------------------------------------------------------------------


def make_ctx(tmp_path: Path, host: FakeHost, *, systemd: bool = False, clock: FakeClock | None = None,
             **tables: Any) -> Context:
    (tmp_path / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("flask\n")
    cfg = parse_config({"app": APP, **tables})
    ctx = Context(project=Project(config=cfg, source=tmp_path / "garrison.toml", root=tmp_path), host=host, run=Run(),
                  clock=clock or FakeClock())
    ctx.facts = HostFacts(systemd=systemd, ipv6=False, nginx_user="www-data")
    ctx.rid, ctx.reqhash = "r2", "h2"
    host.add_file(Layout.of(cfg).env_file, b'RQ_REDIS_URL="redis://127.0.0.1:6379/0"\n', mode=0o600)
    return ctx


def supervisord_running(host: FakeHost) -> None:
    host.add_file("/run/garrison/supervisord.pid", b"50\n")
    host.expect(("kill", "-0", "50"), times=None)


def status_reply(*states: str) -> str:
    return "".join(f"shop-worker:shop-worker-{i}   {s}   pid {100 + i}, uptime 0:00:05\n" for i, s in enumerate(states))


def test_no_processes_is_a_skip_that_runs_nothing(tmp_path):
    host = FakeHost()
    d = Processes().decide(make_ctx(tmp_path, host))
    assert d.action == "skip" and d.reason == "no [processes]"
    assert host.ran == []
    host.assert_done()


def test_a_first_deploy_starts_the_copies_and_waits_until_they_stay_up(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock=clock, processes=WORKER)
    L = ctx.L
    d = Processes().decide(ctx)
    assert d.action == "change" and d.reason == "worker: start"
    assert any(L.process_program_conf("worker") in line for line in d.diff)  # the plan shows the new files
    supervisord_running(host)
    host.expect((*SUPERVISORCTL, "stop", "shop-worker:*"))
    host.expect((*SUPERVISORCTL, "remove", "shop-worker"))
    host.expect((*SUPERVISORCTL, "reread"))

    def add(argv, _input):  # supervisord starts both copies; each launcher records its start
        for i in range(2):
            host.add_file(L.process_starts("worker", i), b"1700000000\n")
        return Reply()

    host.expect((*SUPERVISORCTL, "add", "shop-worker"), respond=add)
    host.expect((*SUPERVISORCTL, "status", "shop-worker:*"), stdout=status_reply("STARTING", "STARTING"))
    host.expect((*SUPERVISORCTL, "status", "shop-worker:*"), stdout=status_reply("RUNNING", "RUNNING"), times=2)
    Processes().apply(ctx, d)
    program = host.read_file(L.process_program_conf("worker"))
    assert program is not None and b"numprocs=2\n" in program and b"stopwaitsecs=45\n" in program
    assert host.read_file(L.process_script("worker")).endswith(b"exec rq worker\n")  # type: ignore[union-attr]
    rec = ctx.state["processes"]["worker"]
    assert rec == {"fingerprint": fingerprint(ctx, "worker"), "release": "r2", "count": 2, "stop_timeout": 45}
    # The old copies are stopped before the new program is loaded, never after.
    order = [a[3] for a in host.ran if a[:3] == SUPERVISORCTL]
    assert order.index("stop") < order.index("add")
    host.assert_done()


def test_the_same_process_running_on_the_same_release_is_unchanged(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host, processes=WORKER)
    ctx.state = {"processes": {"worker": {"fingerprint": fingerprint(ctx, "worker"), "release": "r2", "count": 2}}}
    host.expect((*SUPERVISORCTL, "status", "shop-worker:*"), stdout=status_reply("RUNNING", "RUNNING"))
    assert Processes().decide(ctx).action == "unchanged"
    host.expect((*SUPERVISORCTL, "status", "shop-worker:*"), stdout=status_reply("RUNNING", "FATAL"))
    d = Processes().decide(ctx)
    assert d.action == "change" and d.reason == "worker: 1 of 2 running: start"
    host.assert_done()


def test_a_new_release_or_env_restarts_the_process(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host, processes=WORKER)
    ctx.state = {"processes": {"worker": {"fingerprint": fingerprint(ctx, "worker"), "release": "r2", "count": 2}}}
    host.add_file(ctx.L.env_file, b'RQ_REDIS_URL="redis://127.0.0.1:6380/0"\n', mode=0o600)
    assert Processes().decide(ctx).reason == "worker: restart: new command, settings or env"
    ctx.rid = "r3"
    assert Processes().decide(ctx).reason == "worker: restart: new release"
    host.assert_done()


def test_a_process_that_crashes_right_after_it_starts_fails_the_step_and_is_retried_next_time(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, clock=clock, processes={"worker": {"command": "rq worker"}})
    L = ctx.L
    d = Processes().decide(ctx)
    supervisord_running(host)
    host.expect((*SUPERVISORCTL, "stop", ...))
    host.expect((*SUPERVISORCTL, "remove", ...))
    host.expect((*SUPERVISORCTL, "reread"))
    host.expect((*SUPERVISORCTL, "add", "shop-worker"))
    host.add_file(L.process_log("worker"), b"redis.exceptions.ConnectionError: Error 111 connecting\n")

    def status(argv, _input):  # RUNNING each time it is asked, but it has started three times
        host.add_file(L.process_starts("worker", 0), b"1\n2\n3\n")
        return Reply(stdout=status_reply("RUNNING"))

    host.expect((*SUPERVISORCTL, "status", "shop-worker:*"), respond=status, times=None)
    with pytest.raises(DeployError, match="process worker exits right after it starts") as exc:
        Processes().apply(ctx, d)
    assert "Error 111 connecting" in str(exc.value)
    assert ctx.state["processes"]["worker"]["fingerprint"] == ""  # the next up starts it again
    host.assert_done()


def test_a_process_no_longer_configured_is_stopped_and_removed(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host)
    L = ctx.L
    ctx.state = {"processes": {"mailer": {"fingerprint": "f", "release": "r1", "count": 1, "stop_timeout": 10}}}
    host.add_file(L.process_program_conf("mailer"), b"[program:shop-mailer]\n")
    host.add_file(L.process_script("mailer"), b"exec mailer\n")
    d = Processes().decide(ctx)
    assert d.action == "change" and d.reason == "mailer: stop and remove"
    supervisord_running(host)
    host.expect((*SUPERVISORCTL, "stop", "shop-mailer:*"))
    host.expect((*SUPERVISORCTL, "remove", "shop-mailer"))
    Processes().apply(ctx, d)
    assert host.node(L.process_program_conf("mailer")) is None and host.node(L.process_script("mailer")) is None
    assert ctx.state["processes"] == {}
    host.assert_done()


def test_under_systemd_copies_are_instances_stopped_then_enabled(tmp_path):
    host, clock = FakeHost(), FakeClock()
    ctx = make_ctx(tmp_path, host, systemd=True, clock=clock, processes=WORKER)
    L = ctx.L
    ctx.state = {"processes": {"worker": {"fingerprint": "old", "release": "r1", "count": 3, "stop_timeout": 20}}}
    d = Processes().decide(ctx)
    assert d.reason == "worker: restart: new release"
    units = [f"shop-worker@{i}.service" for i in range(3)]
    host.expect(("systemctl", "disable", "--now", *units))  # all three old copies (the third is not wanted)
    host.expect(("systemctl", "daemon-reload"))

    def enable(argv, _input):
        for i in range(2):
            host.add_file(L.process_starts("worker", i), b"1\n")
        return Reply()

    host.expect(("systemctl", "enable", "--now", *units[:2]), respond=enable)
    for unit in units[:2]:
        host.expect(("systemctl", "is-active", "--quiet", unit), times=2)
        host.expect(("systemctl", "show", "--property", "MainPID", "--value", unit), stdout="321\n", times=2)
    Processes().apply(ctx, d)
    unit = host.read_file(L.process_unit("worker"))
    assert unit is not None and b"TimeoutStopSec=45\n" in unit and b"KillMode=mixed\n" in unit
    assert b"EnvironmentFile=-/srv/shop/shared/.env\n" in unit and b"redis://" not in unit
    host.assert_done()


def test_processes_pinned_to_other_hosts_do_not_run_here(tmp_path):
    host = FakeHost(name="web1")
    hosts = [{"name": "web1", "address": "10.0.0.1"}, {"name": "web2", "address": "10.0.0.2"}]
    ctx = make_ctx(tmp_path, host, hosts=hosts, processes={"worker": {"command": "x", "hosts": ["web2"]}},
                   jobs={"rows": {"schedule": "@hourly", "command": "y", "host": "web2"}})
    assert Processes().decide(ctx).reason == "no [processes] for this host"
    assert Jobs().decide(ctx).reason == "no [jobs] for this host"
    host.assert_done()


# -- the jobs step ---------------------------------------------------------------------------

ROWS = {"rows": {"schedule": "* * * * *", "command": "python rows.py", "timeout": 120}}


def test_no_jobs_is_a_skip_that_runs_nothing(tmp_path):
    host = FakeHost()
    d = Jobs().decide(make_ctx(tmp_path, host))
    assert d.action == "skip" and host.ran == []
    host.assert_done()


def test_on_a_cron_host_cron_is_installed_started_and_given_the_jobs(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host, jobs=ROWS)
    L = ctx.L
    host.add_dir("/srv/shop")
    d = Jobs().decide(ctx)
    assert d.action == "change"
    assert d.reason == f"write job-rows.sh, garrison-shop; folder {L.jobs_dir} and the jobs' logs; install cron; start cron"
    host.expect(("apt-get", "install", "-y", "-q", "--no-install-recommends", "cron"),
                respond=lambda argv, _i: (host.add_program("/usr/sbin/cron"), Reply())[1])
    host.expect(("/usr/sbin/cron",), respond=lambda argv, _i: (host.add_file("/run/crond.pid", b"77\n"), Reply())[1])
    Jobs().apply(ctx, d)
    cron = host.node(L.cron_file)
    assert cron is not None and cron.mode == 0o644 and cron.owner == "root"
    line = next(ln for ln in cron.data.decode().splitlines() if ln.startswith("* * * * * root "))
    assert "garrison-exec /srv/shop/shared/.env shop -- /bin/sh /etc/garrison/shop/job-rows.sh" in line
    jobs_dir = host.node(L.jobs_dir)
    assert jobs_dir is not None and (jobs_dir.mode, jobs_dir.owner) == (0o750, "shop")
    log = host.node(L.job_log("rows"))
    assert log is not None and log.owner == "shop"  # cron's `>>` as root must not make it root's
    assert b"timeout --kill-after=10 120 " in host.read_file(L.job_script("rows"))  # type: ignore[operator]
    assert ctx.state["jobs"] == ["rows"]
    # Everything in place, cron running: nothing to do.
    host.expect(("kill", "-0", "77"))
    again = Jobs().decide(ctx)
    assert again.action == "unchanged" and again.reason == "rows (* * * * *) scheduled by cron"
    host.assert_done()


def test_under_systemd_each_job_is_a_timer_and_a_removed_job_loses_its_timer(tmp_path):
    host = FakeHost()
    ctx = make_ctx(tmp_path, host, systemd=True, jobs=ROWS)
    L = ctx.L
    ctx.state = {"jobs": ["old"]}
    host.add_file(L.job_timer("old"), b"[Timer]\n")
    host.expect(("systemctl", "is-active", "--quiet", "shop-job-rows.timer"), rc=3)
    d = Jobs().decide(ctx)
    assert d.reason.startswith("write job-rows.sh, shop-job-rows.service, shop-job-rows.timer; remove old;")
    assert d.reason.endswith("enable and start shop-job-rows.timer")
    host.expect(("systemctl", "disable", "--now", "shop-job-old.timer"))
    host.expect(("systemctl", "daemon-reload"), times=2)
    host.expect(("systemctl", "enable", "--now", "shop-job-rows.timer"))
    Jobs().apply(ctx, d)
    assert host.node(L.job_timer("old")) is None
    timer = host.read_file(L.job_timer("rows"))
    assert timer is not None and b"OnCalendar=*-*-* *:*:00\n" in timer and b"AccuracySec=1s\n" in timer
    assert host.node(L.cron_file) is None
    assert not any(a[:2] == ("systemctl", "stop") for a in host.ran)  # a run in progress is never stopped
    host.assert_done()


def test_the_job_script_skips_while_a_run_holds_the_lock_and_records_each_run():
    cfg = parse_config({"app": APP, "jobs": ROWS})
    text = R.job_script(cfg, Layout.of(cfg), "rows")
    assert "flock -n 9" in text and "exit 75" in text and "skipped: the previous run is still going" in text
    assert text.count("readlink -f /srv/shop/current") == 1  # the release is resolved once per run
    assert '/srv/shop/jobs/rows.finished.tmp\nmv -f /srv/shop/jobs/rows.finished.tmp /srv/shop/jobs/rows.finished' in text


def test_status_reads_the_job_records():
    from garrison.facts import parse_job_record

    assert parse_job_record(json.dumps({"start": 10, "end": 14, "exit": 3, "release": "r"})) == {
        "start": 10, "end": 14, "exit": 3, "release": "r"}
    assert parse_job_record(b"") is None and parse_job_record(b"{bad") is None and parse_job_record(b"[]") is None


def test_jobs_run_goes_to_the_one_host_the_job_is_scheduled_on():
    from garrison.workflows.manage import job_host

    hosts = [{"name": "lb", "address": "10.0.0.9", "roles": ["lb"]}, {"name": "web1", "address": "10.0.0.1"},
             {"name": "web2", "address": "10.0.0.2"}]
    cfg = parse_config({"app": APP, "hosts": hosts, "jobs": {"a": {"schedule": "@daily", "command": "x"},
                                                             "b": {"schedule": "@daily", "command": "y", "host": "web2"}}})
    assert job_host(cfg, "a").name == "web1"  # type: ignore[union-attr]  # the first app host, not the lb
    assert job_host(cfg, "b").name == "web2"  # type: ignore[union-attr]
    assert job_host(parse_config({"app": APP, "jobs": {"a": {"schedule": "@daily", "command": "x"}}}), "a") is None
