"""`up`, `deploy`, `rollback`, a restart and `--plan`: compositions of steps (garrison/steps/).

Order matters and is chosen so that a failure never takes down what serves:
packages → tool venv → user and folders → (deploy lock) → release → venv →
config files → service manager → release hook → new slot started and
health-checked on its own socket → nginx pointed at it (validated before it
goes live) → old slot stopped → TLS → catch-all → site → firewall → health
through nginx → pruning. A new release always starts in the idle slot
(blue/green), so a release that fails its health check leaves the previous
one serving. `--plan` runs the same decisions and applies nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from garrison.clock import SYSTEM, Clock
from garrison.hosts import Executor
from garrison.project import Project
from garrison.steps import Context, Decision, Step, execute
from garrison.steps.config_files import ConfigFiles
from garrison.steps.drain import Drain
from garrison.steps.firewall import Firewall
from garrison.steps.health import Health
from garrison.steps.hook import FirstDeployHook, PostDeployHook, ReleaseHook
from garrison.steps.jobs import Jobs
from garrison.steps.persist import Persist
from garrison.steps.processes import Processes
from garrison.steps.prune import Prune
from garrison.steps.release import Release, Target
from garrison.steps.site import CatchAll, Site
from garrison.steps.slot import Slot
from garrison.steps.supervisor import Supervisor
from garrison.steps.system import System
from garrison.steps.tls import Tls, preflight
from garrison.steps.tool import Tool
from garrison.steps.upstream import Upstream
from garrison.steps.user import User
from garrison.steps.venv import Venv
from garrison.workflows import Run

PREPARE: list[Step] = [System(), Tool(), User()]


def serving_steps(kept_release: bool) -> list[Step]:
    """Everything under the deploy lock; a rollback or restart runs a kept release."""
    return [
        *([Target()] if kept_release else [Release(), Venv()]),
        Persist(), ConfigFiles(), Supervisor(), ReleaseHook(), FirstDeployHook(), Slot(), Upstream(), Drain(), PostDeployHook(),
        Processes(), Jobs(),
        Tls(), CatchAll(), Site(), Firewall(), Health(), Prune(),
    ]


def context(project: Project, host: Executor, run: Run | None = None, *, wheelhouse: Path | None = None,
            clock: Clock = SYSTEM, planning: bool = False) -> Context:
    return Context(project=project, host=host, run=run or Run(), wheelhouse=wheelhouse, clock=clock, planning=planning)


def converge(
    ctx: Context,
    *,
    rollback_to: str | None = None,
    rollback: bool = False,
    restart: str | None = None,
    locked: Callable[[], None] | None = None,
) -> list[Decision]:
    """Deploy the source tree; or roll back; or, with `restart` (a reason), restart the
    current release blue/green. `locked` runs first under the deploy lock (env changes)."""
    ctx.rollback, ctx.rollback_to, ctx.restart = rollback, rollback_to, restart
    decisions = execute(ctx, PREPARE)
    preflight(ctx)

    def serve() -> list[Decision]:
        if locked is not None:
            locked()
        app = ctx.app
        ctx.state = app.read_state()
        ctx.live = app.live_slot()
        kept = rollback or (restart is not None and bool(ctx.state.get("current")))
        out = execute(ctx, serving_steps(kept))
        if not ctx.planning:
            app.write_state(ctx.state)
        return out

    if ctx.planning:
        return decisions + serve()
    holder = f"garrison (pid {os.getpid()} on {socket.gethostname()}) since {ctx.clock.now():%Y-%m-%d %H:%M:%S} UTC"
    with ctx.host.lock(ctx.L.lock, holder):
        return decisions + serve()


def up(project: Project, host: Executor, run: Run, *, wheelhouse: Path | None = None) -> Run:
    converge(context(project, host, run, wheelhouse=wheelhouse))
    return run


def rollback(project: Project, host: Executor, run: Run, release: str | None = None, *,
             wheelhouse: Path | None = None) -> Run:
    converge(context(project, host, run, wheelhouse=wheelhouse), rollback_to=release, rollback=True)
    return run


def restart(project: Project, host: Executor, run: Run, reason: str, *, locked: Callable[[], None] | None = None,
            wheelhouse: Path | None = None) -> Run:
    converge(context(project, host, run, wheelhouse=wheelhouse), restart=reason, locked=locked)
    return run


def plan(project: Project, host: Executor, *, wheelhouse: Path | None = None, rollback_to: str | None = None,
         rollback: bool = False) -> list[Decision]:
    """What `up` (or a rollback) would do, step by step, with file diffs; touches nothing."""
    return converge(context(project, host, wheelhouse=wheelhouse, planning=True), rollback_to=rollback_to, rollback=rollback)


def sample_project_path() -> Path:
    from garrison.project import SAMPLE_APP_DIR

    return Path(os.fspath(SAMPLE_APP_DIR))
