"""Disposable servers on this machine for end-to-end tests: the `hostlab` fixture.

A lab host is what a deploy sees as a fresh Debian server, made in ~0.2 s:

- its own network namespace `garlab-<name>` with one veth (`eth0`, a stable
  MAC derived from its IP) on the bridge `garbr0` (10.200.9.1/24). The bridge
  lives in the machine's root netns because the SSH client under test (this
  pytest process) runs there and must reach the hosts directly; it adds one
  interface and one connected route, nothing else: no forwarding, no NAT, no
  default route inside the hosts, so a host reaches only the bridge subnet;
- `unshare --mount --uts --pid --fork --mount-proc` with copy-on-write overlay
  mounts over /etc /usr /var /srv /home /opt /root (upper/work dirs in this
  lab's temp folder), fresh tmpfs /run and /tmp, and the rest of / read-only
  inside the host, so nothing done in a host reaches the real machine;
- its own hostname, and `sshd -D` on ports 22 and 2222 with its own ed25519
  host key, key-only auth with the lab's client key for root
  (`UsePAM yes`, `StrictModes no`, `SetEnv SHLVL=1` so root's .bashrc skips
  pyenv), logging to /var/log/garrison-lab-sshd.log inside the host;
- a tiny init (the distribution's python3) as the namespace's PID 1: it
  reaps orphans (as a real init does) and restarts sshd if it exits.

Limits: /dev (and /dev/shm) is the machine's; the overlays' lower layers are
the machine's live folders, so a file another process changes there shows
through in a host unless the host wrote its own copy. The hosts have no route
out (apt and pip inside need local .debs / a wheelhouse: see fetch_deb).

Cleanup always happens: the fixture finalizer and an atexit hook kill every
host's namespace PID 1 by PID (that kills the whole namespace), delete the
namespaces and the bridge and remove the temp folder. If the pytest process
is SIGKILLed, `setpriv --pdeathsig` + `unshare --kill-child` take the hosts
down with it; the next lab sweeps the leftover namespaces, links and folders
(under a lock file, so two labs never run at once and never sweep each other).

Use from a test module:

    from tests.hostlab import hostlab  # noqa: F401  (the fixture)

    def test_x(hostlab):
        a = hostlab.host("a")          # LabHost(name, address, port, ...)
        kh = hostlab.known_hosts([a])  # a known_hosts file trusting it
        a.exec("id", "-un")            # as root inside the host, no SSH

Create hosts from the main thread: the pdeathsig ties each host to the
thread that started it.
"""

from __future__ import annotations

import atexit
import fcntl
import glob
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUBNET = ipaddress.ip_network("10.200.9.0/24")
GATEWAY = "10.200.9.1"
BRIDGE = "garbr0"
NETNS_PREFIX = "garlab-"
VETH_PREFIX = "garv"
FIRST_HOST_OCTET = 10
UNUSED_ADDRESS = "10.200.9.250"  # never given to a host: an unreachable server
SSH_PORTS = (22, 2222)
LOCK_FILE = "/tmp/garrison-hostlab.lock"
STATE_PREFIX = "garrison-hostlab-"
DEB_CACHE = "/tmp/garrison-debcache"
OVERLAID = ("etc", "usr", "var", "srv", "home", "opt", "root")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAB_SSH_DIR = "/etc/ssh/garrison-lab"  # inside a host
SSHD_LOG = "/var/log/garrison-lab-sshd.log"  # inside a host
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "setpriv", "mount", "ssh-keygen", "/usr/sbin/sshd", "/usr/bin/python3")

# PID 1 of a host: reap every child (orphans included), keep sshd running.
_INIT = r"""
import os, sys, time
argv = sys.argv[1:]
env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
child = os.posix_spawn(argv[0], argv, env)
while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        time.sleep(0.5)
        continue
    if pid == child:
        time.sleep(0.05)
        child = os.posix_spawn(argv[0], argv, env)
"""

