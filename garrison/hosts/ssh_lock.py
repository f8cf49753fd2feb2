"""The deploy lock over SSH: a remote `flock` whose holder lives exactly as long as our channel.

The holder is a process on the host whose stdin is the SSH channel: if this
process dies (even SIGKILL) or the connection drops, the host sees EOF, the
holder exits and the kernel drops the lock. A heartbeat on the channel keeps
it held; when heartbeats stop (a network that died silently, a suspended
laptop), the host drops the lock and this side refuses further commands
rather than deploying unlocked.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from typing import TYPE_CHECKING

from garrison.errors import CommandFailed, HostError, LockHeld
from garrison.hosts import HostLock
from garrison.hosts.ssh_command import command_line, fmt_seconds, script_argv
from garrison.hosts.ssh_loop import call

if TYPE_CHECKING:
    # For annotations only: asyncssh is imported where a connection is made,
    # so that commands that never open one don't pay for importing it.
    import asyncssh

LOCK_BUSY = 75  # exit code of the lock script when another process holds the lock

# lock PATH DIR HOLDER STALE: take an flock on PATH or print the holder and exit 75;
# once taken, write the holder, say "held", and keep the lock while stdin (the
# SSH channel) brings a heartbeat line at least every STALE seconds. EOF (release,
# dead client, cut connection) or a missed heartbeat (silent network loss) ends
# the loop: empty the file and exit, and the kernel drops the flock.
LOCK_SCRIPT = (
    'mkdir -p -- "$2" || exit\n'
    'exec 9<>"$1" || exit\n'
    'if ! flock -n 9; then cat -- "$1"; exit 75; fi\n'
    'chmod 600 -- "$1"\n'
    "printf '%s' \"$3\" > \"$1\"\n"
    "echo held\n"
    'while beat=$(timeout "$4" head -n 1) && [ -n "$beat" ]; do :; done\n'
    ': > "$1"\n'
)


class HeldLocks:
    """The locks one executor holds on its connection: taken, checked before each command, released on close."""

    def __init__(self, name: str, stale_after: float):
        self.name = name  # the executor's, for messages
        self.stale_after = stale_after
        self._held: set[SSHLock] = set()

    def __bool__(self) -> bool:
        return bool(self._held)

    def discard(self, lock: SSHLock) -> None:
        self._held.discard(lock)

    async def take(self, conn: asyncssh.SSHClientConnection, path: str, holder: str, *, sudo: bool) -> SSHLock:
        """Take the lock at path over conn, or raise LockHeld naming the holder."""
        import asyncssh

        stale = fmt_seconds(self.stale_after)
        argv = script_argv(LOCK_SCRIPT, path, posixpath.dirname(path) or ".", holder, stale)
        command = command_line(argv, sudo=sudo)
        try:
            proc = await conn.create_process(command, encoding=None)
            first = await asyncio.wait_for(proc.stdout.readline(), 30)
        except (TimeoutError, asyncssh.Error, OSError) as exc:
            raise HostError(f"{self.name}: cannot take the lock {path}: {exc or type(exc).__name__}") from None
        if first == b"held\n":
            lock = SSHLock(self, proc, path)
            self._held.add(lock)
            return lock
        rest, err = await proc.communicate()
        if proc.exit_status == LOCK_BUSY:
            who = (first + (rest or b"")).decode(errors="replace").strip() or "another process"
            raise LockHeld(f"another deploy holds the lock {path} on {self.name}: {who}; wait for it to finish")
        detail = (err or b"").decode(errors="replace").strip().splitlines()
        raise CommandFailed(
            ("flock", "-n", path), proc.exit_status or 1, "", detail[-1] if detail else "could not take the lock"
        )

    def check(self) -> None:
        """Raise HostError when a held lock may already be gone on the host."""
        for lock in list(self._held):
            if lock.lost or lock.beat_age() > self.stale_after * 2 / 3:
                # (By age, too: after a freeze or a suspend this process may run a
                # command before its loop has even read the host's goodbye.)
                raise HostError(
                    f"{self.name}: the deploy lock {lock.path} was lost (no heartbeat reached the host for "
                    f"{self.stale_after:g} s, or the connection dropped); stopping rather than deploying unlocked"
                )

    async def release_all(self) -> None:
        for lock in list(self._held):
            await lock.arelease()


def _clocks() -> tuple[float, float]:
    """monotonic, plus a clock that also runs while the machine sleeps (BOOTTIME; else wall time)."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.monotonic(), time.clock_gettime(boottime) if boottime is not None else time.time()


class SSHLock(HostLock):
    """Held while the remote holder reads heartbeats from the open channel; released by EOF."""

    def __init__(self, locks: HeldLocks, proc: asyncssh.SSHClientProcess[bytes], path: str) -> None:
        self.locks = locks
        self.proc = proc
        self.path = path
        self.lost = False
        self._released = False
        self._beat_at = _clocks()
        loop = asyncio.get_running_loop()
        self._heartbeat = loop.create_task(self._beat(locks.stale_after / 3))
        self._watch = loop.create_task(self._watch_exit())

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.beat_age() > self.locks.stale_after * 2 / 3:
                return  # the host may already have dropped the lock: don't pretend
            try:
                self.proc.stdin.write(b"beat\n")
            except Exception:
                return
            self._beat_at = _clocks()

    def beat_age(self) -> float:
        """Seconds since the last heartbeat, counting time spent suspended."""
        return max(now - then for now, then in zip(_clocks(), self._beat_at, strict=True))

    async def _watch_exit(self) -> None:
        try:
            await self.proc.wait_closed()
        except Exception:
            pass
        if not self._released:
            self.lost = True
            self._heartbeat.cancel()

    def release(self) -> None:
        if not self._released:
            call(self.arelease(), timeout=20)

    async def arelease(self) -> None:
        if self._released:
            return
        self._released = True
        self.locks.discard(self)
        self._heartbeat.cancel()
        try:
            self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait_closed(), 10)
        except Exception:
            pass  # connection gone: the remote side already released the lock
        finally:
            self.proc.close()
            self._watch.cancel()
