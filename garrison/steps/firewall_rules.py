"""ufw rules for a web host: SSH, the HTTP port and 443, shared by `up` and `provision`.

Only the rules; whether ufw gets enabled is the caller's decision (`provision`
enables it, `up` leaves an inactive firewall inactive).
"""

from __future__ import annotations

from garrison import commands as C
from garrison import facts as F
from garrison.hosts import Executor


def sshd_config_path(h: Executor) -> str:
    """The config file the running sshd was started with (-f), else the distribution's."""
    pid = F.parse_pid(h.read_file("/run/sshd.pid"))
    if pid:
        # sshd retitles itself ("sshd: /usr/sbin/sshd -D -f X [listener]"): split on spaces too.
        argv = (h.read_file(f"/proc/{pid}/cmdline") or b"").replace(b"\0", b" ").split()
        for i, word in enumerate(argv):
            if word == b"-f" and i + 1 < len(argv):
                return argv[i + 1].decode()
    return "/etc/ssh/sshd_config"


def ssh_port(h: Executor) -> int:
    return F.parse_sshd_port((h.read_file(sshd_config_path(h)) or b"").decode(errors="replace"))


def missing_rules(h: Executor, http_port: int) -> tuple[list[str], list[str]]:
    """(the rules wanted, the ones ufw lacks), the SSH rule first."""
    added = F.parse_ufw_added(h.run(F.ufw_added(), check=False).stdout)
    want = [f"{ssh_port(h)}/tcp", f"{http_port}/tcp", "443/tcp"]
    return want, [rule for rule in want if rule not in added]


def allow_ssh_and_web(h: Executor, http_port: int) -> tuple[list[str], list[str]]:
    """Add the missing rules, the SSH one first so that an active firewall never locks the
    operator out; returns (the rules wanted, the rules just added)."""
    want, opened = missing_rules(h, http_port)
    for rule in opened:
        h.run(C.ufw_allow(rule))
    return want, opened
