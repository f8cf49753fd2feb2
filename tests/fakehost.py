"""A strict fake host and a fake clock for unit tests of step decisions and wait loops.

`FakeHost` is an `Executor` with an in-memory file tree (files with bytes,
mode, owner and group; folders; symlinks) and a table of the commands it was
told about. A command it was not told about fails the test: the AssertionError
names the argv, and `assert_done()` re-raises it even when the code under test
swallowed it. Every command is recorded in `ran`, so a test can assert exactly
what a step did.

    host = FakeHost()
    host.add_file("/run/sshd.pid", b"77\\n")
    host.expect(("kill", "-HUP", "77"))                      # exactly this argv, once
    host.expect(("ss", ...), stdout="...", times=None)        # any argv starting so, any number of times
    host.expect(("visudo", ...), respond=lambda argv, input: Reply(rc=1, stderr="bad"))
    ...
    assert host.ran == [...]
    host.assert_done()                                        # nothing unexpected, nothing expected left

The commands that the Executor's own helpers issue (ensure_dir, ensure_symlink,
remove, which) are carried out on the tree, in exactly the forms those helpers
use, so the helpers work here as on a real host; an expectation for the same
argv takes precedence (to make one fail, say).

`FakeClock` is a `garrison.clock.Clock` whose sleep returns at once and moves
its time on, so a wait loop with a 30 s deadline runs in microseconds.
"""

from __future__ import annotations

import io
import posixpath
import shlex
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from garrison import commands as C
from garrison.errors import CommandFailed, LockHeld
from garrison.hosts import Executor, HostLock, Result, Stat

# Where `which` looks, as a server's root shell does (garrison.hosts.local.HOST_PATH).
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# What `tar --no-same-permissions` applies as root with the usual umask.
TAR_UMASK = 0o022
MAX_LINKS = 40  # as the kernel's ELOOP limit


@dataclass
class Node:
    kind: str  # "file", "dir" or "link"
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    data: bytes = b""
    target: str = ""  # for links


@dataclass(frozen=True)
class Reply:
    """What a responder answers: the command's output and exit status."""

    stdout: str = ""
    rc: int = 0
    stderr: str = ""


Responder = Callable[[tuple[str, ...], "bytes | None"], Reply]


@dataclass
class Expectation:
    pattern: tuple[str, ...]  # exact argv, or a prefix when it ends with ...
    prefix: bool
    reply: Reply
    respond: Responder | None
    times: int | None  # None: any number of times
    used: int = 0

    def matches(self, argv: tuple[str, ...]) -> bool:
        if self.prefix:
            return argv[: len(self.pattern)] == self.pattern
        return argv == self.pattern

    @property
    def left(self) -> bool:
        return self.times is None or self.used < self.times

    def describe(self) -> str:
        shown = " ".join(self.pattern) + (" ..." if self.prefix else "")
        count = "any number of times" if self.times is None else f"{self.used} of {self.times} times"
        return f"{shown} ({count})"


@dataclass(frozen=True)
class Call:
    argv: tuple[str, ...]
    input: bytes | None
    env: Mapping[str, str] | None


class UnexpectedCommand(AssertionError):
    pass


class _FakeLock(HostLock):
    def __init__(self, host: FakeHost, path: str):
        self.host, self.path = host, path

    def release(self) -> None:
        if self.path in self.host.locks:
            del self.host.locks[self.path]
            node = self.host.node(self.path)
            if node is not None:
                node.data = b""  # no holder any more, as LocalExecutor does


