"""The executor for a remote host: one SSH connection (asyncssh), a synchronous API.

`SSHExecutor` mirrors `LocalExecutor` command for command: the same PATH and
LC_ALL for every command, the same atomic file writes (temp file in the same
folder, chown, chmod, rename), the same lstat fields, the same lock semantics.
It is the synchronous face of smaller parts, each in its own module:

- ssh_loop: the one event loop thread per process; every public method
  submits a coroutine to it and waits.
- ssh_session: the ONE connection per executor, opened on first use and
  reused for every command and file transfer; not reconnected under a lock.
- ssh_connect / ssh_hostkeys: ~/.ssh/config, ProxyJump hops, identity files,
  known_hosts verification and trust on first use; every failure is one
  HostError line that names the host and the command that fixes it.
- ssh_command: the only place that turns an argv into the string sshd hands
  to the login shell (shlex-quoted once, env as `env -- K=V` words).
- ssh_files: read, lstat and atomic write as constant shell scripts, data
  only as positional parameters, so they work through `sudo -n` for a
  non-root login exactly as for root.
- ssh_lock: the deploy lock, a remote `flock` whose holder dies with the
  channel (this process killed, the connection dropped).
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from garrison import commands as C
from garrison.errors import CommandFailed
from garrison.hosts import Executor, HostLock, Result, Stat
from garrison.hosts.ssh_command import HOST_PATH, TIMEOUT_RC, command_argv, command_line
from garrison.hosts.ssh_connect import SSH_CONFIG_DEFAULT, Dialer
from garrison.hosts.ssh_files import MISSING, parse_stat, read_argv, stat_argv, write_argv
from garrison.hosts.ssh_files import SCRIPTS as _FILE_SCRIPTS
from garrison.hosts.ssh_hostkeys import KNOWN_HOSTS_DEFAULT
from garrison.hosts.ssh_lock import LOCK_SCRIPT, HeldLocks
from garrison.hosts.ssh_loop import call
from garrison.hosts.ssh_session import SSHSession

__all__ = ["SSHExecutor", "command_line", "command_argv", "HOST_PATH"]

# Every constant script the executor runs, by name (tests/unit/test_ssh_quoting.py runs them through a shell).
_SCRIPTS = {**_FILE_SCRIPTS, "lock": LOCK_SCRIPT}


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
        dialer = Dialer(
            self.name,
            known_hosts=self.known_hosts,
            trust_on_first_use=trust_on_first_use,
            config_paths=[config] if config and os.path.exists(config) else [],
            identity_files=self.identity_files,
            connect_timeout=connect_timeout,
        )
        self.target = dialer.resolve(address, user, port)
        self.user = self.target.user
        self.port = self.target.port
        self._locks = HeldLocks(self.name, lock_stale_after)
        self._session = SSHSession(dialer, self.target, self._locks)
        _OPEN_EXECUTORS.add(self)

    # -- the connection -----------------------------------------------------

    @property
    def sudo(self) -> bool:
        return self.user != "root"

    # Read by tests and diagnostics: which connection (and hops) carry the commands, how many were opened.
    @property
    def connections_opened(self) -> int:
        return self._session.opened

    @property
    def _conn(self) -> Any:
        return self._session.conn

    @property
    def _jumps(self) -> list[Any]:
        return self._session.jumps

    def connect(self) -> SSHExecutor:
        """Open the connection now (otherwise the first command does); raises HostError."""
        call(self._session.connection())
        return self

    def close(self) -> None:
        if self._session.closed:
            return
        self._session.closed = True
        _OPEN_EXECUTORS.discard(self)
        try:
            call(self._session.aclose(), timeout=10)
        except Exception:
            pass

    def __enter__(self) -> SSHExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SSHExecutor({self.target.user}@{self.target.label()})"

    # -- the Executor primitives --------------------------------------------

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
        return call(self._session.follow(argv, command_line(argv, sudo=self.sudo), on_line))

    def attach(self, argv: Sequence[str]) -> int:
        """Run argv on the host with this terminal: stdin, stdout and stderr, and a pty (in raw
        mode here, so keys reach the remote program as typed) when stdin is one. Its exit status."""
        import os
        import sys

        argv = tuple(argv)
        command = command_line(argv, sudo=self.sudo)
        if not sys.stdin.isatty():
            return call(self._session.attach(argv, command, None, None))
        import termios
        import tty

        size = os.get_terminal_size(sys.stdin.fileno())
        saved = termios.tcgetattr(sys.stdin.fileno())
        try:
            tty.setraw(sys.stdin.fileno())
            return call(self._session.attach(argv, command, os.environ.get("TERM", "xterm"), (size.columns, size.lines)))
        finally:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)

    def extract_tar(self, data: bytes, dest: str) -> None:
        argv = C.extract_tar(dest)
        rc, out, err = self._exec(argv, input=data)
        self._check(rc, argv, out, err)

    def lock(self, path: str, holder: str) -> HostLock:
        return call(self._session.lock(path, holder))

    # -- internals ----------------------------------------------------------

    def _check(self, rc: int, argv: tuple[str, ...], out: bytes, err: bytes) -> None:
        # The file primitives report the operation (cat, stat, write_file), not the script that ran it.
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
        # Before every command: a lock that may be gone on the host stops the deploy here.
        self._locks.check()
        command = command_line(argv, env, sudo=self.sudo, timeout=timeout)
        return call(self._session.exec(argv, command, input, timeout))


_OPEN_EXECUTORS: weakref.WeakSet[SSHExecutor] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # The loop thread is a daemon and just stops at exit: close the connections (releasing
    # their locks) while it still runs.
    for executor in list(_OPEN_EXECUTORS):
        try:
            executor.close()
        except Exception:
            pass