# Runs as the new namespaces' PID 1 before it becomes _INIT. $S is the host's state folder.
_SETUP = r"""
set -e
# Forget the machine's netns bind mounts copied into this mount namespace: they
# would keep other hosts' namespaces (and veths) alive after `ip netns del`.
if mountpoint -q /run/netns; then umount -R -l /run/netns; fi
for d in $OVERLAID; do
  mount -t overlay "lab-$d" -o "lowerdir=/$d,upperdir=$S/upper/$d,workdir=$S/work/$d" "/$d"
done
# Everything not overlaid is read-only in here: a stray write fails instead of
# reaching the machine. (The overlays were mounted first: they keep their own
# writable view of the upper folders.)
mount -o remount,bind,ro /
mount -t tmpfs -o mode=0755,nosuid,nodev lab-run /run
mount -t tmpfs -o mode=1777,nosuid,nodev lab-tmp /tmp
mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd
chmod 1777 /run/lock
hostname "$HOSTNAME_LAB"
exec /usr/bin/python3 -I -S -c "$INIT" /usr/sbin/sshd -D -E "$SSHD_LOG" -f "$LAB_SSH_DIR/sshd_config"
"""

_SSHD_CONFIG = """\
Port 22
Port 2222
ListenAddress 0.0.0.0
HostKey {lab_dir}/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile {lab_dir}/authorized_keys/%u .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM yes
StrictModes no
SetEnv SHLVL=1
UseDNS no
PrintMotd no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 30
AllowTcpForwarding yes
Subsystem sftp internal-sftp
"""


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "host lab needs root (network namespaces, overlay mounts)"
    for tool in REQUIRED_TOOLS:
        if not shutil.which(tool):
            return f"host lab needs {tool}"
    return None


