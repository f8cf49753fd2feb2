"""Host state: the argv (or the file) that reads a fact, and a pure parser of its output.

Each fact pairs a command for the executor, or the path of the file to read,
with a parser (unit-tested on recorded outputs, including empty and malformed
ones). The doctor's larger set of facts lives in `garrison.facts.doctor`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

# ---- files whose text is a fact (read with the executor's read_file) ------------

OS_RELEASE_FILE = "/etc/os-release"  # → parse_os_release
PID1_COMM_FILE = "/proc/1/comm"  # → parse_pid1
NGINX_CONF_FILE = "/etc/nginx/nginx.conf"  # → parse_nginx_user
NGINX_PID_FILE = "/run/nginx.pid"  # → parse_pid (Debian's nginx.conf: `pid /run/nginx.pid;`)
SSHD_PID_FILE = "/run/sshd.pid"  # → parse_pid
SSHD_CONFIG_FILE = "/etc/ssh/sshd_config"  # → parse_sshd_port (unless sshd runs with -f)
IPV6_FILE = "/proc/net/if_inet6"  # exists when the kernel has IPv6


@dataclass(frozen=True)
class OsRelease:
    id: str
    id_like: tuple[str, ...]
    version_id: str
    pretty: str

    @property
    def is_debian_family(self) -> bool:
        return self.id in ("debian", "ubuntu") or "debian" in self.id_like or "ubuntu" in self.id_like


def parse_os_release(text: str) -> OsRelease:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw]
        values[key] = parts[0] if parts else ""
    return OsRelease(
        id=values.get("ID", "unknown").lower(),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_id=values.get("VERSION_ID", ""),
        pretty=values.get("PRETTY_NAME", values.get("ID", "an unknown system")),
    )


def dpkg_status(packages: Iterable[str]) -> tuple[str, ...]:
    """Which of packages are installed → parse_dpkg_status."""
    return ("dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", *packages)


def parse_dpkg_status(text: str) -> set[str]:
    """Installed package names from `dpkg-query -W -f '${Package}\\t${db:Status-Abbrev}\\n'`."""
    installed = set()
    for line in text.splitlines():
        name, _, status = line.partition("\t")
        # "ii " = desired install, currently installed.
        if status.startswith("ii"):
            installed.add(name.split(":")[0])
    return installed


def parse_pid1(comm: str) -> bool:
    """True when PID 1 is systemd (from /proc/1/comm)."""
    return comm.strip() == "systemd"


def parse_nginx_user(nginx_conf: str) -> str:
    """The `user` nginx's workers run as (Debian: www-data)."""
    for line in nginx_conf.splitlines():
        words = line.split("#", 1)[0].replace(";", " ").split()
        if len(words) >= 2 and words[0] == "user":
            return words[1]
    return "www-data"


def parse_pid(text: str | bytes | None) -> int | None:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text.strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


# Processes whose real, effective, saved or filesystem uid is $1, as "PID STATE" lines:
# the same view as userdel's "user is currently used by process N" (which reads
# /proc/*/status, not the owner of /proc/<pid>: that is root for a non-dumpable process).
_USER_PROCESSES = (
    'exec awk -v uid="$1" \'FNR == 1 { st = "" } /^State:/ { st = $2 } '
    '/^Uid:/ { for (i = 2; i <= 5; i++) if ($i == uid) { split(FILENAME, p, "/"); print p[3], st; break } }\' '
    "/proc/[0-9]*/status 2>/dev/null"
)


def user_processes(uid: int) -> tuple[str, ...]:
    """The processes of a user, as "PID STATE" lines → running_pids."""
    return ("sh", "-c", _USER_PROCESSES, "garrison", str(int(uid)))


def running_pids(pid_states: str) -> list[int]:
    """PIDs from "PID STATE" lines whose process still runs: zombies (Z) and dead ones (X)
    hold nothing and can't be signalled; only their parent or init ends them."""
    pids = []
    for line in pid_states.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1] not in ("Z", "X", "x"):
            pids.append(int(fields[0]))
    return pids


def ufw_added() -> tuple[str, ...]:
    """The rules added to ufw, active or not → parse_ufw_added."""
    return ("ufw", "show", "added")


