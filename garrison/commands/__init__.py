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





def file_size(path: str) -> tuple[str, ...]:
    return ("stat", "-c", "%s", path)


def tail_from(path: str, offset: int) -> tuple[str, ...]:
    """The bytes of path after offset (a log since a step began)."""
    return ("tail", "-c", f"+{offset + 1}", path)


def list_dir(*folders: str) -> tuple[str, ...]:
    """The entries directly inside folders (missing folders are skipped, rc 1)."""
    return ("find", *folders, "-mindepth", "1", "-maxdepth", "1")


def group_exists(group: str) -> tuple[str, ...]:
    return ("getent", "group", group)


def rename(src: str, dest: str) -> tuple[str, ...]:
    """Atomic rename within one filesystem; dest, when a folder, is replaced (-T)."""
    return ("mv", "-T", src, dest)





def copy_tree(src: str, dest: str) -> tuple[str, ...]:
    """A copy of src at dest with symlinks followed (a scratch tree to check a config in)."""
    return ("cp", "-rL", src, dest)


def rewrite_paths(folder: str, old: str, new: str) -> tuple[str, ...]:
    """Replace the path prefix old with new in every file under folder."""
    return ("find", folder, "-type", "f", "-exec", "sed", "-i", "-e", f"s#{old}#{new}#g", "{}", "+")


def list_sizes(folder: str) -> tuple[str, ...]:
    """"NAME SIZE" lines of the files directly in folder."""
    return ("find", folder, "-mindepth", "1", "-maxdepth", "1", "-printf", "%f %s\\n")


def as_app(tool: ToolLayout, env_file: str, user: str, cwd: str, env: dict[str, str], argv: Iterable[str]) -> tuple[str, ...]:
    """Run argv as the app user in cwd, with the app's secrets.

    garrison-exec (root) reads the root-only env file and drops to the user, so the
    secrets never appear in an argv (ps, /proc/*/cmdline) or in a remote shell's
    command line; only the non-secret variables in env are on this one."""
    return (
        "/usr/bin/python3", tool.exec_helper, env_file, user, "--",
        "/usr/bin/env", "-C", cwd, *(f"{k}={v}" for k, v in env.items()), *argv,
    )


def as_app_shell(tool: ToolLayout, env_file: str, user: str, cwd: str, env: dict[str, str], command: str) -> tuple[str, ...]:
    """A shell command line (a hook) run like as_app."""
    return as_app(tool, env_file, user, cwd, env, ("/bin/sh", "-c", command))


def find_named(folder: str, pattern: str) -> tuple[str, ...]:
    return ("find", folder, "-name", pattern)


def process_age(pid: int) -> tuple[str, ...]:
    """Seconds since pid started."""
    return ("ps", "-o", "etimes=", "-p", str(pid))


def children(pid: int) -> tuple[str, ...]:
    return ("ps", "-o", "pid=", "--ppid", str(pid))


def make_dirs_as(user: str, path: str) -> tuple[str, ...]:
    """mkdir -p as the app user (its own data folders)."""
    return ("runuser", "-u", user, "--", "mkdir", "-p", path)


def copy_preserving(src: str, dest: str) -> tuple[str, ...]:
    return ("cp", "-a", "--", src, dest)


def chown_tree(user: str, path: str) -> tuple[str, ...]:
    return ("chown", "-R", "--no-dereference", f"{user}:{user}", path)


def pip_freeze(venv: str, uv: str | None) -> tuple[str, ...]:
    """name==version lines of what a venv holds."""
    if uv:
        return (uv, "pip", "freeze", "--python", f"{venv}/bin/python")
    return (f"{venv}/bin/pip", "freeze", "--disable-pip-version-check")


def uv_compile(uv: str, python: str, source_file: str, extra: Iterable[str]) -> tuple[str, ...]:
    """What a requirements file (or pyproject.toml) alone resolves to, pinned, on stdout."""
    return (uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python", python, *extra, source_file)
def job_run(tool: ToolLayout, layout: Layout, user: str, name: str) -> tuple[str, ...]:
    """A job's script, run as root through garrison-exec (the env file's secrets, then the app user):
    the cron line, and `garrison jobs run` where PID 1 is not systemd."""
    return ("/usr/bin/python3", tool.exec_helper, layout.env_file, user, "--", "/bin/sh", layout.job_script(name))


def cron_daemon() -> tuple[str, ...]:
    """Start Debian's cron (it detaches and writes /run/crond.pid)."""
    return ("/usr/sbin/cron",)


def tail(path: str, lines: int, follow: bool) -> tuple[str, ...]:
    """The last lines of a log; with follow, what it gets next too (across rotations: -F)."""
    return ("tail", "-n", str(lines), *(("-F",) if follow else ()), path)


def journal(unit: str, lines: int, follow: bool) -> tuple[str, ...]:
    """What systemd's journal holds of a unit (its stdout and stderr, its starts and stops)."""
    return ("journalctl", "-u", unit, "-n", str(lines), "--no-pager", *(("-f",) if follow else ()))


def whoami_uid() -> tuple[str, ...]:
    return ("id", "-u")


def whoami() -> tuple[str, ...]:
    return ("id", "-un")


def noop() -> tuple[str, ...]:
    """A command that proves a connection (and sudo) works."""
    return ("true",)


def install_deb(path: str) -> tuple[str, ...]:
    return ("dpkg", "-i", path)


def add_login_user(user: str, comment: str) -> tuple[str, ...]:
    """A user that logs in (the deploy user): a home and a shell."""
    return ("useradd", "--create-home", "--shell", "/bin/bash", "--comment", comment, user)


def passwd_entry(user: str) -> tuple[str, ...]:
    return ("getent", "passwd", user)


def check_sudoers(path: str) -> tuple[str, ...]:
    return ("visudo", "-cf", path)


def replace_file(src: str, dest: str) -> tuple[str, ...]:
    return ("mv", "-f", src, dest)


def ufw_enable() -> tuple[str, ...]:
    return ("ufw", "--force", "enable")


def sshd_check(config: str) -> tuple[str, ...]:
    return ("sshd", "-t", "-f", config)


def chown(user: str, path: str) -> tuple[str, ...]:
    return ("chown", f"{user}:{user}", path)


def newest_first(folder: str) -> tuple[str, ...]:
    return ("ls", "-1t", folder)


def system_venv(venv: str) -> tuple[str, ...]:
    """A venv made with the distribution's python (Garrison's own, on the host)."""
    return ("/usr/bin/python3", "-m", "venv", venv)


def probe(source: str, target: str, path: str, host: str, deadline: float, timeout: float) -> tuple[str, ...]:
    """The health probe (garrison/hosts/probe.py, passed as source) run ON the host: GET path
    with Host: host at target (a socket or host:port) until 2xx or the deadline; JSON out."""
    return ("/usr/bin/python3", "-c", source, target, path, host, str(deadline), str(timeout))
