"""Opening an SSH connection as ssh would: ~/.ssh/config, ProxyJump hops, identity files, one-line errors.

~/.ssh/config is honoured (Host aliases, HostName, Port, User, IdentityFile,
ProxyJump, ...). ProxyJump hops are opened here, not by asyncssh, so that
they get the same known_hosts, trust policy, keys and error messages as the
host itself. Every failure is one HostError line that names the host and,
where there is one, the fix.
"""

from __future__ import annotations

import asyncio
import errno
import getpass
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from garrison.errors import HostError
from garrison.hosts.ssh_hostkeys import HostKeyPolicy, client_factory, tilde

if TYPE_CHECKING:
    # For annotations only: asyncssh is imported where a connection is made,
    # so that commands that never open one don't pay for importing it.
    import asyncssh

SSH_CONFIG_DEFAULT = "~/.ssh/config"


class Target:
    """Where one hop connects, after ~/.ssh/config: alias → HostName, Port, User, ProxyJump."""

    def __init__(self, alias: str, host: str, port: int, user: str, jump: str | None):
        self.alias, self.host, self.port, self.user, self.jump = alias, host, port, user, jump

    @property
    def hostport(self) -> str:
        return self.host if self.port == 22 else f"{self.host}:{self.port}"

    def label(self) -> str:
        if self.alias == self.host:
            return self.hostport
        return f"{self.alias} ({self.hostport})"


class Dialer:
    """Resolves aliases through ssh_config and opens connections (with their jump hops) under one trust policy."""

    def __init__(
        self,
        name: str,
        *,
        known_hosts: str | None,
        trust_on_first_use: bool,
        config_paths: list[str],
        identity_files: Sequence[str] | None,
        connect_timeout: float,
    ):
        self.name = name  # the executor's name, for messages about the whole chain
        self.known_hosts = known_hosts
        self.trust_on_first_use = trust_on_first_use
        self.config_paths = config_paths
        self.identity_files = identity_files
        self.connect_timeout = connect_timeout

    def resolve(self, alias: str, user: str | None, port: int | None) -> Target:
        """alias after ssh_config; an explicit user or port wins, as on the ssh command line."""
        from asyncssh.config import SSHClientConfig

        try:
            local_user = getpass.getuser()
        except Exception:
            local_user = "root"
        try:
            cfg = SSHClientConfig.load(
                None, self.config_paths, False, False, False, local_user, user or (), alias, port or ()
            )
        except (OSError, ValueError) as exc:
            raise HostError(f"{alias}: cannot read ssh config {self.config_paths[0]}: {exc}") from None
        host = str(cfg.get("Hostname") or alias)
        port_v = int(port or cast("int | str | None", cfg.get("Port")) or 22)
        user_v = str(user or cfg.get("User") or "root")
        jump = cfg.get("ProxyJump")
        jump = None if not jump or str(jump).lower() == "none" else str(jump)
        return Target(alias, host, port_v, user_v, jump)

    async def open(
        self, target: Target, depth: int = 0, tunnel: asyncssh.SSHClientConnection | None = None
    ) -> tuple[asyncssh.SSHClientConnection, list[asyncssh.SSHClientConnection]]:
        """Connect to target (through its ProxyJump hops, when there are any): the connection and its hops."""
        import asyncssh

        jumps: list[Any] = []
        if tunnel is None and target.jump:
            if depth > 4:
                raise HostError(f"{self.name}: ProxyJump chain for {target.alias} is too long (a loop?)")
            prev = None
            for i, hop in enumerate(target.jump.split(",")):
                hop_target = self.resolve(*_parse_hop(hop))
                try:
                    conn, more = await self.open(hop_target, depth + 1, prev if i else None)
                except HostError as exc:
                    for c in reversed(jumps):
                        c.close()
                    raise HostError(f"{exc} (jump host for {target.label()})") from None
                jumps += more + [conn]
                prev = conn
            tunnel = prev

        policy = HostKeyPolicy(self.known_hosts, self.trust_on_first_use)
        options: dict[str, Any] = dict(
            port=target.port,
            username=target.user,
            config=self.config_paths,
            known_hosts=policy.known_hosts_arg(),
            client_factory=client_factory(policy),
            connect_timeout=self.connect_timeout,
            tunnel=tunnel,  # never None→config: hops are opened above, with our policy
        )
        if self.identity_files is not None:
            options["client_keys"] = self.identity_files  # (the ssh-agent is still asked, as by ssh -i)
        label = target.label()
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(target.alias, **options), timeout=self.connect_timeout + 2
            )
        except asyncssh.HostKeyNotVerifiable:
            for c in reversed(jumps):
                c.close()
            raise HostError(policy.refusal(label, target.host, target.port, via_jump=bool(target.jump))) from None
        except BaseException as exc:
            for c in reversed(jumps):
                c.close()
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise
            raise HostError(self._connect_message(target, label, exc)) from None
        return conn, jumps

    def _connect_message(self, target: Target, label: str, exc: BaseException) -> str:
        import asyncssh

        user = target.user
        if isinstance(exc, asyncssh.PermissionDenied):
            offered = ", ".join(tilde(p) for p in self.identity_files) if self.identity_files else (
                "IdentityFile, ~/.ssh/id_* and the ssh-agent"
            )
            return (
                f"{label}: login as {user} refused (tried keys from {offered}); put your public key in "
                f"~{user}/.ssh/authorized_keys on the host, or point identity_files/IdentityFile at the right key"
            )
        if isinstance(exc, FileNotFoundError):
            return f"{label}: identity file not found: {exc.filename or exc}"
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return f"{label}: no SSH answer within {self.connect_timeout:g} s (host down, or a firewall drops port {target.port})"
        if isinstance(exc, ConnectionRefusedError):
            return f"{label}: connection refused on port {target.port} (is sshd running there?)"
        if isinstance(exc, socket.gaierror):
            return f"{label}: cannot resolve host name {target.host!r}: {exc.strerror or exc}"
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"{label}: host unreachable ({os.strerror(exc.errno)})"
        if isinstance(exc, asyncssh.ChannelOpenError):
            return f"{label}: the jump host could not reach {target.hostport}: {exc.reason}"
        if isinstance(exc, asyncssh.KeyImportError):
            return f"{label}: cannot load an identity file: {exc}"
        if isinstance(exc, asyncssh.DisconnectError):
            return f"{label}: SSH connection failed: {exc.reason or type(exc).__name__}"
        detail = str(exc).strip().splitlines()
        return f"{label}: cannot connect: {detail[0] if detail else type(exc).__name__}"


def _parse_hop(hop: str) -> tuple[str, str | None, int | None]:
    """One ProxyJump entry, `[user@]host[:port]` or `[user@][host]:port`, as (host, user, port)."""
    hop_user, _, hop_host = hop.strip().rpartition("@")
    hop_port: int | None = None
    if hop_host.startswith("["):
        bracket_host, _, rest = hop_host[1:].partition("]")
        hop_host, hop_port = bracket_host, int(rest[1:]) if rest.startswith(":") else None
    elif hop_host.count(":") == 1:
        hop_host, port_s = hop_host.split(":")
        hop_port = int(port_s)
    return hop_host, hop_user or None, hop_port