class FakeHost(Executor):
    """A host in memory that runs only the commands a test told it about (see the module doc)."""

    def __init__(self, name: str = "fake"):
        self.name = name
        self.tree: dict[str, Node] = {"/": Node("dir", 0o755)}
        self.expectations: list[Expectation] = []
        self.ran: list[tuple[str, ...]] = []
        self.calls: list[Call] = []
        self.unexpected: list[str] = []
        self.locks: dict[str, str] = {}  # path -> holder

    # -- setting the scene -------------------------------------------------------------
    def add_dir(self, path: str, *, mode: int = 0o755, owner: str = "root", group: str = "root") -> None:
        self.tree[self._place(path, create=True)] = Node("dir", mode, owner, group)

    def add_file(self, path: str, data: bytes | str = b"", *, mode: int = 0o644, owner: str = "root", group: str = "root") -> None:
        self.tree[self._place(path, create=True)] = Node("file", mode, owner, group, data.encode() if isinstance(data, str) else data)

    def add_symlink(self, path: str, target: str, *, owner: str = "root", group: str = "root") -> None:
        self.tree[self._place(path, create=True)] = Node("link", 0o777, owner, group, target=target)

    def add_program(self, path: str) -> None:
        """An executable at path, for `which` (e.g. /usr/sbin/ufw)."""
        self.add_file(path, b"", mode=0o755)

    def expect(
        self,
        argv: Sequence[object],
        *,
        stdout: str = "",
        rc: int = 0,
        stderr: str = "",
        times: int | None = 1,
        respond: Responder | None = None,
    ) -> Expectation:
        """Allow argv (exactly; or any argv starting so when it ends with `...`), `times` times.

        Expectations are tried in the order they were added, skipping used-up
        ones: expect the same argv twice to answer it differently the second time.
        """
        items = tuple(argv)
        prefix = bool(items) and items[-1] is Ellipsis
        pattern = items[:-1] if prefix else items
        if not all(isinstance(a, str) for a in pattern):
            raise TypeError(f"argv items must be strings (and a final ...): {items!r}")
        exp = Expectation(tuple(str(a) for a in pattern), prefix, Reply(stdout, rc, stderr), respond, times)
        self.expectations.append(exp)
        return exp

    # -- what a test asserts --------------------------------------------------------------
    def node(self, path: str) -> Node | None:
        """What is at path (lstat: a symlink itself), or None."""
        return self.tree.get(self._place(path))

    def assert_done(self) -> None:
        """No command was unexpected (even if the code swallowed the error), none expected is left."""
        if self.unexpected:
            raise UnexpectedCommand("; ".join(self.unexpected))
        left = [e.describe() for e in self.expectations if e.times is not None and e.used < e.times]
        if left:
            raise AssertionError(f"fake host {self.name}: expected but not run: {'; '.join(left)}")

    # -- Executor ------------------------------------------------------------------------
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
        self.ran.append(argv)
        self.calls.append(Call(argv, input, dict(env) if env is not None else None))
        reply = self._answer(argv, input)
        res = Result(argv, reply.rc, reply.stdout, reply.stderr)
        if check and not res.ok:
            raise CommandFailed(argv, res.returncode, res.stdout, res.stderr)
        return res

    def read_file(self, path: str) -> bytes | None:
        node = self._follow(path)
        if node is None:
            return None
        if node.kind == "dir":
            raise CommandFailed(("cat", "--", path), 1, "", f"cat: {path}: Is a directory")
        return node.data

    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, owner: str = "root", group: str = "root") -> None:
        real = self._place(path, create=True)
        existing = self.tree.get(real)
        if existing is not None and existing.kind == "dir":
            raise CommandFailed(("write_file", path), 1, "", f"{path} is a folder")
        # Renamed over path: a symlink at path is replaced, not followed (as the real executors do).
        self.tree[real] = Node("file", mode, owner, group, bytes(data))

    def stat(self, path: str) -> Stat | None:
        try:
            node = self.tree.get(self._place(path))
        except CommandFailed:
            return None  # a parent is a file: ENOTDIR, which stat reports as missing here
        if node is None:
            return None
        return Stat(
            mode=node.mode,
            owner=node.owner,
            group=node.group,
            is_dir=node.kind == "dir",
            is_link=node.kind == "link",
            link_target=node.target if node.kind == "link" else None,
        )

    def extract_tar(self, data: bytes, dest: str) -> None:
        argv = C.extract_tar(dest)
        self.ran.append(argv)
        self.calls.append(Call(argv, data, None))
        root = self._follow(dest)
        if root is None or root.kind != "dir":
            raise CommandFailed(argv, 2, "", f"tar: {dest}: Cannot open: No such file or directory")
        base = self._abs(dest)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                name = posixpath.normpath(m.name)
                if name.startswith(("/", "../")) or name == "..":
                    raise CommandFailed(argv, 2, "", f"tar: {m.name}: refusing a member outside {dest}")
                path = posixpath.join(base, name)
                if m.isdir():
                    self.add_dir(path, mode=m.mode & ~TAR_UMASK)
                elif m.issym():
                    self.add_symlink(path, m.linkname)
                elif m.isfile():
                    fh = tar.extractfile(m)
                    self.add_file(path, fh.read() if fh else b"", mode=m.mode & ~TAR_UMASK)
                else:
                    raise CommandFailed(argv, 2, "", f"fake host: tar member {m.name} of an unsupported kind")

    def lock(self, path: str, holder: str) -> HostLock:
        path = self._abs(path)
        if path in self.locks:
            raise LockHeld(f"another deploy holds the lock {path}: {self.locks[path]}; wait for it to finish")
        self.locks[path] = holder
        self.write_file(path, holder.encode(), mode=0o600)
        return _FakeLock(self, path)

    # -- answering commands ---------------------------------------------------------------
    def _answer(self, argv: tuple[str, ...], input: bytes | None) -> Reply:
        matching = [e for e in self.expectations if e.matches(argv)]
        for exp in matching:
            if exp.left:
                exp.used += 1
                return exp.respond(argv, input) if exp.respond else exp.reply
        builtin = self._builtin(argv)
        if builtin is not None:
            return builtin
        if matching:
            problem = f"fake host {self.name}: command ran more often than expected: {argv!r} ({matching[0].describe()})"
        else:
            problem = f"fake host {self.name}: unexpected command {argv!r}"
        self.unexpected.append(problem)
        raise UnexpectedCommand(problem)

    def _builtin(self, argv: tuple[str, ...]) -> Reply | None:
        """The commands the Executor's helpers issue, carried out on the tree (None: not one)."""
        match argv:
            case ("mkdir", "-p", path):
                return self._mkdir_p(path)
            case ("chown", spec, path) if ":" in spec and not spec.startswith("-"):
                owner, group = spec.split(":", 1)

                def chown(n: Node) -> None:
                    n.owner, n.group = owner, group

                return self._change(argv, path, chown)
            case ("chmod", mode, path) if mode.isdigit():
                return self._change(argv, path, lambda n: setattr(n, "mode", int(mode, 8)))
            case ("ln", "-sfn", target, path):
                self.add_symlink(path, target)  # -n: a link at path is replaced, not followed
                return Reply()
            case ("mv", "-Tf" | "-f", src, dst):
                return self._mv(argv, src, dst)
            case ("rm", "-rf", "--", path):
                self._rm_rf(path)
                return Reply()
            case ("sh", "-c", script) if script.startswith("command -v "):
                words = shlex.split(script)
                if len(words) == 3:
                    return self._command_v(words[2])
        return None

    def _mkdir_p(self, path: str) -> Reply:
        node = self._follow(path)
        if node is not None:
            if node.kind != "dir":
                return Reply(rc=1, stderr=f"mkdir: cannot create directory '{path}': File exists")
            return Reply()
        try:
            self.tree[self._place(path, create=True)] = Node("dir", 0o755)
        except CommandFailed as exc:
            return Reply(rc=1, stderr=f"mkdir: cannot create directory '{path}': {exc.stderr}")
        return Reply()

    def _change(self, argv: tuple[str, ...], path: str, change: Callable[[Node], None]) -> Reply:
        node = self._follow(path)  # chown and chmod follow a symlink
        if node is None:
            return Reply(rc=1, stderr=f"{argv[0]}: cannot access '{path}': No such file or directory")
        change(node)
        return Reply()

    def _mv(self, argv: tuple[str, ...], src: str, dst: str) -> Reply:
        src, dst = self._place(src), self._place(dst)
        if src not in self.tree:
            return Reply(rc=1, stderr=f"mv: cannot stat '{src}': No such file or directory")
        target = self.tree.get(dst)
        if argv[1] == "-f" and target is not None and (self._follow(dst) or target).kind == "dir":
            dst = posixpath.join(dst, posixpath.basename(src))  # without -T, into the folder
        elif target is not None and target.kind == "dir":
            return Reply(rc=1, stderr=f"mv: cannot overwrite directory '{dst}'")
        moved = {p: n for p, n in self.tree.items() if p == src or p.startswith(src.rstrip("/") + "/")}
        for p in moved:
            del self.tree[p]
        self._rm_rf(dst)
        for p, n in moved.items():
            self.tree[dst + p[len(src):]] = n
        return Reply()

    def _rm_rf(self, path: str) -> None:
        path = self._place(path)
        for p in [p for p in self.tree if p == path or p.startswith(path.rstrip("/") + "/")]:
            if p != "/":
                del self.tree[p]

    def _command_v(self, program: str) -> Reply:
        candidates = [program] if "/" in program else [posixpath.join(d, program) for d in SEARCH_PATH]
        for path in candidates:
            node = self._follow(path)
            if node is not None and node.kind == "file" and node.mode & 0o111:
                return Reply(stdout=path + "\n")
        return Reply(rc=1)

    # -- paths ----------------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        if not path.startswith("/"):
            raise AssertionError(f"fake host {self.name}: a relative path {path!r} (hosts get absolute paths)")
        return "/" + posixpath.normpath(path).lstrip("/")

    def _place(self, path: str, *, create: bool = False, depth: int = 0) -> str:
        """Where path lives in the tree: its parent folders' symlinks resolved, its last part
        kept (as lstat and rename see it). With create, missing parents become folders
        (root, 0755), as `mkdir -p` and the executors' write_file make them."""
        parts = [p for p in self._abs(path).split("/") if p]
        real = "/"
        for part in parts[:-1]:
            candidate = posixpath.join(real, part)
            node = self.tree.get(candidate)
            if node is None:
                if create:
                    self.tree[candidate] = Node("dir", 0o755)
                real = candidate
            elif node.kind == "link":
                real = self._resolve(candidate, depth + 1)
                if create and real not in self.tree:
                    raise CommandFailed(("mkdir", "-p", path), 1, "", f"{candidate} is a dangling symlink")
            elif node.kind == "dir":
                real = candidate
            else:
                raise CommandFailed(("test", "-d", candidate), 1, "", f"{candidate}: Not a directory")
        return posixpath.join(real, parts[-1]) if parts else "/"

    def _resolve(self, path: str, depth: int = 0) -> str:
        """path with every symlink resolved, the last part's too (as open and stat do)."""
        if depth > MAX_LINKS:
            raise CommandFailed(("stat", path), 1, "", f"{path}: Too many levels of symbolic links")
        real = self._place(path, depth=depth + 1)
        node = self.tree.get(real)
        if node is not None and node.kind == "link":
            target = node.target if node.target.startswith("/") else posixpath.join(posixpath.dirname(real), node.target)
            return self._resolve(target, depth + 1)
        return real

    def _follow(self, path: str) -> Node | None:
        try:
            return self.tree.get(self._resolve(path))
        except CommandFailed:
            return None  # a parent is a file: nothing there


class FakeClock:
    """A Clock whose sleep returns at once and moves time on by what was asked (see garrison/clock.py)."""

    def __init__(self, start: float = 1000.0, wall: datetime = datetime(2026, 1, 1, tzinfo=UTC)):
        self.start = self.time = start
        self.wall = wall
        self.slept: list[float] = []  # each sleep, in order

    def monotonic(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")  # as time.sleep
        self.slept.append(seconds)
        self.time += seconds

    def advance(self, seconds: float) -> None:
        """Time passing while the code under test works (not sleeping)."""
        self.time += seconds

    def now(self) -> datetime:
        return self.wall + timedelta(seconds=self.time - self.start)
