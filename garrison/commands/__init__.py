"""Model → argv tuples: what to run on a host, never shell strings.

Pure. The workflows hand these tuples to an executor, which quotes them once
(SSH) or passes them straight to exec (local). Unit tests compare tuples.
The argv that only reads a fact lives in `garrison.facts`, beside its parser.
"""

from __future__ import annotations

from collections.abc import Iterable

# Argv that reads a fact lives in garrison.facts, beside its parser; these two names
# stay importable from here until the workflows use facts' own (issue 12).
from garrison.facts import dpkg_status as dpkg_status
from garrison.facts import user_processes as user_processes
from garrison.layout import Layout, ToolLayout

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}

# The system packages `up` needs; the app's venv is built with the distribution's Python.
BASE_PACKAGES = ("nginx", "python3-venv")


def apt_update() -> tuple[str, ...]:
    return ("apt-get", "update", "-q")


def apt_install(packages: Iterable[str]) -> tuple[str, ...]:
    return ("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages)


def add_system_user(user: str, home: str) -> tuple[str, ...]:
    """A system user with its own group, no login shell and no password."""
    return (
        "useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
        "--shell", "/usr/sbin/nologin", "--comment", f"{user} app (garrison)", user,
    )


def delete_user(user: str) -> tuple[str, ...]:
    return ("userdel", user)


def delete_group(group: str) -> tuple[str, ...]:
    return ("groupdel", group)


def extract_tar(dest: str) -> tuple[str, ...]:
    """Unpack a gzipped tar from stdin into dest, as root but owned by root with the
    umask's modes (GNU tar also refuses absolute and `..` member names). The same
    command on every host: no dependence on the Python that runs Garrison (Debian 12's
    3.11.2 has no tarfile extraction filters)."""
    return ("tar", "-xzf", "-", "-C", dest, "--no-same-owner", "--no-same-permissions")


def user_exists(user: str) -> tuple[str, ...]:
    return ("id", "-u", user)


def make_venv(python: str, venv: str, uv: str | None) -> tuple[str, ...]:
    if uv:
        return (uv, "venv", "--quiet", "--python", python, venv)
    return (python, "-m", "venv", venv)


def pip_install(venv: str, uv: str | None, args: Iterable[str]) -> tuple[str, ...]:
    if uv:
        return (uv, "pip", "install", "--quiet", "--python", f"{venv}/bin/python", *args)
    return (f"{venv}/bin/pip", "install", "--quiet", "--disable-pip-version-check", *args)


def nginx_test(conf: str | None = None) -> tuple[str, ...]:
    return ("nginx", "-t", "-q", "-c", conf) if conf else ("nginx", "-t", "-q")


def nginx_start() -> tuple[str, ...]:
    return ("nginx",)


def nginx_reload() -> tuple[str, ...]:
    return ("nginx", "-s", "reload")


def supervisorctl(tool: ToolLayout, *args: str) -> tuple[str, ...]:
    return (f"{tool.venv}/bin/supervisorctl", "-c", tool.supervisord_conf, *args)


def supervisord(tool: ToolLayout) -> tuple[str, ...]:
    return (f"{tool.venv}/bin/supervisord", "-c", tool.supervisord_conf)


def systemctl(*args: str) -> tuple[str, ...]:
    return ("systemctl", *args)


def slot_start(layout: Layout, tool: ToolLayout, systemd: bool, slot: str) -> tuple[str, ...]:
    if systemd:
        return systemctl("enable", "--now", layout.systemd_instance(slot))
    return supervisorctl(tool, "update", layout.supervisor_program(slot))


def slot_restart(layout: Layout, tool: ToolLayout, systemd: bool, slot: str) -> tuple[str, ...]:
    if systemd:
        return systemctl("restart", layout.systemd_instance(slot))
    return supervisorctl(tool, "restart", layout.supervisor_program(slot))


def ufw_allow(rule: str) -> tuple[str, ...]:
    return ("ufw", "allow", rule)


def kill(signal: str, pid: int) -> tuple[str, ...]:
    return ("kill", f"-{signal}", str(pid))


def certbot_certonly(names: Iterable[str], webroot: str, email: str) -> tuple[str, ...]:
    """Obtain a certificate through nginx's webroot (HTTP-01): nginx keeps serving."""
    domains = [arg for n in names for arg in ("-d", n)]
    return (
        "certbot", "certonly", "--webroot", "-w", webroot, *domains, "--non-interactive", "--agree-tos",
        "-m", email, "--keep-until-expiring", "--cert-name", next(iter(names)),
    )
