"""Step `processes`: the app's worker processes ([processes.NAME]) run the live release.

It comes after the web slot has taken the traffic (after drain and post_deploy),
so a new release's workers start only once its web side serves. A process whose
fingerprint changed (the release, the venv, its launcher and unit or program
file, the env file) is stopped by its service manager (SIGTERM, `stop_timeout`
to finish what it is doing, then SIGKILL) and started again; a process not
running all its copies is started; one no longer in garrison.toml is stopped and
removed. systemd runs each copy as an instance of a template unit
(<app>-NAME@N.service, enabled: started at boot); supervisord as one program with
`numprocs` copies (autostart). Both restart a copy that dies.

Each start of a copy appends a line to its `.starts` file (the launcher does),
which the step empties before it starts the copies: a copy that keeps crashing
shows up as more than one line, and `status` counts restarts from it.
"""

from __future__ import annotations

import hashlib
import json

from garrison import commands as C
from garrison import facts as F
from garrison import render as R
from garrison.config.model import Process
from garrison.errors import DeployError
from garrison.steps import Context, Decision, change, file_diff, skip, unchanged

# How long new copies get to be running, and then to stay up without a restart.
START_DEADLINE = 20.0
SETTLE_SECONDS = 1.5


def here(ctx: Context) -> dict[str, Process]:
    """The processes that run on this host: all, unless pinned to other [[hosts]]."""
    cfg = ctx.cfg
    if ctx.host.name not in {h.name for h in cfg.hosts}:
        return dict(cfg.processes)  # this machine (`garrison up`), not one of [[hosts]]
    return {n: p for n, p in cfg.processes.items() if p.hosts is None or ctx.host.name in p.hosts}


def files(ctx: Context, name: str) -> list[tuple[str, str]]:
    """(path, text) of a process's launcher and its unit (systemd) or program (supervisord)."""
    cfg, L = ctx.cfg, ctx.L
    out = [(L.process_script(name), R.process_script(cfg, L, name))]
    if ctx.hf.systemd:
        out.append((L.process_unit(name), R.process_unit(cfg, L, name)))
    else:
        out.append((L.process_program_conf(name), R.process_program(cfg, L, name, ctx.tool)))
    return out


def fingerprint(ctx: Context, name: str) -> str:
    """What a running process is: the release and venv, its files, and the env file's values."""
    env_text = json.dumps(ctx.app.app_env(), sort_keys=True)
    texts = [text for _, text in files(ctx, name)]
    parts = (ctx.rid or "", ctx.reqhash or "", *texts, env_text)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def copies(ctx: Context, name: str, count: int) -> dict[int, int | None]:
    """The running copies of a process: index → pid (None when the manager gave none)."""
    h, L = ctx.host, ctx.L
    running: dict[int, int | None] = {}
    if ctx.hf.systemd:
        for i in range(count):
            unit = L.process_instance(name, i)
            if h.run(C.systemctl("is-active", "--quiet", unit), check=False).ok:
                res = h.run(F.systemd_main_pid(unit), check=False)
                running[i] = F.parse_pid(res.stdout) if res.ok else None
        return running
    group = L.process_program(name)
    res = h.run(C.supervisorctl(ctx.tool, "status", f"{group}:*"), check=False)
    for proc, (state, pid) in F.parse_supervisor_status(res.stdout).items():
        index = proc.rpartition("-")[2]
        if state == "RUNNING" and proc.startswith(f"{group}:{group}-") and index.isdigit():
            running[int(index)] = pid
    return running


def stop(ctx: Context, name: str, count: int, stop_timeout: int) -> None:
    """Stop every copy through its manager (SIGTERM, stop_timeout, SIGKILL) and unload it."""
    h, L = ctx.host, ctx.L
    wait = stop_timeout + 30
    if ctx.hf.systemd:
        units = [L.process_instance(name, i) for i in range(count)]
        if units:
            h.run(C.systemctl("disable", "--now", *units), check=False, timeout=wait)
        return
    if ctx.app.supervisord_pid() is not None:
        group = L.process_program(name)
        h.run(C.supervisorctl(ctx.tool, "stop", f"{group}:*"), check=False, timeout=wait)
        h.run(C.supervisorctl(ctx.tool, "remove", group), check=False)


def remove_files(ctx: Context, name: str, count: int) -> None:
    h, L = ctx.host, ctx.L
    for path in (L.process_script(name), L.process_unit(name), L.process_program_conf(name)):
        h.remove(path)
    for i in range(count):
        h.remove(L.process_starts(name, i))


def start(ctx: Context, name: str, proc: Process) -> None:
    h, L = ctx.host, ctx.L
    if ctx.hf.systemd:
        h.run(C.systemctl("daemon-reload"))
        h.run(C.systemctl("enable", "--now", *(L.process_instance(name, i) for i in range(proc.count))))
        return
    group = L.process_program(name)
    h.run(C.supervisorctl(ctx.tool, "reread"))
    h.run(C.supervisorctl(ctx.tool, "add", group), check=False)


