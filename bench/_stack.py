"""Machinery for bench/serve.py: venv, processes, nginx masters, wrk, memory.

Everything here acts only on what the benchmark itself created: processes it
started (tracked by PID, each in a session of its own), files under its own
prefix in /tmp, ports it checked were free. It never signals a process it did
not start and never touches /etc/nginx, /srv or the system nginx.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("GARRISON_BENCH_CACHE", "/tmp/garrison-bench"))
SYSTEM_PYTHON = "/usr/bin/python3"
# What the app servers need. gunicorn 27 declares `packaging` only under its
# gevent extra: plain `gunicorn gevent` crash-loops every worker.
APP_PACKAGES = ("flask", "gunicorn[gevent]", "granian")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the venv
def app_venv() -> Path:
    """One venv for every app server, built from the distribution's python and reused.

    Not the pyenv python3 on PATH: it lives under /root (mode 700), which an
    unprivileged user cannot read, and a real server has no pyenv.
    """
    key = hashlib.sha256(" ".join((SYSTEM_PYTHON, *APP_PACKAGES)).encode()).hexdigest()[:12]
    venv = CACHE / f"venv-{key}"
    marker = venv / ".bench-complete"
    if marker.exists():
        return venv
    log(f"building the app-server venv {venv} from {SYSTEM_PYTHON}: {' '.join(APP_PACKAGES)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    os.chmod(CACHE, 0o755)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
    res = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", "--disable-pip-version-check", *APP_PACKAGES],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise SystemExit(f"pip install into {venv} failed:\n{res.stdout}\n{res.stderr}")
    marker.write_text("ok\n")
    return venv


def package_versions(venv: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, sys\n"
        "print('python', sys.version.split()[0])\n"
        "for p in ('flask', 'gunicorn', 'gevent', 'granian'):\n"
        "    print(p, m.version(p))\n"
    )
    out = subprocess.run([str(venv / "bin/python"), "-c", code], capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


# ---------------------------------------------------------------- processes
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    stop_signal: int


@dataclass
class Procs:
    """Every process the benchmark started, stopped by PID in reverse order."""

    items: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        logfile: str | None = None,
        stop_signal: int = signal.SIGTERM,
        umask: int | None = None,
    ) -> subprocess.Popen:
        out = open(logfile, "ab") if logfile else subprocess.DEVNULL

        def pre() -> None:
            if umask is not None:
                os.umask(umask)

        # A session of its own: its workers share its process group, so that
        # whatever is left of it can be found (and only it) when it is stopped.
        p = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pre,
        )
        if logfile:
            out.close()  # type: ignore[union-attr]
        self.items.append(Proc(name, p, stop_signal))
        return p

    def stop(self, proc: Proc, timeout: float = 15.0) -> None:
        p = proc.popen
        if p.poll() is None:
            try:
                os.kill(p.pid, proc.stop_signal)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{proc.name} (pid {p.pid}) did not stop in {timeout:.0f}s: SIGKILL")
        # Whatever still runs in its process group (workers of a killed master).
        for pid in _group_members(p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)

    def stop_all(self) -> None:
        while self.items:
            proc = self.items.pop()
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                log(f"stopping {proc.name}: {exc}")


def _proc_stats():
    """(pid, [state, ppid, pgrp, ...]) for every process: /proc/<pid>/stat after the
    command name (which may hold spaces or ")": split at the last ")")."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        yield int(d), stat.rsplit(")", 1)[1].split()


def _group_members(pgid: int) -> list[int]:
    return [pid for pid, fields in _proc_stats() if int(fields[2]) == pgid]


class Interrupted(BaseException):
    pass


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP/SIGINT unwind through the caller's finally, which cleans up."""

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)


