"""Step `supervisor`: supervisord running where PID 1 is not systemd, with a boot entry
(cron @reboot) so that gunicorn comes back after a reboot."""

from __future__ import annotations

from garrison import commands as C
from garrison.errors import HostError
from garrison.steps import Context, Decision, change, skip, unchanged


def boot_entry(ctx: Context) -> bytes:
    T = ctx.tool
    line = f"@reboot root mkdir -p {T.run_dir} && {' '.join(C.supervisord(T))}\n"
    return ("# Garrison: start supervisord (and with it every app's gunicorn) at boot.\n" + line).encode()


def can_boot(ctx: Context) -> bool:
    return ctx.host.exists("/etc/cron.d") and ctx.host.which("cron") is not None


def wait_supervisor(ctx: Context, deadline: float = 15.0) -> None:
    end = ctx.clock.monotonic() + deadline
    while ctx.clock.monotonic() < end:
        if ctx.host.run(C.supervisorctl(ctx.tool, "pid"), check=False).ok:
            return
        ctx.clock.sleep(0.1)
    raise HostError(f"{ctx.host.name}: supervisord did not answer within {deadline:.0f} s; see {ctx.tool.log_dir}/supervisord.log")


class Supervisor:
    name = "supervisor"

    def what(self, ctx: Context) -> str:
        return "supervisord (restarts gunicorn, starts it at boot)"

    def decide(self, ctx: Context) -> Decision:
        if ctx.hf.systemd:
            return skip(self.name, "systemd is PID 1: it supervises the app")
        todo = []
        running = ctx.app.supervisord_pid() is not None
        if not running:
            todo.append("start supervisord")
        elif ctx.changed_files.get("supervisord"):
            todo.append("reload supervisord's config")
        boot = can_boot(ctx)
        if boot and not ctx.host.has_file(ctx.tool.boot_entry, boot_entry(ctx)):
            todo.append(f"boot entry {ctx.tool.boot_entry}")
        if todo:
            return change(self.name, "; ".join(todo), data=(running, boot))
        note = "" if boot else "; no systemd and no cron here: start supervisord at boot with " + " ".join(C.supervisord(ctx.tool))
        return unchanged(self.name, "supervisord running" + note)

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, T = ctx.host, ctx.tool
        running, boot = decision.data
        if not running:
            h.ensure_dir(T.run_dir, mode=0o755)
            h.run(C.supervisord(T))
            wait_supervisor(ctx)
        elif ctx.changed_files.get("supervisord"):
            h.run(C.supervisorctl(T, "reread"))
        if boot:
            h.ensure_file(T.boot_entry, boot_entry(ctx))
        return decision.reason.replace("start ", "started ").replace("reload ", "reloaded ")