def starts(ctx: Context, name: str, index: int) -> int:
    return len((ctx.host.read_file(ctx.L.process_starts(name, index)) or b"").split())


def wait_running(ctx: Context, name: str, proc: Process) -> None:
    """All copies running, then still the same start of each a moment later (no crash loop)."""
    clock = ctx.clock
    end = clock.monotonic() + START_DEADLINE
    while len(copies(ctx, name, proc.count)) < proc.count:
        if clock.monotonic() >= end:
            raise DeployError(f"process {name}: {len(copies(ctx, name, proc.count))} of {proc.count} running "
                              f"after {START_DEADLINE:.0f} s{_log_tail(ctx, name)}")
        clock.sleep(0.1)
    clock.sleep(SETTLE_SECONDS)
    restarted = [i for i in range(proc.count) if starts(ctx, name, i) > 1]
    if restarted or len(copies(ctx, name, proc.count)) < proc.count:
        raise DeployError(f"process {name} exits right after it starts (it was restarted){_log_tail(ctx, name)}")


def _log_tail(ctx: Context, name: str) -> str:
    path = ctx.L.process_log(name)
    lines = (ctx.host.read_file(path) or b"").decode(errors="replace").strip().splitlines()[-10:]
    return f"; the web release serves; last lines of {path}:\n" + "\n".join("  " + ln for ln in lines) if lines else ""


class Processes:
    name = "processes"

    def what(self, ctx: Context) -> str:
        return "worker processes on the live release"

    def decide(self, ctx: Context) -> Decision:
        want = here(ctx)
        recorded: dict[str, dict[str, object]] = ctx.state.get("processes", {})
        if not want and not recorded:
            return skip(self.name, "no [processes]" if not ctx.cfg.processes else "no [processes] for this host")
        todo: list[tuple[str, str, str]] = []  # name, why, fingerprint
        diff: list[str] = []
        for name, proc in want.items():
            fp = fingerprint(ctx, name)
            rec = recorded.get(name)
            if rec is None:
                why = "start"
            elif rec.get("fingerprint") != fp:
                why = "restart: new release" if rec.get("release") != ctx.rid else "restart: new command, settings or env"
            else:
                up = len(copies(ctx, name, proc.count))
                if up == proc.count:
                    continue
                why = f"{up} of {proc.count} running: start"
            todo.append((name, why, fp))
            diff += [ln for path, text in files(ctx, name) if not ctx.host.has_file(path, text.encode())
                     for ln in file_diff(path, ctx.host.read_file(path), text)]
        gone = sorted(n for n in recorded if n not in want)
        if not todo and not gone:
            return unchanged(self.name, ", ".join(f"{n} ({p.count})" for n, p in want.items()) + " running the live release")
        reasons = [f"{n}: {why}" for n, why, _ in todo] + [f"{n}: stop and remove" for n in gone]
        return change(self.name, "; ".join(reasons), diff, data=(todo, gone))

    def apply(self, ctx: Context, decision: Decision) -> str:
        todo, gone = decision.data
        h = ctx.host
        recorded: dict[str, dict[str, int | str]] = ctx.state.setdefault("processes", {})
        for name in gone:
            rec = recorded[name]
            stop(ctx, name, int(rec.get("count", 1)), int(rec.get("stop_timeout", 30)))
            remove_files(ctx, name, int(rec.get("count", 1)))
            del recorded[name]
            ctx.app.write_state(ctx.state)
        for name, _why, fp in todo:
            proc = ctx.cfg.processes[name]
            rec = recorded.get(name, {})
            old_count = int(rec.get("count", proc.count))
            # Old copies first (they finish their work within stop_timeout), then the new ones.
            stop(ctx, name, max(old_count, proc.count), int(rec.get("stop_timeout", proc.stop_timeout)))
            for i in range(max(old_count, proc.count)):
                h.remove(ctx.L.process_starts(name, i))
            for path, text in files(ctx, name):
                h.write_file(path, text.encode())
            # Recorded before the start: if it fails, the next run still knows what to stop.
            recorded[name] = {"fingerprint": fp, "release": ctx.rid or "", "count": proc.count,
                              "stop_timeout": proc.stop_timeout}
            ctx.app.write_state(ctx.state)
            start(ctx, name, proc)
        for name, _why, _fp in todo:
            try:
                wait_running(ctx, name, ctx.cfg.processes[name])
            except DeployError:
                recorded[name]["fingerprint"] = ""  # the next run starts it again
                ctx.app.write_state(ctx.state)
                raise
        return decision.reason