def _run(*argv: str, check: bool = True, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def _ip_batch(commands: list[str], netns: str | None = None) -> None:
    """Run `ip` commands in one process (fast), in netns if given; fail with the failing line."""
    where = ("-n", netns) if netns else ()
    _run("ip", *where, "-batch", "-", input="\n".join(commands).encode() + b"\n")


def _mac_for(address: str) -> str:
    """A stable, locally administered MAC from the IP (so neighbours' caches stay right)."""
    octets = [int(x) for x in address.split(".")]
    return "02:00:" + ":".join(f"{o:02x}" for o in octets)


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def sweep_leftovers() -> list[str]:
    """Remove what a crashed earlier lab left: its hosts' processes, namespaces, links, folders.

    Call only while holding LOCK_FILE (then nothing found belongs to a live lab).
    """
    removed: list[str] = []
    for line in _run("ip", "netns", "list", check=False).stdout.decode().splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns.startswith(NETNS_PREFIX):
            continue
        for pid in _run("ip", "netns", "pids", ns, check=False).stdout.decode().split():
            _kill_pid(int(pid))
        _run("ip", "netns", "del", ns, check=False)
        removed.append(f"netns {ns}")
    links = _run("ip", "-o", "link", "show", check=False).stdout.decode().splitlines()
    for line in links:
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        if name == BRIDGE or name.startswith(VETH_PREFIX):
            _run("ip", "link", "del", name, check=False)
            removed.append(f"link {name}")
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), STATE_PREFIX + "*")):
        if os.path.isdir(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@dataclass
class LabHost:
    """One disposable server: reach it over SSH at address:port as root with lab.client_key."""

    name: str
    address: str
    port: int
    netns: str
    veth: str
    state_dir: Path
    host_key_pub: str  # "ssh-ed25519 AAAA... name"
    lab: HostLab = field(repr=False)
    pid: int = 0  # the namespace's PID 1, as the machine sees it
    manager: str = "supervisord"  # what Garrison finds here: PID 1 is not systemd (tests/systemdlab.py for that)
    created_in: float = 0.0  # seconds
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def known_hosts_line(self, port: int = 22) -> str:
        pattern = self.address if port == 22 else f"[{self.address}]:{port}"
        return f"{pattern} {' '.join(self.host_key_pub.split()[:2])}\n"

    def exec(
        self, *argv: str, input: bytes | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run argv as root inside the host (its namespaces and mounts), without SSH."""
        if not self.alive:
            raise RuntimeError(f"lab host {self.name} is not running")
        env = {"PATH": HOST_PATH, "HOME": "/root", "LC_ALL": "C.UTF-8"}
        full = ("nsenter", "-t", str(self.pid), "-a", "-r", "-w", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv)
        proc = subprocess.run(full, input=input, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"[{self.name}] {' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc

    def sh(self, script: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.exec("sh", "-c", script, "sh", *args, **kw)

    def sshd_log(self) -> str:
        return self.exec("cat", SSHD_LOG, check=False).stdout.decode(errors="replace")

    def accepted_logins(self) -> list[str]:
        """sshd's "Accepted publickey for USER from IP port N" lines: one per connection."""
        return [line for line in self.sshd_log().splitlines() if "Accepted publickey" in line]

    def add_user(self, user: str, *, authorized_key: str | None = None, sudo: bool = False) -> None:
        """Add a login user (home, /bin/sh); authorize a public key (default: the lab's client key)."""
        key = authorized_key if authorized_key is not None else self.lab.client_pub
        self.sh(
            'id -u "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$1"\n'
            'printf "%s\\n" "$2" > "$3/authorized_keys/$1"\n'
            'if [ "$4" = 1 ]; then printf "%s ALL=(ALL) NOPASSWD: ALL\\n" "$1" > "/etc/sudoers.d/lab-$1"; '
            'chmod 440 "/etc/sudoers.d/lab-$1"; fi\n',
            user,
            key.strip(),
            LAB_SSH_DIR,
            "1" if sudo else "0",
        )

    def install_deb(self, deb: Path) -> None:
        """Install a .deb inside the host (its overlay only): the machine is untouched."""
        self.exec("sh", "-c", 'cat > /tmp/lab.deb && dpkg -i /tmp/lab.deb && rm -f /tmp/lab.deb', input=deb.read_bytes())

    def regenerate_host_key(self, timeout: float = 10) -> str:
        """A new host key (as after a reinstall); waits until sshd serves it. Returns the public key."""
        self.sh(
            'rm -f "$1/ssh_host_ed25519_key" "$1/ssh_host_ed25519_key.pub"\n'
            'ssh-keygen -q -t ed25519 -N "" -C "$2" -f "$1/ssh_host_ed25519_key"\n'
            'kill "$(cat /run/sshd.pid)"\n',  # init restarts sshd, which loads the new key
            LAB_SSH_DIR,
            self.name,
        )
        self.host_key_pub = self.exec("cat", f"{LAB_SSH_DIR}/ssh_host_ed25519_key.pub").stdout.decode().strip()
        deadline = time.monotonic() + timeout
        time.sleep(0.1)
        while not self._sshd_running() or not _port_open(self.address, 22):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd on lab host {self.name} did not come back")
            time.sleep(0.02)
        return self.host_key_pub

    def _sshd_running(self) -> bool:
        """The pid in /run/sshd.pid is alive (the killed sshd's pid is not, until the new one writes)."""
        return self.sh('kill -0 "$(cat /run/sshd.pid 2>/dev/null)" 2>/dev/null', check=False).returncode == 0

    def stop(self) -> None:
        """Kill the namespace's PID 1 (which kills everything in it), delete its netns, folders."""
        if self._proc is not None:
            if self.pid:
                _kill_pid(self.pid)
            if self._proc.poll() is None:
                _kill_pid(self._proc.pid)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        for pid in _run("ip", "netns", "pids", self.netns, check=False).stdout.decode().split():
            _kill_pid(int(pid))
        _run("ip", "netns", "del", self.netns, check=False)
        _run("ip", "link", "del", self.veth, check=False)
        _run("ip", "neigh", "flush", "to", self.address, check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _port_open(address: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class HostLab:
    """Makes and tracks lab hosts; close() (or the fixture) removes them all."""

    def __init__(self, lock_timeout: float = 300):
        reason = lab_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self._lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._lock_fd)
                    raise RuntimeError(f"another host lab holds {LOCK_FILE} (a test run in parallel?)") from None
                time.sleep(0.2)
        os.ftruncate(self._lock_fd, 0)
        os.write(self._lock_fd, f"{os.getpid()}\n".encode())
        self.swept = sweep_leftovers()
        self.dir = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
        self.hosts: dict[str, LabHost] = {}
        self._next_octet = FIRST_HOST_OCTET
        self._closed = False
        atexit.register(self.close)
        # The client key every host trusts for root.
        self.client_key = self.dir / "client_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "garrison-hostlab", "-f", str(self.client_key))
        self.client_pub = (self.dir / "client_ed25519.pub").read_text().strip()
        _ip_batch(
            [
                f"link add {BRIDGE} type bridge",
                f"link set {BRIDGE} address {_mac_for(GATEWAY)}",
                f"addr add {GATEWAY}/{SUBNET.prefixlen} dev {BRIDGE}",
                f"link set {BRIDGE} up",
            ]
        )
        Path(f"/proc/sys/net/ipv6/conf/{BRIDGE}/disable_ipv6").write_text("1")

    # -- hosts ----------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        """The running host called name, made now if needed (same name → same address)."""
        existing = self.hosts.get(name)
        if existing is not None and existing.alive:
            return existing
        if existing is not None:
            existing.stop()
            address = existing.address
        else:
            address = str(SUBNET.network_address + self._next_octet)
            self._next_octet += 1
            if address == UNUSED_ADDRESS:
                raise RuntimeError("lab subnet exhausted")
        host = self._create(name, address)
        self.hosts[name] = host
        return host

    def _create(self, name: str, address: str) -> LabHost:
        if not name.replace("-", "").isalnum() or len(name) > 40:
            raise ValueError(f"lab host name must be alphanumeric/dashes: {name!r}")
        t0 = time.monotonic()
        octet = address.rsplit(".", 1)[1]
        netns, veth = f"{NETNS_PREFIX}{name}", f"{VETH_PREFIX}{octet}"
        # Idempotent against leftovers with the same names (a crashed run, a stopped host).
        for pid in _run("ip", "netns", "pids", netns, check=False).stdout.decode().split():
            _kill_pid(int(pid))
        _run("ip", "netns", "del", netns, check=False)
        _run("ip", "link", "del", veth, check=False)

        state = self.dir / name
        shutil.rmtree(state, ignore_errors=True)
        for d in OVERLAID:
            upper, work = state / "upper" / d, state / "work" / d
            upper.mkdir(parents=True)
            work.mkdir(parents=True)
            st = os.stat(f"/{d}")  # the merged root of each overlay shows the upper folder's mode
            os.chown(upper, st.st_uid, st.st_gid)
            os.chmod(upper, st.st_mode & 0o7777)
        etc = state / "upper" / "etc"
        lab_ssh = etc / LAB_SSH_DIR.removeprefix("/etc/")
        (lab_ssh / "authorized_keys").mkdir(parents=True)
        for folder in (etc / "ssh", lab_ssh, lab_ssh / "authorized_keys"):
            os.chmod(folder, 0o755)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(lab_ssh / "ssh_host_ed25519_key"))
        os.chmod(lab_ssh / "ssh_host_ed25519_key", 0o600)  # sshd resets connections otherwise
        (lab_ssh / "sshd_config").write_text(_SSHD_CONFIG.format(lab_dir=LAB_SSH_DIR))
        (lab_ssh / "authorized_keys" / "root").write_text(self.client_pub + "\n")
        (etc / "hostname").write_text(name + "\n")
        hosts_text = Path("/etc/hosts").read_text() if os.path.exists("/etc/hosts") else ""
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n{address}\t{name}\n" + hosts_text)
        host_key_pub = (lab_ssh / "ssh_host_ed25519_key.pub").read_text().strip()

        _ip_batch(
            [
                f"netns add {netns}",
                f"link add {veth} type veth peer name eth0 netns {netns}",
                f"link set {veth} master {BRIDGE} up",
                f"neigh flush to {address}",
            ]
        )
        _ip_batch(
            [
                "link set lo up",
                f"link set eth0 address {_mac_for(address)}",
                f"addr add {address}/{SUBNET.prefixlen} dev eth0",
                "link set eth0 up",
            ],
            netns=netns,
        )
        log = open(state / "host.log", "wb")
        env = {
            "PATH": HOST_PATH,
            "LC_ALL": "C.UTF-8",
            "HOME": "/root",
            "S": str(state),
            "OVERLAID": " ".join(OVERLAID),
            "HOSTNAME_LAB": name,
            "INIT": _INIT,
            "SSHD_LOG": SSHD_LOG,
            "LAB_SSH_DIR": LAB_SSH_DIR,
        }
        proc = subprocess.Popen(
            (
                "setpriv", "--pdeathsig", "KILL", "--",
                "ip", "netns", "exec", netns,
                "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child",
                "--propagation", "private",
                "sh", "-c", _SETUP,
            ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            close_fds=True,
        )
        log.close()
        host = LabHost(name, address, 22, netns, veth, state, host_key_pub, self, _proc=proc)
        try:
            host.pid = self._wait_pid1(proc)
            deadline = time.monotonic() + 15
            while not _port_open(address, 22, timeout=0.5):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"lab host {name} did not start: "
                        + (state / "host.log").read_text(errors="replace").strip()[-2000:]
                    )
                time.sleep(0.01)
        except BaseException:
            host.stop()
            raise
        host.created_in = time.monotonic() - t0
        return host

    @staticmethod
    def _wait_pid1(proc: subprocess.Popen) -> int:
        """The forked child of unshare: the new PID namespace's PID 1, as the machine sees it."""
        deadline = time.monotonic() + 5
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        while time.monotonic() < deadline:
            try:
                # setpriv → ip → unshare is one process (each execs the next); wait for the exec.
                exe = os.readlink(f"/proc/{proc.pid}/exe")
                kids = children.read_text().split()
            except OSError:
                kids, exe = [], ""
            if exe.endswith("unshare") and kids:
                return int(kids[0])
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        raise RuntimeError("unshare did not start its namespace")

    # -- helpers for tests ------------------------------------------------------

    def known_hosts(self, hosts: list[LabHost], path: Path | None = None, port: int = 22) -> Path:
        """A known_hosts file that trusts these hosts' current keys."""
        path = path or Path(tempfile.mkstemp(prefix="known_hosts-", dir=self.dir)[1])
        path.write_text("".join(h.known_hosts_line(port) for h in hosts))
        return path

    def new_client_key(self, name: str) -> Path:
        """Another client key pair (not authorized anywhere): <dir>/<name> and .pub."""
        key = self.dir / name
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        return key

    def fetch_deb(self, package: str) -> Path | None:
        """The package's .deb for this machine's distribution, or None.

        From DEB_CACHE, else `apt-get download` (the distribution's mirror) into
        it, unless GARRISON_LAB_OFFLINE=1. Nothing is installed on the machine.
        """
        os.makedirs(DEB_CACHE, exist_ok=True)
        found = sorted(Path(DEB_CACHE).glob(f"{package}_*.deb"))
        if found:
            return found[-1]
        if os.environ.get("GARRISON_LAB_OFFLINE") == "1":
            return None
        try:
            res = subprocess.run(
                ("apt-get", "download", package), cwd=DEB_CACHE, capture_output=True, timeout=90
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = sorted(Path(DEB_CACHE).glob(f"{package}_*.deb"))
        return found[-1] if res.returncode == 0 and found else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in list(self.hosts.values()):
            try:
                host.stop()
            except Exception:
                pass
        self.hosts.clear()
        _run("ip", "link", "del", BRIDGE, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.close(self._lock_fd)  # releases the lab lock
        except OSError:
            pass


_SHARED: HostLab | None = None
_SHARED_USERS = 0


@pytest.fixture(scope="session")
def hostlab():
    """Session-wide factory of disposable servers: hostlab.host("a") -> LabHost.

    One lab per process even when several test modules import this fixture
    (each import is its own fixture definition): they share it, and the last
    one to finish closes it.
    """
    global _SHARED, _SHARED_USERS
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if _SHARED is None or _SHARED._closed:
        _SHARED = HostLab()
    lab = _SHARED
    _SHARED_USERS += 1
    try:
        yield lab
    finally:
        _SHARED_USERS -= 1
        if _SHARED_USERS == 0:
            lab.close()
            _SHARED = None
