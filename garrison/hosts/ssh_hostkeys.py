"""Host key verification for SSH connections: known_hosts, trust on first use, and what to run when a key is refused.

Keys are checked against known_hosts by asyncssh; this module decides about
the keys it does not accept. An unknown key fails (or, with
trust_on_first_use, is appended as a hashed entry); a changed key always
fails. The refusal becomes one line that names the host and the command that
fixes it.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # For annotations only: asyncssh is imported where a connection is made,
    # so that commands that never open one don't pay for importing it.
    import asyncssh

KNOWN_HOSTS_DEFAULT = "~/.ssh/known_hosts"


def known_hosts_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _hashed(pattern: str) -> str:
    """A HashKnownHosts entry name (`|1|salt|hmac`), as ssh-keyscan -H writes it."""
    salt = os.urandom(20)
    digest = hmac.new(salt, pattern.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def tilde(path: str) -> str:
    """path with the home folder shown as ~, for messages."""
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + "/")):
        return "~" + path[len(home):]
    return path


class HostKeyPolicy:
    """Decides about keys that are not in known_hosts: TOFU for unknown hosts, never for changed ones."""

    def __init__(self, known_hosts: str | None, tofu: bool):
        self.known_hosts = known_hosts
        self.tofu = tofu
        self.verdict: str | None = None  # "unknown" | "changed" after a refusal

    def known_hosts_arg(self) -> str | asyncssh.SSHKnownHosts | None:
        import asyncssh

        if self.known_hosts is None:
            return None  # verification off (only when the caller asked for it)
        if os.path.exists(self.known_hosts):
            return self.known_hosts
        return asyncssh.import_known_hosts("")

    def has_entry(self, host: str, addr: str, port: int) -> bool:
        import asyncssh

        if self.known_hosts is None or not os.path.exists(self.known_hosts):
            return False
        try:
            trusted, ca_keys, *_ = asyncssh.match_known_hosts(
                self.known_hosts, host, addr, port if port != 22 else None
            )
        except (OSError, ValueError):
            return False
        return bool(trusted or ca_keys)

    def accept_unknown(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        if self.has_entry(host, addr, port):
            self.verdict = "changed"
            return False
        if not self.tofu or self.known_hosts is None:
            self.verdict = "unknown"
            return False
        algo, blob = key.export_public_key("openssh").decode().split()[:2]
        line = f"{_hashed(known_hosts_pattern(host, port))} {algo} {blob}\n"
        folder = os.path.dirname(self.known_hosts)
        if folder and not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        fd = os.open(self.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # Several executors of this process (or other processes) may learn keys at once.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return True

    def refusal(self, label: str, host: str, port: int, via_jump: bool) -> str:
        """The error line after asyncssh refused the key of host (shown as label)."""
        kh = tilde(self.known_hosts or KNOWN_HOSTS_DEFAULT)
        port_opt = f"-p {port} " if port != 22 else ""
        scan = f"ssh-keyscan {port_opt}-H {host} >> {kh}"
        via = f" (run it where {host} is reachable)" if via_jump else ""
        if self.verdict == "changed":
            pattern = known_hosts_pattern(host, port)
            return (
                f"{label}: the host key CHANGED since it was trusted in {kh} "
                f"(reinstalled server, or someone in the middle); if the change is expected, run: "
                f"ssh-keygen -f {kh} -R {shlex.quote(pattern)} && {scan}{via}"
            )
        return f"{label}: unknown host key (not in {kh}); to trust it, run: {scan}{via}"


def client_factory(policy: HostKeyPolicy) -> type[asyncssh.SSHClient]:
    """An asyncssh client class that asks policy about every key known_hosts does not vouch for."""
    import asyncssh

    class _Client(asyncssh.SSHClient):
        def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:  # asyncssh hook
            return policy.accept_unknown(host, addr, port, key)

    return _Client
