"""The life of a gunicorn slot: start, stop, wait until healthy and settled, and what a
failed one left behind. Shared by the `slot` step, restarts and rollbacks."""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from garrison import commands as C
from garrison import diagnose as D
from garrison import facts as F
from garrison import render as R
from garrison.steps import Context

# How long a slot must keep the same master and keep answering after its first 2xx.
SETTLE_SECONDS = 2.0


def kept_note(ctx: Context) -> str:
    return f"slot {ctx.live} keeps serving the previous release" if ctx.live else "nothing was serving before"


def fingerprint(ctx: Context, rid: str, reqhash: str) -> str:
    """What a running slot is: the code, the venv, and every file that shapes the process."""
    cfg, L = ctx.cfg, ctx.L
    # The environment is part of what a slot is: changing it restarts the app (blue/green).
    env_text = json.dumps(ctx.app.app_env(), sort_keys=True)
    service_text = R.systemd_unit(cfg, L) if ctx.hf.systemd else R.supervisor_program(cfg, L, "blue")
    server_text = R.granian_script(cfg, L) if cfg.app.server == "granian" else R.gunicorn_conf(cfg, L)
    return hashlib.sha256("\0".join((rid, reqhash, server_text, service_text, env_text)).encode()).hexdigest()[:16]


def start(ctx: Context, slot: str, rid: str) -> None:
    h, L = ctx.host, ctx.L
    stop(ctx, slot)
    h.ensure_symlink(posixpath.relpath(L.release(rid), L.slots_dir), L.slot(slot))
    if ctx.hf.systemd:
        h.run(C.systemctl("enable", L.systemd_instance(slot)))
        h.run(C.systemctl("restart", L.systemd_instance(slot)), check=False)
    else:
        h.write_file(L.supervisor_program_conf(slot), R.supervisor_program(ctx.cfg, L, slot, ctx.tool).encode())
        h.run(C.supervisorctl(ctx.tool, "reread"))
        h.run(C.supervisorctl(ctx.tool, "add", L.supervisor_program(slot)), check=False)


def stop(ctx: Context, slot: str) -> None:
    h, L = ctx.host, ctx.L
    if ctx.hf.systemd:
        h.run(C.systemctl("disable", "--now", L.systemd_instance(slot)), check=False)
    else:
        if ctx.app.supervisord_pid() is not None:
            h.run(C.supervisorctl(ctx.tool, "stop", L.supervisor_program(slot)), check=False, timeout=120)
            h.run(C.supervisorctl(ctx.tool, "remove", L.supervisor_program(slot)), check=False)
        h.remove(L.supervisor_program_conf(slot))


def wait_healthy(ctx: Context, slot: str, log_offset: int) -> dict[str, Any]:
    """Probe the slot's own socket until 2xx or the deadline; stop early when it can't come up."""
    a, app, clock = ctx.cfg.app, ctx.app, ctx.clock
    end = clock.monotonic() + a.health_deadline
    attempts = 0
    refusals = 0
    while True:
        window = min(2.0, max(0.2, end - clock.monotonic()))
        result = app.probe(ctx.L.bind_address(slot), deadline=window, timeout=a.health_timeout)
        attempts += result.get("attempts", 1)
        result["attempts"] = attempts
        if result.get("ok"):
            return settle(ctx, slot, result)
        # A client error (Django's ALLOWED_HOSTS 400, a 404 health path) won't change by waiting.
        status = result.get("status") or 0
        refusals = refusals + 1 if 400 <= status < 500 and status not in (408, 429) else 0
        if refusals >= 3:
            return result
        failure = D.boot_failure(app.log_since(ctx.L.error_log, log_offset))
        if failure is not None:
            result["boot_failure"] = failure
            return result
        if result.get("status") is None:
            exited = app.slot_exited(ctx.hf, slot)
            if exited:
                result["exited"] = exited
                return result
        if clock.monotonic() >= end:
            result["timeout"] = True
            return result


def settle(ctx: Context, slot: str, result: dict[str, Any], seconds: float = SETTLE_SECONDS) -> dict[str, Any]:
    """A first 2xx is not enough: the same gunicorn master must keep answering for a while.

    Orphaned workers of a master that just crashed can answer a probe, and a
    master can die a moment after its first answer; neither may take traffic.
    """
    app, clock, pidfile = ctx.app, ctx.clock, ctx.L.pidfile(slot)
    master = F.parse_pid(ctx.host.read_file(pidfile))
    end = clock.monotonic() + seconds
    attempts = result.get("attempts", 1)
    while True:
        now = F.parse_pid(ctx.host.read_file(pidfile))
        if master is None or now != master or not app.alive(now):
            died = f"master pid {master} died" if now == master else f"master pid {master} replaced by {now or 'none'}"
            return dict(result, ok=False, exited=app.slot_exited(ctx.hf, slot) or died, attempts=attempts)
        if clock.monotonic() >= end:
            return dict(result, attempts=attempts)
        again = app.probe(ctx.L.bind_address(slot), deadline=0.2, timeout=ctx.cfg.app.health_timeout)
        attempts += again.get("attempts", 1)
        if not again.get("ok"):
            out = dict(again, attempts=attempts)
            if again.get("status") is None:
                out["exited"] = app.slot_exited(ctx.hf, slot) or "it stopped answering right after its first answer"
            return out
        clock.sleep(0.1)


def evidence(ctx: Context, slot: str, log_offset: int) -> list[str]:
    """What a failed slot left behind: its error log since it started, its socket."""
    h, L = ctx.host, ctx.L
    lines: list[str] = []
    tail = ctx.app.log_since(L.error_log, log_offset).strip().splitlines()
    if not tail:
        tail = (h.read_file(L.supervisor_log(slot)) or b"").decode(errors="replace").strip().splitlines()
    failure = D.boot_failure("\n".join(tail))
    shown = list(failure.traceback) if failure and failure.traceback else tail[-25:]
    if shown:
        lines.append(f"from {L.error_log}:")
        lines += ["  " + t for t in shown]
    if not L.bind:
        st = h.stat(L.socket(slot))
        lines.append(f"socket {L.socket(slot)}: " + ("present" if st else "missing (gunicorn never bound it)"))
    return lines


def health_failure(ctx: Context, result: dict[str, Any]) -> str:
    a = ctx.cfg.app
    path = a.health_path
    if result.get("boot_failure"):
        return f"the app failed to boot: {result['boot_failure'].summary}"
    if result.get("exited"):
        return f"gunicorn started, then exited ({result['exited']}): the app crashed after start"
    if result.get("status"):
        body = " ".join(str(result.get("body") or "").split())[:100]
        hint = " (Django: add the server name to ALLOWED_HOSTS)" if "Bad Request (400)" in body else ""
        return f"{path} answered HTTP {result['status']} instead of 2xx{hint}"
    if result.get("timeout"):
        return f"{path} did not answer within {a.health_deadline} s ({result.get('error') or 'no answer'}): the app hangs or is too slow to start"
    return f"{path}: {result.get('error') or 'no answer'}"
