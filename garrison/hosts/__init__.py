"""The only code that touches a machine: executors that run argv tuples and move files.

`Executor` is the interface every workflow uses. A concrete executor supplies
four primitives (run, read_file, write_file, stat); the idempotent helpers
built on them (ensure_dir, ensure_symlink, ensure_file) live here once, so
the local executor and an SSH executor behave the same.
"""

from __future__ import annotations

import posixpath
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from garrison.errors import CommandFailed


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Stat:
    mode: int  # permission bits only
    owner: str
    group: str
    is_dir: bool
    is_link: bool
    link_target: str | None


class HostLock(ABC):
    @abstractmethod
    def release(self) -> None: ...

    def __enter__(self) -> HostLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Executor(ABC):
    """Runs commands and moves files on one host."""

    name: str = "host"

    @abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Result:
        """Run argv (never through a shell); raise CommandFailed when check and rc != 0."""

    @abstractmethod
    def read_file(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    @abstractmethod
    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> None:
        """Write atomically: a temp file in the same folder, then rename."""

    @abstractmethod
    def stat(self, path: str) -> Stat | None:
        """lstat of path, or None when it does not exist."""

    @abstractmethod
    def extract_tar(self, data: bytes, dest: str) -> None:
        """Unpack a (gzip) tar archive into the existing folder dest."""

    @abstractmethod
    def lock(self, path: str, holder: str) -> HostLock:
        """Take the host's deploy lock at path, or raise LockHeld naming the holder.

        The lock must die with the deploying process (Ctrl-C, SIGKILL, a cut SSH
        connection), so that no stale lock ever blocks the next deploy.
        """

    def close(self) -> None:  # noqa: B027 (optional: only a connection has something to close)
        """End the connection to the host, if any (nothing to do for this machine)."""

    # Built on the primitives, the same for every executor.
    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def which(self, program: str) -> str | None:
        res = self.run(("sh", "-c", f"command -v {shlex.quote(program)}"), check=False)
        return res.stdout.strip() or None if res.ok else None

    def ensure_dir(self, path: str, *, mode: int = 0o755, owner: str = "root", group: str = "root") -> bool:
        """Make path a folder with this mode and ownership; True when anything changed."""
        st = self.stat(path)
        changed = False
        if st is None:
            self.run(("mkdir", "-p", path))
            changed = True
            st = self.stat(path)
        elif not st.is_dir:
            raise CommandFailed(("test", "-d", path), 1, "", f"{path} exists and is not a folder")
        assert st is not None
        if (st.owner, st.group) != (owner, group):
            self.run(("chown", f"{owner}:{group}", path))
            changed = True
        if st.mode != mode or changed:
            # chown clears setgid on some systems: set the mode after it.
            self.run(("chmod", f"{mode:o}", path))
            changed = changed or st.mode != mode
        return changed

    def ensure_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> bool:
        """Write path only when its content or mode/ownership differ; True when changed."""
        if self.has_file(path, data, mode=mode, owner=owner, group=group):
            return False
        self.write_file(path, data, mode=mode, owner=owner, group=group)
        return True

    def has_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> bool:
        """path is a regular file (not a link) with exactly this content, mode and ownership."""
        st = self.stat(path)
        if st is None or st.is_link or (st.mode, st.owner, st.group) != (mode, owner, group):
            return False
        return self.read_file(path) == data

    def ensure_symlink(self, target: str, path: str) -> bool:
        """Point the symlink path at target, atomically (a temp link renamed over it)."""
        st = self.stat(path)
        if st is not None and st.is_link and st.link_target == target:
            return False
        tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.garrison-tmp")
        self.run(("ln", "-sfn", target, tmp))
        self.run(("mv", "-Tf", tmp, path))
        return True

    def remove(self, path: str) -> bool:
        if self.stat(path) is None:
            return False
        self.run(("rm", "-rf", "--", path))
        return True
