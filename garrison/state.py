"""Read-only questions about an app on a host: its state file, live slot, env, processes.

Any workflow asks these without building a deploy: `status`, `doctor`, `env`,
`down`, the fleet and every step share this one module. Nothing here changes a
host except `write_state`, the single writer of garrison-state.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from garrison import commands as C
from garrison import facts as F
from garrison.config import Config
from garrison.hosts import Executor
from garrison.layout import SLOTS, Layout, ToolLayout


@dataclass
class HostFacts:
    """What a host is, read once per run: which service manager, IPv6, nginx's user."""

    systemd: bool
    ipv6: bool
    nginx_user: str
    uv: str | None = None


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of shared/.env, read exactly as garrison-exec reads them on the host."""
    from garrison.hosts.garrison_exec import parse_env

    return parse_env(text)


def probe_source() -> str:
    return resources.files("garrison.hosts").joinpath("probe.py").read_text()


@dataclass
class AppOnHost:
    """One app (its config) on one host (an executor): the queries, no deploy logic."""

    cfg: Config
    host: Executor
    tool: ToolLayout = field(default_factory=ToolLayout)

    @property
    def L(self) -> Layout:
        return Layout.of(self.cfg)

    # -- the host ------------------------------------------------------------
    def host_facts(self) -> HostFacts:
        h = self.host
        return HostFacts(
            systemd=F.parse_pid1((h.read_file("/proc/1/comm") or b"").decode()),
            ipv6=h.exists("/proc/net/if_inet6"),
            nginx_user=F.parse_nginx_user((h.read_file("/etc/nginx/nginx.conf") or b"").decode(errors="replace")),
        )

    # -- the state file ------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        raw = self.host.read_file(self.L.state_file)
        if not raw:
            return {}
        try:
            state = json.loads(raw)
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        state.pop("live_slot", None)  # the upstream include says which slot is live
        self.host.write_file(self.L.state_file, json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")

    def live_slot(self) -> str | None:
        """The slot nginx sends traffic to, read from the upstream include (the truth)."""
        L = self.L
        server = F.parse_upstream_server((self.host.read_file(L.nginx_upstream) or b"").decode(errors="replace"))
        for slot in SLOTS:
            if server == L.upstream_server(slot):
                return slot
        return None

    def app_env(self) -> dict[str, str]:
        return parse_env_file((self.host.read_file(self.L.env_file) or b"").decode(errors="replace"))

    # -- processes -------------------------------------------------------------
    def alive(self, pid: int | None) -> bool:
        return pid is not None and self.host.run(C.kill("0", pid), check=False).ok

    def supervisord_pid(self) -> int | None:
        pid = F.parse_pid(self.host.read_file(self.tool.supervisord_pid))
        return pid if self.alive(pid) else None

    def slot_running(self, facts: HostFacts, slot: str) -> bool:
        if facts.systemd:
            return self.host.run(C.systemctl("is-active", "--quiet", self.L.systemd_instance(slot)), check=False).ok
        res = self.host.run(C.supervisorctl(self.tool, "status", self.L.supervisor_program(slot)), check=False)
        return "RUNNING" in res.stdout

    def slot_exited(self, facts: HostFacts, slot: str) -> str | None:
        """The manager's word when a slot's gunicorn died after starting, else None."""
        if facts.systemd:
            res = self.host.run(C.systemctl("is-failed", self.L.systemd_instance(slot)), check=False)
            return "systemd reports the unit failed" if res.ok else None
        res = self.host.run(C.supervisorctl(self.tool, "status", self.L.supervisor_program(slot)), check=False)
        words = res.stdout.split()
        if len(words) >= 2 and words[1] in ("BACKOFF", "EXITED", "FATAL"):
            return f"supervisord: {' '.join(words[1:])}"
        return None

    def nginx_pid(self) -> int | None:
        return F.parse_pid(self.host.read_file(F.NGINX_PID_FILE))

    def nginx_running(self) -> bool:
        return self.alive(self.nginx_pid())

    def nginx_workers(self) -> set[int]:
        """PIDs of nginx workers that accept new connections (not the ones shutting down)."""
        return F.parse_nginx_workers(self.host.run(F.nginx_processes(), check=False).stdout, self.nginx_pid())

    def nginx_draining(self) -> int:
        """How many nginx workers of an older config are still finishing requests."""
        return F.count_nginx_draining(self.host.run(F.nginx_processes(), check=False).stdout, self.nginx_pid())

    # -- logs and probes -----------------------------------------------------
    def log_size(self, path: str) -> int:
        st = self.host.run(C.file_size(path), check=False)
        return int(st.stdout.strip()) if st.ok and st.stdout.strip().isdigit() else 0

    def log_since(self, path: str, offset: int) -> str:
        res = self.host.run(C.tail_from(path, offset), check=False)
        return res.stdout if res.ok else ""

    def probe(self, target: str, deadline: float = 30.0, timeout: float = 5.0) -> dict[str, Any]:
        """GET the health path at target (a socket path or host:port) from ON the host."""
        a, s = self.cfg.app, self.cfg.server
        res = self.host.run(
            C.probe(probe_source(), target, a.health_path, s.names[0], deadline, timeout),
            check=False,
            timeout=deadline + 30,
        )
        try:
            result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
            return result
        except (ValueError, IndexError):
            return {"ok": False, "status": None, "error": (res.stderr.strip() or "probe gave no answer")[-300:]}

    def release_venv(self, rid: str) -> str | None:
        """The venv hash a kept release links to, when that venv is complete."""
        st = self.host.stat(f"{self.L.release(rid)}/.venv")
        if st is None or not st.link_target or not self.host.exists(f"{st.link_target}/.garrison-complete"):
            return None
        return st.link_target.rstrip("/").rsplit("/", 1)[-1]
