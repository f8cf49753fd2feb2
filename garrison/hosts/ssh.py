"""The executor for a remote host: one SSH connection (asyncssh), a synchronous API.

`SSHExecutor` mirrors `LocalExecutor` command for command: the same PATH and
LC_ALL for every command, the same atomic file writes (temp file in the same
folder, chown, chmod, rename), the same lstat fields, the same lock semantics.

How it works, and why:
- One asyncio event loop runs in a daemon thread per process; every public
  method submits a coroutine to it and waits. Each executor opens ONE SSH
  connection on first use and reuses it for every command and file transfer
  (a new channel per command costs one round trip, a new connection ~0.1 s).
- Commands are argv tuples. `command_line` is the one place that turns one
  into the string sshd hands to the login shell: every word is shlex-quoted
  once; environment variables travel as `env -- K=V` words (sshd's own
  environment passing needs AcceptEnv, which servers rarely allow).
- File primitives (ssh_files) are constant shell scripts run as
  `sh -c SCRIPT garrison ARG...`: data only ever reaches them as positional
  parameters, never as script text. They use only POSIX sh and coreutils, so
  they work through `sudo -n` for a non-root login exactly as for root.
- The deploy lock (ssh_lock) is a remote `flock` held by a process whose
  stdin is the SSH channel: if this process dies (even SIGKILL) or the
  connection drops, the host sees EOF and the kernel drops the lock.
- Connections are opened by ssh_connect.Dialer, as ssh would: ~/.ssh/config,
  ProxyJump hops, identity files, and host keys verified against known_hosts
  (ssh_hostkeys). Every failure is one HostError line that names the host
  and the command that fixes it.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from garrison import commands as C
from garrison.errors import CommandFailed, HostError
from garrison.hosts import Executor, HostLock, Result, Stat
from garrison.hosts.ssh_command import HOST_PATH, TIMEOUT_GRACE, TIMEOUT_RC, command_argv, command_line
from garrison.hosts.ssh_connect import SSH_CONFIG_DEFAULT, Dialer
from garrison.hosts.ssh_files import MISSING, parse_stat, read_argv, stat_argv, write_argv
from garrison.hosts.ssh_files import SCRIPTS as _FILE_SCRIPTS
from garrison.hosts.ssh_hostkeys import KNOWN_HOSTS_DEFAULT
from garrison.hosts.ssh_lock import LOCK_SCRIPT, HeldLocks
from garrison.hosts.ssh_loop import call

if TYPE_CHECKING:
    # For annotations only: asyncssh itself is imported where a connection is made,
    # so that commands that never open one don't pay for importing it.
    import asyncssh

__all__ = ["SSHExecutor", "command_line", "command_argv", "HOST_PATH"]

# OpenSSH's MaxSessions defaults to 10 channels per connection; a held lock takes one.
_MAX_CHANNELS = 8

# Every constant script the executor runs, by name (tests/unit/test_ssh_quoting.py runs them through a shell).
_SCRIPTS = {**_FILE_SCRIPTS, "lock": LOCK_SCRIPT}

_OPEN_EXECUTORS: weakref.WeakSet[SSHExecutor] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for executor in list(_OPEN_EXECUTORS):
        try:
            executor.close()
        except Exception:
            pass


class SSHExecutor(Executor):
    """Runs commands and moves files on one host over one reused SSH connection."""

    def __init__(
        self,
        address: str,
        *,
        user: str | None = None,
        port: int | None = None,
        name: str | None = None,
        known_hosts: str | None = KNOWN_HOSTS_DEFAULT,
        trust_on_first_use: bool = False,
        ssh_config: str | None = SSH_CONFIG_DEFAULT,
        identity_files: Sequence[str] | None = None,
        connect_timeout: float = 10,
        lock_stale_after: float = 30,
    ):
        """address: a host name, an IP address or a Host alias from ssh_config.

        user / port: None means "from ssh_config, else root / 22" (an explicit
        value wins over ssh_config, as on the ssh command line).
        known_hosts: the file to verify host keys against (None turns
        verification off; only for tests that say so).
        identity_files: private keys to offer; None means ssh_config's
        IdentityFile, the default ~/.ssh/id_* keys and the ssh-agent
        (SSH_AUTH_SOCK) as ssh would.
        lock_stale_after: a held lock is renewed by a heartbeat every third of
        this; the host drops it when heartbeats stop for this long (a network
        that died silently, a suspended laptop), and this executor then
        refuses further commands instead of deploying without the lock.
        """
        self.address = address
        self.known_hosts = os.path.expanduser(known_hosts) if known_hosts else None
        self.trust_on_first_use = trust_on_first_use
        config = os.path.expanduser(ssh_config) if ssh_config else None
        self.identity_files = [os.path.expanduser(p) for p in identity_files] if identity_files is not None else None
        self.connect_timeout = connect_timeout
        self.lock_stale_after = lock_stale_after
        self.name = name or address
        self._dialer = Dialer(
            self.name,
            known_hosts=self.known_hosts,
            trust_on_first_use=trust_on_first_use,
            config_paths=[config] if config and os.path.exists(config) else [],
            identity_files=self.identity_files,
            connect_timeout=connect_timeout,
        )
        self.target = self._dialer.resolve(address, user, port)
        self.user = self.target.user
        self.port = self.target.port
        self.connections_opened = 0  # for tests and diagnostics: stays 1 while the connection lives
        self._conn: Any = None
        self._jumps: list[Any] = []
        self._conn_lock: asyncio.Lock | None = None
        self._channels: asyncio.Semaphore | None = None
        self._locks = HeldLocks(self.name, lock_stale_after)
        self._sudo_checked = False
        self._closed = False
        _OPEN_EXECUTORS.add(self)

    # -- public API ---------------------------------------------------------

    @property
    def sudo(self) -> bool:
        return self.user != "root"

    def connect(self) -> SSHExecutor:
        """Open the connection now (otherwise the first command does); raises HostError."""
        call(self._connection())
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN_EXECUTORS.discard(self)
        try:
            call(self._aclose(), timeout=10)
        except Exception:
            pass

    def __enter__(self) -> SSHExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHExecutor({self.target.user}@{self.target.label()})"

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Result:
        argv = tuple(argv)
        rc, out, err = self._exec(argv, input=input, env=env, timeout=timeout)
        if rc == TIMEOUT_RC and timeout is not None:
            res = Result(argv, TIMEOUT_RC, out.decode(errors="replace"), f"timed out after {timeout} s")
        else:
            res = Result(argv, rc, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and not res.ok:
            raise CommandFailed(argv, res.returncode, res.stdout, res.stderr)
        return res

    def read_file(self, path: str) -> bytes | None:
        rc, out, err = self._exec(read_argv(path))
        if rc == MISSING:
            return None
        self._check(rc, ("cat", "--", path), out, err)
        return out

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> None:
        rc, out, err = self._exec(write_argv(path, mode=mode, owner=owner, group=group), input=data)
        self._check(rc, ("write_file", path), out, err)

    def stat(self, path: str) -> Stat | None:
        rc, out, err = self._exec(stat_argv(path))
        if rc == MISSING:
            return None
        self._check(rc, ("stat", "--", path), out, err)
        return parse_stat(out)

    def follow(self, argv: Sequence[str], on_line: Callable[[bytes], None]) -> int:
        """Run argv (e.g. `tail -F`), calling on_line with each line of its output as it
        comes, until it ends or close() is called; returns its exit status. Without a pty,
        sshd sends no SIGHUP when the channel closes: argv must end when its output closes,
        as `tail -F` does (coreutils >= 8.28). on_line runs on the executor's event loop
        thread: keep it short."""
        argv = tuple(argv)
        return call(self._afollow(argv, command_line(argv, sudo=self.sudo), on_line))

    def extract_tar(self, data: bytes, dest: str) -> None:
        argv = C.extract_tar(dest)
        rc, out, err = self._exec(argv, input=data)
        self._check(rc, argv, out, err)

    def lock(self, path: str, holder: str) -> HostLock:
        return call(self._lock(path, holder))

    # -- internals: connection ---------------------------------------------

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._closed:
            raise HostError(f"{self.name}: the SSH connection was closed")
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            if self._conn is not None:
                # The connection died. Reconnecting is safe only when no lock rode on it.
                self._conn = None
                await self._close_jumps()
                if self._locks:
                    raise HostError(
                        f"{self.name}: the SSH connection to {self.target.label()} was lost, "
                        "and with it the deploy lock; not reconnecting mid-deploy"
                    )
            conn, jumps = await self._dialer.open(self.target)
            self._conn, self._jumps = conn, jumps
            self.connections_opened += 1
            if self.sudo and not self._sudo_checked:
                await self._check_sudo()
            return conn

    async def _check_sudo(self) -> None:
        conn = self._conn
        proc = await conn.create_process("sudo -n true", encoding=None)
        proc.stdin.write_eof()
        _, err = await proc.communicate()
        if proc.exit_status != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {proc.exit_status}"
            conn.close()
            self._conn = None
            await self._close_jumps()
            raise HostError(f"user {self.user} on {self.target.label()} has no passwordless sudo: {detail}")
        self._sudo_checked = True

    async def _close_jumps(self) -> None:
        jumps, self._jumps = self._jumps, []
        for c in reversed(jumps):
            c.close()

    async def _aclose(self) -> None:
        await self._locks.release_all()
        if self._conn is not None:
            self._conn.close()
            try:
                await asyncio.wait_for(self._conn.wait_closed(), 5)
            except Exception:
                pass
            self._conn = None
        await self._close_jumps()

    # -- internals: commands ------------------------------------------------

    def _check(self, rc: int, argv: tuple[str, ...], out: bytes, err: bytes) -> None:
        if rc != 0:
            raise CommandFailed(argv, rc, out.decode(errors="replace"), err.decode(errors="replace"))

    def _exec(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        self._locks.check()
        command = command_line(argv, env, sudo=self.sudo, timeout=timeout)
        return call(self._aexec(argv, command, input, timeout))

    async def _aexec(self, argv: Sequence[str], command: str, input: bytes | None, timeout: float | None) -> tuple[int, bytes, bytes]:
        conn = await self._connection()
        if self._channels is None:
            self._channels = asyncio.Semaphore(_MAX_CHANNELS)
        async with self._channels:
            return await self._aexec_channel(conn, argv, command, input, timeout)

    async def _aexec_channel(
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
            sig = proc.exit_signal
            signame = sig[0] if sig else ""
            try:
                rc = -int(signal.Signals["SIG" + signame])
            except KeyError:
                rc = 255
        return rc, out or b"", err or b""

    async def _afollow(self, argv: Sequence[str], command: str, on_line: Callable[[bytes], None]) -> int:
        import asyncssh

        conn = await self._connection()
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

    # -- internals: lock ----------------------------------------------------

    async def _lock(self, path: str, holder: str) -> HostLock:
        conn = await self._connection()
        return await self._locks.take(conn, path, holder, sudo=self.sudo)