def parse_ufw_added(text: str) -> set[str]:
    """Rules from `ufw show added`, e.g. {"80/tcp", "22/tcp", "OpenSSH"}."""
    rules = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "ufw" and words[1] == "allow":
            rules.add(words[-1])
    return rules


def ufw_status() -> tuple[str, ...]:
    """→ parse_ufw_active."""
    return ("ufw", "status")


def parse_ufw_active(text: str) -> bool:
    return any(line.strip().lower() == "status: active" for line in text.splitlines())


def parse_sshd_port(config_text: str) -> int:
    for line in config_text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 2 and words[0].lower() == "port" and words[1].isdigit():
            return int(words[1])
    return 22


def parse_upstream_server(text: str) -> str | None:
    """The address of the first `server` line of an upstream include (the live slot)."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].replace(";", " ").split()
        if len(words) >= 2 and words[0] == "server":
            return words[1]
    return None


def nginx_processes() -> tuple[str, ...]:
    """Every process with its parent and title → parse_nginx_workers, count_nginx_draining."""
    return ("ps", "-eo", "pid=,ppid=,args=")


def parse_nginx_workers(ps_output: str, master: int | None) -> set[int]:
    """PIDs of the accepting workers of the nginx master `master`, from `ps -eo pid=,ppid=,args=`.

    Only that master's children count: other nginx instances may run on the host.
    """
    pids = set()
    for line in ps_output.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            if parts[2].strip() == "nginx: worker process" and int(parts[1]) == master:
                pids.add(int(parts[0]))
    return pids


def count_nginx_draining(ps_output: str, master: int | None) -> int:
    """Workers of `master` still finishing requests after a reload."""
    n = 0
    for line in ps_output.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) == master:
            n += parts[2].strip() == "nginx: worker process is shutting down"
    return n


def enabled_nginx_configs() -> tuple[str, ...]:
    """The files nginx includes for sites, one path a line; their texts → default_server_files."""
    return ("find", "/etc/nginx/sites-enabled", "/etc/nginx/conf.d", "-mindepth", "1", "-maxdepth", "1")


def default_server_files(configs: dict[str, str], port: int) -> list[str]:
    """Files with a `listen ... default_server` on `port` (nginx picks them for unknown hosts)."""
    found = []
    for path, text in configs.items():
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        for statement in re.split(r"[;{}]", code):
            words = statement.split()
            if len(words) >= 2 and words[0] == "listen" and "default_server" in words[2:]:
                if words[1].rsplit(":", 1)[-1] == str(port):
                    found.append(path)
                    break
    return found


# ---- worker processes and jobs -------------------------------------------------------

CROND_PID_FILE = "/run/crond.pid"  # → parse_pid (Debian's cron writes it)


def systemd_main_pid(unit: str) -> tuple[str, ...]:
    """→ parse_pid (0, i.e. None, when the unit runs nothing)."""
    return ("systemctl", "show", "--property", "MainPID", "--value", unit)


def parse_supervisor_status(text: str) -> dict[str, tuple[str, int | None]]:
    """`supervisorctl status` lines → {"group:name" or "name": (STATE, pid or None)}.

    e.g. "shop-worker:shop-worker-0   RUNNING   pid 4242, uptime 0:01:02"."""
    out: dict[str, tuple[str, int | None]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or not words[1].isupper():
            continue
        pid = None
        if len(words) >= 4 and words[2] == "pid":
            pid = parse_pid(words[3].rstrip(","))
        out[words[0]] = (words[1], pid)
    return out


def parse_job_record(text: str | bytes | None) -> dict[str, int | str] | None:
    """A job's .started or .finished file (JSON the job script writes), or None if unreadable."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("start"), int):
        return None
    return {k: v for k, v in data.items() if isinstance(v, int | str)}


def unit_properties(unit: str) -> tuple[str, ...]:
    """→ parse_unit_properties: systemd's view of a unit."""
    return ("systemctl", "show", "-p", "ActiveState", "-p", "SubState", "-p", "MainPID", "-p", "NRestarts", unit)


def parse_unit_properties(text: str) -> dict[str, str]:
    """KEY=VALUE lines of `systemctl show -p ...`."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
