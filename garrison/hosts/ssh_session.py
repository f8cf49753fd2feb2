"""The one SSH connection of an executor: opened on first use, shared by every command, never silently replaced.

A new channel per command costs one round trip, a new connection ~0.1 s, so
every command, file transfer, stream and lock rides on the same connection.
It lives on the shared event loop (ssh_loop); everything here is a coroutine.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from garrison.errors import HostError
from garrison.hosts.ssh_command import TIMEOUT_GRACE, TIMEOUT_RC
from garrison.hosts.ssh_connect import Dialer, Target
from garrison.hosts.ssh_lock import HeldLocks, SSHLock

if TYPE_CHECKING:
    # For annotations only: asyncssh is imported where a connection is made,
    # so that commands that never open one don't pay for importing it.
    import asyncssh

# OpenSSH's MaxSessions defaults to 10 channels per connection; a held lock takes one.
_MAX_CHANNELS = 8


class SSHSession:
    """One reused connection to target (with its jump hops), the channel limit, and the locks riding on it."""

    def __init__(self, dialer: Dialer, target: Target, locks: HeldLocks) -> None:
        self.dialer = dialer
        self.target = target
        self.locks = locks
        self.name = dialer.name
        self.sudo = target.user != "root"
        self.conn: Any = None
        self.jumps: list[Any] = []
        self.opened = 0  # connections opened so far: stays 1 while the connection lives
        self.closed = False
        # Created on the loop, on first use (an asyncio primitive belongs to the loop that runs it).
        self._conn_lock: asyncio.Lock | None = None
        self._channels: asyncio.Semaphore | None = None
        self._sudo_checked = False

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection, opened (and, for a non-root login, its sudo checked) if needed."""
        if self.closed:
            raise HostError(f"{self.name}: the SSH connection was closed")
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self.conn is not None and not self.conn.is_closed():
                return self.conn
            if self.conn is not None:
                # The connection died. Reconnecting is safe only when no lock rode on it.
                self.conn = None
                await self._close_jumps()
                if self.locks:
                    raise HostError(
                        f"{self.name}: the SSH connection to {self.target.label()} was lost, "
                        "and with it the deploy lock; not reconnecting mid-deploy"
                    )
            conn, jumps = await self.dialer.open(self.target)
            self.conn, self.jumps = conn, jumps
            self.opened += 1
            if self.sudo and not self._sudo_checked:
                await self._check_sudo()
            return conn

    async def _check_sudo(self) -> None:
        # Once per executor, at connect: a login without passwordless sudo then fails
        # with one line about the login, not about whichever command came first.
        conn = self.conn
        proc = await conn.create_process("sudo -n true", encoding=None)
        proc.stdin.write_eof()
        _, err = await proc.communicate()
        if proc.exit_status != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {proc.exit_status}"
            conn.close()
            self.conn = None
            await self._close_jumps()
            raise HostError(f"user {self.target.user} on {self.target.label()} has no passwordless sudo: {detail}")
        self._sudo_checked = True

    async def _close_jumps(self) -> None:
        jumps, self.jumps = self.jumps, []
        for c in reversed(jumps):
            c.close()

    async def aclose(self) -> None:
        """Release the locks, then close the connection and its hops."""
        await self.locks.release_all()
        if self.conn is not None:
            self.conn.close()
            try:
                await asyncio.wait_for(self.conn.wait_closed(), 5)
            except Exception:
                pass
            self.conn = None
        await self._close_jumps()

    async def exec(self, argv: Sequence[str], command: str, input: bytes | None, timeout: float | None) -> tuple[int, bytes, bytes]:
        """Run command (the quoted form of argv) on its own channel: rc, stdout, stderr."""
        conn = await self.connection()
        if self._channels is None:
            self._channels = asyncio.Semaphore(_MAX_CHANNELS)
        async with self._channels:
            return await self._exec_channel(conn, argv, command, input, timeout)

    async def _exec_channel(
        self, conn: asyncssh.SSHClientConnection, argv: Sequence[str], command: str, input: bytes | None, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        import asyncssh

        try:
            proc = await conn.create_process(command, encoding=None)
            if input:
                proc.stdin.write(input)
            proc.stdin.write_eof()
            try:
                # The host enforces the timeout; this is the backstop for a dead link.
                limit = None if timeout is None else timeout + TIMEOUT_GRACE + 5
                out, err = await asyncio.wait_for(proc.communicate(), limit)
            except TimeoutError:
                proc.close()
                return TIMEOUT_RC, b"", b""
        except (asyncssh.Error, OSError) as exc:
            reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
            raise HostError(f"{self.name}: SSH failure while running `{' '.join(argv)}`: {reason}") from None
        rc = proc.exit_status
        if rc is None or rc < 0:
            # Killed by a signal: report it as subprocess does, -SIGNUM.
            sig = proc.exit_signal
            signame = sig[0] if sig else ""
            try:
                rc = -int(signal.Signals["SIG" + signame])
            except KeyError:
                rc = 255
        return rc, out or b"", err or b""

    async def follow(self, argv: Sequence[str], command: str, on_line: Callable[[bytes], None]) -> int:
        """Run command, handing each line of its output to on_line until it ends; its exit status."""
        import asyncssh

        conn = await self.connection()
        try:
            proc = await conn.create_process(command, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise HostError(f"{self.name}: SSH failure while running `{' '.join(argv)}`: {exc}") from None
        try:
            while line := await proc.stdout.readline():
                on_line(line)
            await proc.wait_closed()
        except (asyncssh.Error, OSError):
            pass  # the connection went away (close()): nothing more to follow
        return proc.exit_status if proc.exit_status is not None else 255

    async def attach(self, argv: Sequence[str], command: str, term: str | None, size: tuple[int, int] | None) -> int:
        """Run command with this process's stdin, stdout and stderr (a pty when term is given:
        an interactive shell); its exit status, 255 when it died of a signal."""
        import sys

        import asyncssh

        conn = await self.connection()
        try:
            proc = await conn.create_process(
                command, encoding=None, term_type=term, term_size=size,
                stdin=sys.stdin.buffer, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer,
            )
            await proc.wait_closed()
        except (asyncssh.Error, OSError) as exc:
            raise HostError(f"{self.name}: SSH failure while running `{' '.join(argv)}`: {exc}") from None
        return proc.exit_status if proc.exit_status is not None and proc.exit_status >= 0 else 255

    async def lock(self, path: str, holder: str) -> SSHLock:
        """Take the deploy lock at path on this connection (see ssh_lock)."""
        conn = await self.connection()
        return await self.locks.take(conn, path, holder, sudo=self.sudo)