# ---------------------------------------------------------------- memory
def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, fields in _proc_stats():
        children.setdefault(int(fields[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _kb(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> tuple[float, float, int]:
    """(RSS MB, PSS MB, process count) of a process and all its descendants.

    RSS is the sum of VmRSS (pages shared after fork are counted once per
    process, as `ps` would); PSS splits shared pages fairly and is the better
    measure of what the tree really costs.
    """
    pids = descendants(root)
    rss = sum(_kb(f"/proc/{p}/status", "VmRSS") for p in pids)
    pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    return rss / 1024, pss / 1024, len(pids)


# ---------------------------------------------------------------- other work on the machine
def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def _tree_jiffies(root: int) -> int:
    """CPU ticks used by a process tree, including its reaped children (cutime/cstime)."""
    total = 0
    for pid in descendants(root):
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after ")": state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total


class CpuMeter:
    """Share of the machine's CPU that processes other than ours used in a window."""

    def __init__(self, procs: Procs) -> None:
        self.procs = procs

    def snapshot(self) -> tuple[int, int, int]:
        # Every process we started is a child of ours (nginx runs with `daemon off`),
        # and wrk's ticks land in our cutime once it is reaped.
        ours = _tree_jiffies(os.getpid())
        busy, total = _machine_jiffies()
        return busy, total, ours

    @staticmethod
    def foreign(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
        """Fraction (0..1) of all cores' time spent by others between snapshots a and b."""
        total = b[1] - a[1]
        if total <= 0:
            return 0.0
        return max(0.0, (b[0] - a[0]) - (b[2] - a[2])) / total

    def wait_quiet(self, threshold: float, max_wait: float, window: float = 1.0) -> tuple[float, float]:
        """Until others use less than `threshold` of the machine over `window`, at most `max_wait` s.

        Returns (seconds waited, the last window's foreign share)."""
        t0 = time.monotonic()
        while True:
            a = self.snapshot()
            time.sleep(window)
            share = self.foreign(a, self.snapshot())
            waited = time.monotonic() - t0
            if share < threshold or waited >= max_wait:
                return waited, share


# ---------------------------------------------------------------- network
def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(port: int, path: str, deadline: float, proc: subprocess.Popen | None = None) -> None:
    """Until GET 127.0.0.1:port/path answers 2xx; raise with the reason otherwise."""
    end = time.monotonic() + deadline
    last = "no answer"
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before answering")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if 200 <= r.status < 300:
                return
            last = f"HTTP {r.status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer 2xx in {deadline:.0f}s ({last})")


# ---------------------------------------------------------------- nginx
def nginx_main_conf(prefix: Path, site: Path, user: str = "www-data") -> str:
    """The http{} wrapper both stacks share: Debian 12's stock nginx.conf, with
    every path (pid, logs, temp files) moved into this stack's prefix and the
    master kept in the foreground so that its PID is the one we started."""
    return f"""# nginx master of one benchmark stack; Debian 12's /etc/nginx/nginx.conf, paths moved into {prefix}.
user {user};
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
daemon off;

events {{
    worker_connections 768;
}}

http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix}/logs/access.log;
    gzip on;

    client_body_temp_path {prefix}/temp/client_body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;

    include {site};
}}
"""


def start_nginx(procs: Procs, name: str, prefix: Path, site: Path) -> subprocess.Popen:
    for d in ("logs", "temp"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_main_conf(prefix, site))
    base = [NGINX, "-p", f"{prefix}/", "-c", str(conf), "-e", f"{prefix}/logs/error.log"]
    res = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"nginx -t for {name} failed:\n{res.stderr}")
    # SIGQUIT: graceful shutdown of the master and its workers.
    return procs.start(f"nginx {name}", base, logfile=str(prefix / "logs/stderr.log"), stop_signal=signal.SIGQUIT)


# ---------------------------------------------------------------- wrk
@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int
    raw: str

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"latency {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    def grab(pattern: str, default: str | None = None) -> str:
        m = re.search(pattern, out, re.M)
        if m:
            return m.group(1)
        if default is None:
            raise ValueError(f"wrk output without {pattern!r}:\n{out}")
        return default

    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(grab(r"^Requests/sec:\s+([0-9.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)")),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)")),
        requests=int(grab(r"^\s+(\d+) requests in")),
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
        non_2xx=int(grab(r"Non-2xx or 3xx responses: (\d+)", "0")),
        raw=out,
    )


def run_wrk(procs: Procs, url: str, duration: int, connections: int, threads: int = 2) -> WrkResult:
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url]
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    entry = Proc(f"wrk {url}", wrk, signal.SIGINT)
    procs.items.append(entry)  # so that an interrupt stops it too
    try:
        out, _ = wrk.communicate(timeout=duration + 30)
    finally:
        if entry in procs.items:
            procs.items.remove(entry)
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    return parse_wrk(out)


def count_lines(path: Path, needle: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if needle.encode() in line)
    except OSError:
        return 0
