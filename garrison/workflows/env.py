"""`garrison env`: the app's environment (secrets) in shared/.env on the host.

The file is root-owned, mode 0600: the service manager reads it as root and
hands the values to gunicorn (systemd's EnvironmentFile; the root-only
supervisord program file). Values never reach logs, plans or error messages;
`list` masks them unless asked. A change restarts the app blue/green, so no
request fails.
"""

from __future__ import annotations

import re

from garrison import commands as C
from garrison.errors import ConfigError
from garrison.hosts import Executor
from garrison.project import Project
from garrison.state import AppOnHost
from garrison.workflows import CHANGED, Run
from garrison.workflows.up import restart

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not KEY_RE.match(key):
        raise ConfigError(f"env: expected KEY=VALUE with KEY made of letters, digits and _, got {key!r}")
    if "\n" in value or "\0" in value:
        raise ConfigError(f"env: {key}: values are one line (no newline or NUL)")
    return key, value


def render_env_file(env: dict[str, str]) -> str:
    """KEY="value" lines that systemd's EnvironmentFile and our parser read back identically."""
    lines = ["# Managed by `garrison env`; root-only (0600). The service manager passes these to the app."]
    for key in sorted(env):
        value = env[key].replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
        lines.append(f'{key}="{value}"')
    return "\n".join(lines) + "\n"


def read_env(project: Project, host: Executor) -> dict[str, str]:
    return AppOnHost(project.config, host).app_env()


def mask(value: str) -> str:
    return "*" * min(len(value), 8) if value else "(empty)"


def change_env(project: Project, host: Executor, run: Run, *, set_: dict[str, str], unset: list[str]) -> list[str]:
    """Apply the change under the deploy lock, then restart the current release blue/green."""
    u = AppOnHost(project.config, host)
    changed: list[str] = []

    def write() -> None:
        env = u.app_env()
        for key, value in set_.items():
            if env.get(key) != value:
                env[key] = value
                changed.append(f"set {key}")
        for key in unset:
            if env.pop(key, None) is not None:
                changed.append(f"unset {key}")
        if changed:
            host.write_file(u.L.env_file, render_env_file(env).encode(), mode=0o600)
        with run.step("env", f"{u.L.env_file} (root, 0600)") as st:
            st.status = CHANGED if changed else st.status
            st.detail = ", ".join(changed) if changed else "no change"

    if not u.read_state().get("current"):
        # Nothing deployed yet: just write the file; the first `up` reads it.
        user = project.config.user
        if host.run(C.user_exists(user), check=False).ok:
            host.ensure_dir(u.L.shared, mode=0o751, owner=user, group=user)
        else:
            host.ensure_dir(u.L.shared, mode=0o751)
        write()
        return changed
    restart(project, host, run, "environment changed", locked=write)
    return changed
