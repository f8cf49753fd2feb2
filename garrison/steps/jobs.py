"""Step `jobs`: the app's scheduled jobs ([jobs.NAME]) on the host's scheduler.

Where PID 1 is systemd, each job is a oneshot service started by its timer
(<app>-job-NAME.timer, enabled); elsewhere one file, /etc/cron.d/garrison-<app>,
holds a line per job, and cron is installed (and started) when missing. Either
way a run is the job's script (/etc/garrison/<app>/job-NAME.sh), which takes the
job's lock (a run still going makes the next one skip, and says so in the
job's log), resolves the `current` link once (the run stays in that release
while deploys come and go) and records its start and its end (duration, exit
code) in /srv/<app>/jobs/ for `garrison status`.

Nothing here stops a run in progress: rewriting a timer, a unit or the cron
file, or a daemon-reload, leaves a running job alone.
"""

from __future__ import annotations

from garrison import commands as C
from garrison import facts as F
from garrison import render as R
from garrison.config.model import Job
from garrison.errors import HostError
from garrison.steps import Context, Decision, change, file_diff, skip, unchanged

File = tuple[str, str, int]  # path, text, mode


def here(ctx: Context) -> dict[str, Job]:
    """The jobs that run on this host: each on exactly one, its `host` or the first app host."""
    cfg = ctx.cfg
    if ctx.host.name not in {h.name for h in cfg.hosts}:
        return dict(cfg.jobs)  # this machine (`garrison up`), not one of [[hosts]]
    first = next((h.name for h in cfg.hosts if "app" in h.roles), None)
    return {n: j for n, j in cfg.jobs.items() if (j.host or first) == ctx.host.name}


def files(ctx: Context, names: list[str]) -> list[File]:
    cfg, L = ctx.cfg, ctx.L
    out: list[File] = [(L.job_script(n), R.job_script(cfg, L, n), 0o644) for n in names]
    if ctx.hf.systemd:
        for n in names:
            out += [(L.job_unit(n), R.job_unit(cfg, L, n), 0o644), (L.job_timer(n), R.job_timer(cfg, L, n), 0o644)]
    elif names:
        # cron ignores a file that others may write; 0644 root, as Debian's own.
        out.append((L.cron_file, R.cron_jobs(cfg, L, names, ctx.tool), 0o644))
    return out


def cron_running(ctx: Context) -> bool:
    return ctx.app.alive(F.parse_pid(ctx.host.read_file(F.CROND_PID_FILE)))


def folders_ok(ctx: Context, names: list[str]) -> bool:
    """The jobs folder (the app user's: locks and records) and each job's log, owned by the app user."""
    h, L, user = ctx.host, ctx.L, ctx.cfg.user
    st = h.stat(L.jobs_dir)
    if st is None or (st.is_dir, st.mode, st.owner) != (True, 0o750, user):
        return False
    return all((s := h.stat(L.job_log(n))) is not None and s.owner == user for n in names)


class Jobs:
    name = "jobs"

    def what(self, ctx: Context) -> str:
        return "scheduled jobs (" + ("systemd timers" if ctx.hf.systemd else "cron") + ")"

    def decide(self, ctx: Context) -> Decision:
        h, L = ctx.host, ctx.L
        want = sorted(here(ctx))
        recorded: list[str] = list(ctx.state.get("jobs", []))
        if not want and not recorded:
            return skip(self.name, "no [jobs]" if not ctx.cfg.jobs else "no [jobs] for this host")
        stale = [f for f in files(ctx, want) if not h.has_file(f[0], f[1].encode(), mode=f[2])]
        diff = [ln for path, text, _ in stale for ln in file_diff(path, h.read_file(path), text)]
        todo = []
        if stale:
            todo.append("write " + ", ".join(path.rsplit("/", 1)[-1] for path, _, _ in stale))
        gone = sorted(n for n in recorded if n not in want)
        if gone:
            todo.append("remove " + ", ".join(gone))
        if want and not folders_ok(ctx, want):
            todo.append(f"folder {L.jobs_dir} and the jobs' logs")
        cron = {"install": False, "start": False}
        if ctx.hf.systemd:
            idle = [n for n in want if not h.run(C.systemctl("is-active", "--quiet", L.job_timer_unit(n)), check=False).ok]
            if idle:
                todo.append("enable and start " + ", ".join(L.job_timer_unit(n) for n in idle))
        elif want:
            cron["install"] = h.which("cron") is None
            cron["start"] = not cron_running(ctx)
            if cron["install"]:
                todo.append("install cron")
            if cron["start"]:
                todo.append("start cron")
        elif h.exists(L.cron_file):
            todo.append(f"remove {L.cron_file}")
        if not todo:
            how = "systemd timers" if ctx.hf.systemd else "cron"
            return unchanged(self.name, ", ".join(f"{n} ({ctx.cfg.jobs[n].schedule})" for n in want) + f" scheduled by {how}")
        return change(self.name, "; ".join(todo), diff, data=(want, gone, stale, cron))

    def apply(self, ctx: Context, decision: Decision) -> str:
        want, gone, stale, cron = decision.data
        h, L, user = ctx.host, ctx.L, ctx.cfg.user
        if gone:
            remove(ctx, gone)
        if want:
            h.ensure_dir(L.jobs_dir, mode=0o750, owner=user, group=user)
            for n in want:
                # The cron line appends to the log as root before the script drops to the user.
                if not h.exists(L.job_log(n)):
                    h.write_file(L.job_log(n), b"", mode=0o640, owner=user, group=user)
                else:
                    h.run(C.chown(user, L.job_log(n)))
        if cron["install"]:
            try:
                h.run(C.apt_install(["cron"]), env=C.APT_ENV, timeout=1200)
            except HostError:
                h.run(C.apt_update(), env=C.APT_ENV, timeout=600)
                h.run(C.apt_install(["cron"]), env=C.APT_ENV, timeout=1200)
        for path, text, mode in stale:
            h.write_file(path, text.encode(), mode=mode)
        if ctx.hf.systemd:
            h.run(C.systemctl("daemon-reload"))
            if want:
                h.run(C.systemctl("enable", "--now", *(L.job_timer_unit(n) for n in want)))
        elif not want:
            h.remove(L.cron_file)
        elif cron["start"] or (cron["install"] and not cron_running(ctx)):
            h.run(C.cron_daemon())
        ctx.state["jobs"] = want
        ctx.app.write_state(ctx.state)
        return decision.reason


def remove(ctx: Context, names: list[str]) -> None:
    """Unschedule jobs (a run in progress finishes) and remove their files; `down` uses it too."""
    h, L = ctx.host, ctx.L
    if ctx.hf.systemd:
        timers = [L.job_timer_unit(n) for n in names]
        if timers:
            h.run(C.systemctl("disable", "--now", *timers), check=False)
        for n in names:
            h.remove(L.job_timer(n))
            h.remove(L.job_unit(n))
        h.run(C.systemctl("daemon-reload"), check=False)
    for n in names:
        h.remove(L.job_script(n))
