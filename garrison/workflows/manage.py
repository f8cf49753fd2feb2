"""`status`, `logs` and `down`: reading and removing what `up` built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from garrison import commands as C
from garrison import facts as F
from garrison.clock import Clock
from garrison.config import Config
from garrison.config.model import Host
from garrison.errors import ConfigError, HostError
from garrison.hosts import Executor
from garrison.layout import SLOTS, Layout
from garrison.project import Project
from garrison.state import AppOnHost, HostFacts
from garrison.steps import jobs, processes, slots
from garrison.workflows import CHANGED, Run
from garrison.workflows.up import context


@dataclass
class Status:
    rows: list[tuple[str, str]] = field(default_factory=list)
    healthy: bool = False


def _proc_info(h: Executor, pid: int) -> tuple[int, float] | None:
    """(number of child processes, uptime in seconds) of a running pid."""
    res = h.run(C.process_age(pid), check=False)
    if not res.ok or not res.stdout.strip():
        return None
    kids = h.run(C.children(pid), check=False).stdout.split()
    return len(kids), float(res.stdout.strip())


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def status(project: Project, host: Executor) -> Status:
    u = AppOnHost(project.config, host)
    L, h = u.L, host
    facts = u.host_facts()
    state = u.read_state()
    st = Status()
    if not state:
        st.rows.append(("state", f"not deployed here (no {L.state_file}); run `garrison up`"))
        return st
    live = u.live_slot()
    releases = state.get("releases", [])
    st.rows.append(("releases", ", ".join(r + (" (current)" if r == state.get("current") else "") for r in releases)))
    st.rows.append(("live slot", f"{live} → {L.bind_address(live)}" if live else "none"))
    manager = "systemd" if facts.systemd else "supervisord"
    for slot in SLOTS:
        pid = F.parse_pid(h.read_file(L.pidfile(slot)))
        running = u.slot_running(facts, slot)
        info = _proc_info(h, pid) if (pid and running) else None
        if info:
            workers, up_s = info
            st.rows.append((f"gunicorn {slot}", f"running under {manager}, pid {pid}, {workers} workers, up {_ago(up_s)}"))
        elif slot == live:
            st.rows.append((f"gunicorn {slot}", f"NOT running under {manager}"))
        if facts.systemd and (info or slot == live):
            # systemd's own view: its state, the main PID it watches, how often it restarted it.
            unit = L.systemd_instance(slot)
            props = F.parse_unit_properties(h.run(F.unit_properties(unit), check=False).stdout)
            st.rows.append((f"systemd {slot}", f"{unit}: {props.get('ActiveState', '?')} ({props.get('SubState', '?')}), "
                                               f"main pid {props.get('MainPID', '?')}, {props.get('NRestarts', '?')} restart(s)"))
    st.rows += process_rows(project, host, facts, state) + job_rows(u, facts, state)
    nginx_pid = F.parse_pid(h.read_file("/run/nginx.pid"))
    nginx_ok = u.nginx_running()
    st.rows.append(("nginx", f"running, pid {nginx_pid}" if nginx_ok else "NOT running"))
    st.rows.append(("site", L.nginx_site + (" (enabled)" if h.exists(L.nginx_site_link) else " (NOT enabled)")))
    result = u.probe(f"127.0.0.1:{project.config.server.port}", deadline=2.0)
    health = f"HTTP {result['status']}" if result.get("status") else f"no answer ({result.get('error')})"
    st.rows.append(("health", f"{health} for {project.config.app.health_path} through nginx"))
    st.healthy = bool(result.get("ok"))
    return st


LOGS = ("error", "access", "nginx", "nginx-error", "supervisor", "service")


def log_path(project: Project, host: Executor, which: str) -> str:
    """The file `garrison logs WHICH` shows, on host (the live slot's, for supervisor);
    WHICH may also be a process's name, or "job NAME"."""
    cfg = project.config
    L = Layout.of(cfg)
    kind, _, name = which.partition(" ")
    if kind == "job" and name:
        if name not in cfg.jobs:
            raise ConfigError(f"logs job {name}: no [jobs.{name}] in garrison.toml; jobs: {', '.join(cfg.jobs) or 'none'}")
        return L.job_log(name)
    if which in cfg.processes:
        return L.process_log(which)
    if which in ("supervisor", "service"):
        return L.supervisor_log(AppOnHost(cfg, host).live_slot() or "blue")
    if which not in LOGS:
        names = [*LOGS, *cfg.processes] + (["job NAME"] if cfg.jobs else [])
        raise ConfigError(f"logs {which}: no such log or process; expected one of: {', '.join(names)}")
    return {
        "error": L.error_log,
        "access": L.access_log,
        "nginx": L.nginx_access_log,
        "nginx-error": L.nginx_error_log,
    }[which]


def log_command(project: Project, host: Executor, which: str, lines: int, follow: bool) -> tuple[str, tuple[str, ...]]:
    """(what it shows, the argv that prints it) for `garrison logs WHICH` on host. The service
    manager's own log of the live slot (`service`, or `supervisor`) is systemd's journal of
    the unit where PID 1 is systemd, supervisord's log file elsewhere."""
    if which in ("service", "supervisor"):
        app = AppOnHost(project.config, host)
        slot = app.live_slot() or "blue"
        if app.host_facts().systemd:
            unit = app.L.systemd_instance(slot)
            return f"journal of {unit}", C.journal(unit, lines, follow)
        which = "supervisor"
    path = log_path(project, host, which)
    return path, C.tail(path, lines, follow)


def process_rows(project: Project, h: Executor, facts: HostFacts, state: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per worker process: its copies' pids, uptimes and restarts."""
    ctx = context(project, h)
    ctx.facts = facts
    u = ctx.app
    manager = "systemd" if facts.systemd else "supervisord"
    rows = []
    recorded = state.get("processes", {})
    for name in sorted(set(u.cfg.processes) | set(recorded)):
        count = u.cfg.processes[name].count if name in u.cfg.processes else int(recorded[name].get("count", 1))
        running = processes.copies(ctx, name, count)
        parts = []
        for i in range(count):
            pid = running.get(i)
            if i not in running:
                parts.append(f"#{i} NOT running")
                continue
            age = h.run(C.process_age(pid), check=False) if pid else None
            up = f", up {_ago(float(age.stdout.strip()))}" if age and age.ok and age.stdout.strip() else ""
            restarts = max(0, processes.starts(ctx, name, i) - 1)
            parts.append(f"#{i} pid {pid}{up}, {restarts} restart{'s' if restarts != 1 else ''}")
        rows.append((f"process {name}", f"{len(running)}/{count} running under {manager}: " + "; ".join(parts)))
    return rows


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_rows(u: AppOnHost, facts: HostFacts, state: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per job: its schedule, its last finished run, and a run going on now."""
    h, L = u.host, u.L
    scheduler = "systemd timer" if facts.systemd else "cron"
    rows = []
    for name in sorted(set(u.cfg.jobs) | set(state.get("jobs", []))):
        job = u.cfg.jobs.get(name)
        text = f'"{job.schedule}" ({scheduler})' if job else "no longer in garrison.toml"
        done = F.parse_job_record(h.read_file(L.job_finished(name)))
        started = F.parse_job_record(h.read_file(L.job_started(name)))
        if done:
            took = int(done.get("end", done["start"])) - int(done["start"])
            text += f"; last run {_when(int(done['start']))}, {took} s, exit {done.get('exit')}"
        elif not started:
            text += "; has not run yet"
        if started and (not done or int(started["start"]) > int(done["start"])):
            pid = started.get("pid")
            if isinstance(pid, int) and u.alive(pid):
                text += f"; running since {_when(int(started['start']))} (pid {pid})"
            else:
                text += f"; the run started {_when(int(started['start']))} ended without a record (killed?)"
        rows.append((f"job {name}", text))
    return rows


def _end_user_processes(h: Executor, uid: int, clock: Clock, grace: float = 5.0) -> None:
    """userdel refuses while the user runs anything: a stopped master's workers can
    outlive it for a moment (they notice the orphaning on their next beat), so wait
    for them, then end the stragglers by PID."""

    def left_after(seconds: float) -> list[int]:
        end = clock.monotonic() + seconds
        # Not res.ok: awk complains (and exits 2) about a process that ends while it reads.
        while (pids := F.running_pids(h.run(C.user_processes(uid), check=False).stdout)) and clock.monotonic() < end:
            clock.sleep(0.1)
        return pids

    pids = left_after(grace)
    for sig in ("TERM", "KILL"):
        if not pids:
            return
        for pid in pids:
            h.run(C.kill(sig, pid), check=False)
        pids = left_after(5.0)


def down(project: Project, host: Executor, run: Run, *, purge: bool = False) -> None:
    ctx = context(project, host, run)
    u = ctx.app
    L, h, cfg = u.L, host, project.config
    facts = ctx.facts = u.host_facts()
    state = u.read_state()
    with run.step("nginx", "removing the site") as st:
        removed = [p for p in (L.nginx_site_link, L.nginx_site, L.nginx_upstream) if h.remove(p)]
        if state.get("default_site_disabled") and h.exists("/etc/nginx/sites-available/default"):
            h.ensure_symlink("/etc/nginx/sites-available/default", "/etc/nginx/sites-enabled/default")
            removed.append("restored the distribution's default site")
        left = h.run(C.find_named("/etc/nginx/garrison", "*.upstream.conf"), check=False).stdout.split()
        if not left:
            # The last Garrison app is gone: its catch-all sites go too.
            for port in {cfg.server.port}:
                for path in (u.tool.catchall_link(port), u.tool.catchall_site(port)):
                    if h.remove(path):
                        removed.append(path)
        if removed and u.nginx_running():
            res = h.run(C.nginx_test(), check=False)
            if res.ok:
                h.run(C.systemctl("reload", "nginx") if facts.systemd else C.nginx_reload())
        if removed:
            st.status, st.detail = CHANGED, f"removed {len(removed)} nginx files; other sites untouched"
        else:
            st.detail = "no site"
    with run.step("service", "stopping gunicorn") as st:
        running = [slot for slot in SLOTS if u.slot_running(facts, slot)]
        for slot in SLOTS:
            slots.stop(ctx, slot)
        gone = [p for p in (L.systemd_unit,) + tuple(L.supervisor_program_conf(s) for s in SLOTS) if h.remove(p)]
        if facts.systemd and gone:
            h.run(C.systemctl("daemon-reload"), check=False)
            # A unit that had failed would stay listed ("not-found failed") after its file is gone.
            h.run(C.systemctl("reset-failed", *(L.systemd_instance(s) for s in SLOTS)), check=False)
        if running or gone:
            st.status, st.detail = CHANGED, f"slots stopped ({', '.join(running) or 'none was running'})"
        else:
            st.detail = "no slot was running"
        state["slots"] = {}
        if h.exists(L.base):
            u.write_state(state)
    with run.step("processes", "stopping worker processes and jobs") as st:
        recorded = state.get("processes", {})
        names = sorted(set(cfg.processes) | set(recorded))
        for name in names:
            rec = recorded.get(name, {})
            proc = cfg.processes.get(name)
            count = max(int(rec.get("count", 1)), proc.count if proc else 1)
            processes.stop(ctx, name, count, int(rec.get("stop_timeout", proc.stop_timeout if proc else 30)))
            processes.remove_files(ctx, name, count)
        job_names = sorted(set(cfg.jobs) | set(state.get("jobs", [])))
        jobs.remove(ctx, job_names)
        cron_gone = h.remove(L.cron_file)
        if names or job_names or cron_gone:
            st.status = CHANGED
            st.detail = f"processes stopped ({', '.join(names) or 'none'}); jobs unscheduled ({', '.join(job_names) or 'none'})"
        else:
            st.detail = "no processes or jobs"
        state.pop("processes", None)
        state.pop("jobs", None)
        if h.exists(L.base):
            u.write_state(state)
    if not purge:
        return
    with run.step("purge", "removing the app's user, files and logs") as st:
        removed = [path for path in (L.base, L.log_dir, L.etc_dir, L.logrotate, L.p(f"/etc/init/{cfg.app.name}.conf"))
                   if h.remove(path)]
        uid = h.run(C.user_exists(cfg.user), check=False)
        if uid.ok:  # `id -u` printed the uid
            removed.append(f"user {cfg.user}")
            _end_user_processes(h, int(uid.stdout), ctx.clock)
            res = h.run(C.delete_user(cfg.user), check=False)
            if not res.ok:
                raise HostError(
                    f"{h.name}: could not remove user {cfg.user}: {(res.stderr or res.stdout).strip()[-200:]}; "
                    f"stop its processes, then run: userdel {cfg.user}"
                )
        if h.run(C.group_exists(cfg.user), check=False).ok:
            h.run(C.delete_group(cfg.user), check=False)
        # Garrison's own supervisord goes too once no app is left under it.
        T = u.tool
        left = h.run(C.find_named(T.supervisor_include_dir, "*.conf"), check=False).stdout.split()
        if not left and not facts.systemd:
            pid = u.supervisord_pid()
            if pid:
                h.run(C.kill("TERM", pid), check=False)
                end = ctx.clock.monotonic() + 30
                while ctx.clock.monotonic() < end and u.alive(pid):
                    ctx.clock.sleep(0.1)
            for path in (T.boot_entry, T.supervisord_conf, T.supervisor_include_dir):
                h.remove(path)
        if removed:
            st.status, st.detail = CHANGED, f"removed {', '.join(removed)}"
        else:
            st.detail = f"nothing to remove: {cfg.app.name} has no files, logs or user on {h.name}"


@dataclass
class JobRun:
    exit_code: int
    summary: str
    output: str  # what the run appended to the job's log


def job_host(cfg: Config, name: str) -> Host | None:
    """The [[hosts]] entry a job is scheduled on (its `host`, else the first app host); None without [[hosts]]."""
    job = cfg.jobs.get(name)
    if job is None or not cfg.hosts:
        return None
    wanted = job.host or next((h.name for h in cfg.hosts if "app" in h.roles), None)
    return next((h for h in cfg.hosts if h.name == wanted), None)


def run_job(project: Project, host: Executor, name: str) -> JobRun:
    """`garrison jobs run NAME`: one run now, exactly as its schedule starts it (the timer's
    service, or the cron line's command), so it takes the same lock and leaves the same record."""
    cfg = project.config
    if name not in cfg.jobs:
        raise ConfigError(f"jobs run {name}: no [jobs.{name}] in garrison.toml; jobs: {', '.join(cfg.jobs) or 'none'}")
    u = AppOnHost(cfg, host)
    L = u.L
    if name not in u.read_state().get("jobs", []):
        raise HostError(f"{host.name}: job {name} is not scheduled here; run `garrison up` first")
    facts = u.host_facts()
    before = F.parse_job_record(host.read_file(L.job_finished(name)))
    offset = u.log_size(L.job_log(name))
    wait = (cfg.jobs[name].timeout or 7 * 86400) + 60
    argv = C.systemctl("start", L.job_service(name)) if facts.systemd else C.job_run(u.tool, L, cfg.user, name)
    res = host.run(argv, check=False, timeout=wait)
    output = u.log_since(L.job_log(name), offset)
    after = F.parse_job_record(host.read_file(L.job_finished(name)))
    if after is not None and after != before:
        code = int(after.get("exit", 1))
        took = int(after.get("end", after["start"])) - int(after["start"])
        return JobRun(code, f"job {name} exited {code} after {took} s in release {after.get('release')} (log: {L.job_log(name)})", output)
    if "skipped: the previous run is still going" in output:
        return JobRun(75, f"job {name} skipped: its previous run is still going (log: {L.job_log(name)})", output)
    detail = (res.stderr.strip() or res.stdout.strip() or output.strip() or "no output").splitlines()[-1]
    raise HostError(f"{host.name}: job {name} did not run: `{' '.join(argv)}` exited {res.returncode}: {detail}")

