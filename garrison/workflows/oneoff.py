"""`garrison run -- CMD ...`: a one-off command in the live release, as the app user, with the
release's venv and the app's environment (manage.py createsuperuser, flask shell).

The secrets reach it the way they reach hooks: garrison-exec reads the root-only env
file and drops to the app user, so they never appear in an argv. The caller runs the
argv with its own terminal (stdin, stdout, stderr, a TTY when it has one) and passes
the exit status through.
"""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison.errors import DeployError, HostError
from garrison.hosts import Executor
from garrison.project import Project
from garrison.state import AppOnHost


def command_argv(project: Project, host: Executor, command: tuple[str, ...]) -> tuple[str, ...]:
    """The argv that runs command in the live release on host."""
    if not command:
        raise DeployError("garrison run: name the command after --, e.g. garrison run -- python manage.py migrate")
    app = AppOnHost(project.config, host)
    L = app.L
    link = host.stat(L.current)
    if link is None or not link.link_target:
        raise DeployError(f"{project.config.app.name} is not deployed on {host.name} (no {L.current}); run: garrison up")
    # `current` is relative (releases/<id>): the release itself, so a deploy meanwhile can't move it.
    release = posixpath.normpath(posixpath.join(L.base, link.link_target))
    if not host.exists(app.tool.exec_helper):
        raise HostError(f"{host.name}: {app.tool.exec_helper} is missing; run `garrison up` once to install it")
    env = {
        "PATH": f"{release}/.venv/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": L.base,
        "VIRTUAL_ENV": f"{release}/.venv",
        "GARRISON_RELEASE": release.rsplit("/", 1)[-1],
    }
    return C.as_app(app.tool, L.env_file, project.config.user, release, env, command)
