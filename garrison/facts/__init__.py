"""Host state: the argv that reads a fact, and a pure parser of its output.

Each fact pairs a command (for the executor) with a parser (unit-tested on
recorded outputs, including empty and malformed ones).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass


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


def running_pids(pid_states: str) -> list[int]:
    """PIDs from "PID STATE" lines whose process still runs: zombies (Z) and dead ones (X)
    hold nothing and can't be signalled; only their parent or init ends them."""
    pids = []
    for line in pid_states.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1] not in ("Z", "X", "x"):
            pids.append(int(fields[0]))
    return pids


def parse_ufw_added(text: str) -> set[str]:
    """Rules from `ufw show added`, e.g. {"80/tcp", "22/tcp", "OpenSSH"}."""
    rules = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "ufw" and words[1] == "allow":
            rules.add(words[-1])
    return rules


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
