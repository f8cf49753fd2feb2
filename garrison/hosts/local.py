"""The executor for this machine: subprocess for commands, the os module for files."""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import stat as stat_mod
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence

from garrison import commands as C
from garrison.errors import CommandFailed, LockHeld
from garrison.hosts import Executor, HostLock, Result, Stat

# What a server's root shell has: the tool's own venv or pyenv shims must not
# leak into commands such as `python3 -m venv` run on behalf of the host.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _name(table: Callable[[int], pwd.struct_passwd | grp.struct_group], ident: int) -> str:
    try:
        return table(ident)[0]
    except KeyError:
        return str(ident)


class _FlockLock(HostLock):
    """A kernel flock: released by the kernel when the holder dies, however it dies."""

    def __init__(self, fd: int):
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)  # no holder any more; the kernel drops the flock on close
            os.close(self.fd)
            self.fd = -1


class LocalExecutor(Executor):
    name = "localhost"

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
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "VIRTUAL_ENV", "PYTHON"))}
        full_env["PATH"] = HOST_PATH
        full_env.setdefault("LC_ALL", "C.UTF-8")
        if env:
            full_env.update(env)
        try:
            proc = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                env=full_env,
                timeout=timeout,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError:
            res = Result(argv, 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace")
            res = Result(argv, 124, out, f"timed out after {timeout} s")
        else:
            res = Result(argv, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
        if check and not res.ok:
            raise CommandFailed(argv, res.returncode, res.stdout, res.stderr)
        return res

    def read_file(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> None:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".garrison-tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chown(tmp, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def stat(self, path: str) -> Stat | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        is_link = stat_mod.S_ISLNK(st.st_mode)
        return Stat(
            mode=stat_mod.S_IMODE(st.st_mode),
            owner=_name(pwd.getpwuid, st.st_uid),
            group=_name(grp.getgrgid, st.st_gid),
            is_dir=stat_mod.S_ISDIR(st.st_mode),
            is_link=is_link,
            link_target=os.readlink(path) if is_link else None,
        )

    def extract_tar(self, data: bytes, dest: str) -> None:
        self.run(C.extract_tar(dest), input=data)

    def lock(self, path: str, holder: str) -> HostLock:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 500, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(f"another deploy holds the lock {path}: {who}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        return _FlockLock(fd)
