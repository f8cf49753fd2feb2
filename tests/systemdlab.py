"""Disposable servers that boot a real systemd as PID 1: the `systemdlab` fixture.

tests/hostlab.py makes servers whose PID 1 is a tiny init (so Garrison takes its
supervisord path there). Real VPSs run systemd as PID 1, and that is Garrison's
main production path; this module owns lab servers that boot the machine's own
systemd (252 on Debian 12) as PID 1, so that path runs end to end, with reboots.

A systemd lab host is:

- its own network namespace `garsd-<name>` with one veth (`eth0`, a stable MAC
  derived from its IP) on the bridge `garsdbr0` (10.200.10.1/24) in the
  machine's root netns, where the SSH client under test runs. No forwarding, no
  NAT, no default route inside: a host reaches only the bridge subnet. The
  netns is made afresh on every boot (a real reboot loses addresses and
  netfilter rules too); the address and MAC stay;
- new mount, UTS, IPC, PID and cgroup namespaces, whose root is one overlayfs:
  lower = the machine's `/` (never written), upper = the host's persistent
  *disk* (a folder kept across reboots). When the disk is made, /etc is copied
  into it (opaque: files other tests rewrite on the machine's /etc later never
  show through, nor do the machine's cron @reboot jobs), and the folders given
  as `empty` start empty;
- fresh on every boot: tmpfs /run and /tmp, a minimal /dev with its own devpts,
  read-only sysfs, /proc with /proc/sys read-only except /proc/sys/net, a new
  boot id, /dev/console = a pty whose output goes to <state>/console.log;
- cgroup2 `<machine cgroup2>/garrison-sdlab-<name>` as the root of its cgroup
  namespace (PID 1 joins it before the namespace is made, so systemd finds no
  foreign process in its tree);
- PID 1 = /lib/systemd/systemd (environment `container=garrison-lab`), with a
  bounding set lacking the capabilities that reach the machine (modules,
  clock, raw I/O, kernel log): it cannot load modules or set the clock;
- the distribution's ssh.service, started BY systemd, with the lab's
  sshd_config: its own ed25519 host key, key-only login as root with the lab's
  client key (`SetEnv SHLVL=1` so root's .bashrc skips pyenv).

It is not a security boundary (root, the same kernel, CAP_SYS_ADMIN kept): it
keeps honest tools apart, nothing more. Resource limits (MemoryMax=, CPUQuota=)
are accepted but not enforced: this machine binds every controller to cgroup v1.

A launcher process (the distribution's python3, _LAUNCHER below) owns each
host's boots: it makes the netns, starts PID 1, relays the console, and when
PID 1 ends by a reboot (reboot(2) in a PID namespace kills its init with
SIGHUP) or a power cut (SIGKILL) it boots the same disk again, as a machine
does; a poweroff inside (SIGINT) or `down()` ends it. Every boot appends a
line "<n> <CLOCK_MONOTONIC seconds>" to <state>/boots, so a test measures from
the moment the machine (re)started.

Cleanup: the fixture finalizer and an atexit hook stop every host (its PID 1
and its launcher, by PID), delete the namespaces, links, cgroups and folders.
If pytest is SIGKILLed, `--pdeathsig` chains take the launcher, unshare and
the namespace with it; the next lab sweeps leftovers under LOCK_FILE.

Use:

    from tests.systemdlab import systemdlab  # noqa: F401  (the fixture)

    def test_x(systemdlab):
        h = systemdlab.host("s1")            # booted, systemd `running` (or degraded)
        h.exec("systemctl", "is-system-running")
        h.reboot("graceful")                 # `systemctl reboot` inside; "hard": SIGKILL PID 1
"""

from __future__ import annotations

import atexit
import fcntl
import glob
import ipaddress
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SUBNET = ipaddress.ip_network("10.200.10.0/24")  # hostlab.py has 10.200.9.0/24
GATEWAY = "10.200.10.1"
BRIDGE = "garsdbr0"
NETNS_PREFIX = "garsd-"
VETH_PREFIX = "garsdv"
CGROUP_PREFIX = "garrison-sdlab-"
FIRST_HOST_OCTET = 10
LOCK_FILE = "/tmp/garrison-systemdlab.lock"
STATE_PREFIX = "garrison-systemdlab-"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEMD = "/lib/systemd/systemd"
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "setpriv", "mount", "pivot_root", "ssh-keygen", "/usr/sbin/sshd",
                  "/usr/bin/python3", SYSTEMD)
LAB_KEYS_DIR = "/etc/ssh/garrison-lab-keys"  # inside a host: authorized keys per user
# Units of this machine that have no business in a lab host: gettys (no terminals), the
# clock (CAP_SYS_TIME is dropped), apt/man-db timers (no route out), a machine-wide Postgres.
MASKED_UNITS = (
    "console-getty.service", "getty@tty1.service", "serial-getty@console.service",
    "systemd-timesyncd.service", "systemd-pstore.service", "e2scrub_reap.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "fstrim.timer", "e2scrub_all.timer",
    "dpkg-db-backup.timer", "logrotate.timer", "postgresql.service", "postgresql@.service",
    "redis-server.service", "systemd-networkd-wait-online.service",
)
# A fresh server has none of Garrison's own folders, but the machine under the overlay may have
# them (local deploys of other tests): these start empty on a new disk, and the copied /etc
# loses the machine's Garrison files (its cron @reboot entry would start supervisord at boot).
FRESH_EMPTY = ("/srv", "/opt/garrison", "/var/log/garrison", "/var/cache/garrison", "/var/lib/garrison")
FRESH_HIDE = ("/etc/cron.d/garrison*", "/etc/garrison", "/etc/systemd/system/*@.service")
# Capabilities the host's PID 1 never gets: they reach the machine, not the namespace.
# CAP_SYS_BOOT stays: in a PID namespace reboot(2) only ends the namespace's init (with
# SIGHUP, which the launcher reads as "boot again"); without it systemd-shutdown gets EPERM
# and merely exits, which looks like a poweroff.
DROPPED_CAPS = ("sys_module", "sys_time", "sys_rawio", "mac_admin", "mac_override", "syslog",
                "wake_alarm", "block_suspend", "audit_read", "audit_control", "sys_pacct", "bpf", "perfmon",
                "checkpoint_restore")


def _cgroup2_root() -> str:
    """Where cgroup2 is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid, this machine)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "/sys/fs/cgroup"
    return "/sys/fs/cgroup/unified"


def lab_unavailable_reason() -> str | None:
    """Why a systemd lab host cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "the systemd lab needs root (namespaces, overlay and cgroup mounts)"
    for tool in REQUIRED_TOOLS:
        if not shutil.which(tool) and not os.access(tool, os.X_OK):
            return f"the systemd lab needs {tool}"
    try:
        if Path("/proc/1/comm").read_text().strip() == "systemd":
            # Our cgroup would sit inside the machine systemd's tree, which it manages.
            return "the systemd lab needs a machine whose PID 1 is not systemd"
    except OSError:
        pass
    if not os.path.exists(os.path.join(_cgroup2_root(), "cgroup.procs")):
        return "the systemd lab needs a cgroup2 mount (/sys/fs/cgroup or /sys/fs/cgroup/unified)"
    return None


def _run(*argv: str, check: bool = True, input: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def _mac_for(address: str) -> str:
    """A stable, locally administered MAC from the IP (a rebooted host keeps its neighbours' ARP right)."""
    return "02:00:" + ":".join(f"{int(o):02x}" for o in address.split("."))


def _kill_pid(pid: int, sig: int = 9) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _remove_cgroup_tree(path: str) -> None:
    """rmdir a cgroup and its children, deepest first (empty cgroups only: a live one stays)."""
    if not os.path.isdir(path):
        return
    for root, _dirs, _ in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(root)
        except OSError:
            pass


def _port_open(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def sweep_leftovers() -> list[str]:
    """Remove what a crashed earlier systemd lab left. Call only while holding LOCK_FILE."""
    removed: list[str] = []
    for line in _run("ip", "netns", "list", check=False).stdout.decode().splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(NETNS_PREFIX):
            for pid in _run("ip", "netns", "pids", ns, check=False).stdout.decode().split():
                _kill_pid(int(pid))
            _run("ip", "netns", "del", ns, check=False)
            removed.append(f"netns {ns}")
    for line in _run("ip", "-o", "link", "show", check=False).stdout.decode().splitlines():
        parts = line.split(":")
        name = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
        if name == BRIDGE or name.startswith(VETH_PREFIX):
            _run("ip", "link", "del", name, check=False)
            removed.append(f"link {name}")
    for cg in glob.glob(os.path.join(_cgroup2_root(), CGROUP_PREFIX + "*")):
        for pid in Path(cg).joinpath("cgroup.procs").read_text().split() if os.path.exists(f"{cg}/cgroup.procs") else ():
            _kill_pid(int(pid))
        # Processes in child cgroups are in the same PID namespace, which died with its PID 1 above.
        deadline = time.monotonic() + 5
        while os.path.isdir(cg) and time.monotonic() < deadline:
            _remove_cgroup_tree(cg)
            if os.path.isdir(cg):
                time.sleep(0.05)
        removed.append(f"cgroup {cg}")
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), STATE_PREFIX + "*")):
        for mnt in _mounts_under(folder):
            _run("umount", "-l", mnt, check=False)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _mounts_under(folder: str) -> list[str]:
    """Mount points of the machine's mount namespace below folder (deepest first)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1]
        if target.startswith(folder.rstrip("/") + "/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)


# -- inside the namespaces ------------------------------------------------------------------------

# Runs as PID 1 of the new PID namespace (still the machine's root): mounts the host's
# root from its disk, then joins the host's cgroup and makes the cgroup namespace.
# $1 = state folder, $2 = machine path of the host's cgroup (relative to cgroup2's root).
_STAGE1 = r"""
set -eu
S=$1; CG=$2; R=$S/root
mount -t overlay garrison-disk -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$R"
mount -t tmpfs -o mode=0755,nosuid,nodev run "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$R/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
# The kernel's knobs stay the machine's: read-only, except this namespace's own network ones.
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,rw "$R/proc/sys/net"
mount --bind "$S/boot_id" "$R/proc/sys/kernel/random/boot_id"
for f in sysrq-trigger kcore kmsg; do
  if [ -e "$R/proc/$f" ]; then mount --bind /dev/null "$R/proc/$f"; fi
done
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid dev "$R/dev"
for n in null zero full random urandom tty; do
  touch "$R/dev/$n"
  mount --bind "/dev/$n" "$R/dev/$n"
done
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
touch "$R/dev/console"
mount --bind "$(readlink /proc/self/fd/0)" "$R/dev/console"   # the launcher's pty
# Join the host's cgroup from in here (the launcher and unshare stay outside it), so the
# cgroup namespace made next has this process, and only it, at its root.
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
echo $$ > "$R/sys/fs/cgroup/$CG/cgroup.procs"
umount "$R/sys/fs/cgroup"
exec unshare --cgroup /bin/sh -c "$STAGE2" stage2 "$R"
"""

# In the host's cgroup namespace now: its cgroup2 at /sys/fs/cgroup, the disk as /, systemd.
_STAGE2 = r"""
set -eu
R=$1
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
cd "$R"
pivot_root . .
umount -l .
cd /
exec setpriv --bounding-set "$DROP" env -i container=garrison-lab TERM=vt220 \
  /lib/systemd/systemd --system --show-status=yes
"""

# The launcher: one process per host, the host's "hardware". Boots, relays the console,
# boots again after a reboot or a power cut, ends on poweroff or when <state>/stop exists.
_LAUNCHER = r"""
import os, select, subprocess, sys, time
cfg = dict(a.split("=", 1) for a in sys.argv[1:])
S, ns, veth, bridge = cfg["state"], cfg["netns"], cfg["veth"], cfg["bridge"]
address, prefix, mac, cg = cfg["address"], cfg["prefix"], cfg["mac"], cfg["cgroup"]
cgroot = cfg["cgroot"]

def ip(*cmds, netns=None):
    where = ["-n", netns] if netns else []
    subprocess.run(["ip", *where, "-batch", "-"], input="\n".join(cmds).encode() + b"\n", check=True)

def log(msg):
    with open(os.path.join(S, "launcher.log"), "a") as f:
        f.write(f"{time.monotonic():.3f} {msg}\n")

def clean_cgroups():
    top = os.path.join(cgroot, cg)
    os.makedirs(top, exist_ok=True)
    for root, dirs, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
        if root != top:
            try:
                os.rmdir(root)
            except OSError:
                pass

boot = 0
while True:
    boot += 1
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "link", "del", veth], capture_output=True)
    ip(f"netns add {ns}", f"link add {veth} type veth peer name eth0 netns {ns}", f"link set {veth} master {bridge} up")
    ip("link set lo up", f"link set eth0 address {mac}", f"addr add {address}/{prefix} dev eth0", "link set eth0 up",
       netns=ns)
    subprocess.run(["ip", "neigh", "flush", "to", address], capture_output=True)
    clean_cgroups()
    with open(os.path.join(S, "boot_id"), "w") as f:
        f.write(open("/proc/sys/kernel/random/uuid").read())
    os.chmod(os.path.join(S, "boot_id"), 0o444)
    with open(os.path.join(S, "boots"), "a") as f:
        f.write(f"{boot} {time.monotonic():.3f}\n")
    master, slave = os.openpty()
    child = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "--", "ip", "netns", "exec", ns,
         "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--propagation", "private",
         "/bin/sh", "-c", os.environ["STAGE1"], "stage1", S, cg],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True)
    os.close(slave)
    with open(os.path.join(S, "unshare.pid"), "w") as f:
        f.write(f"{child.pid}\n")
    console = open(os.path.join(S, "console.log"), "ab", buffering=0)
    console.write(f"\n[garrison-lab] boot {boot}\n".encode())
    reached_systemd = False
    while child.poll() is None:
        if not reached_systemd:
            try:
                kid = open(f"/proc/{child.pid}/task/{child.pid}/children").read().split()[0]
                reached_systemd = os.readlink(f"/proc/{kid}/exe").endswith("/systemd")
            except (OSError, IndexError):
                pass
        r, _, _ = select.select([master], [], [], 0.05 if not reached_systemd else 0.5)
        if r:
            try:
                console.write(os.read(master, 65536))
            except OSError:  # every holder of the pty's other side is gone
                child.wait()
    os.close(master)
    console.close()
    # How PID 1 ended, as unshare reports it: it re-raises a signal that killed PID 1 (SIGHUP is
    # reboot(2) in a PID namespace, SIGINT a poweroff), but cannot re-raise SIGKILL (a power cut
    # from outside) and exits 1 instead. systemd exits 0 when it may not reboot(2).
    rc = child.returncode
    how = {-1: "reboot", -2: "poweroff", 0: "exit 0"}.get(rc, f"power cut (unshare rc {rc})")
    log(f"boot {boot} ended: {how}")
    if os.path.exists(os.path.join(S, "stop")) or rc in (-2, 0) or not reached_systemd:
        break
subprocess.run(["ip", "netns", "del", ns], capture_output=True)
subprocess.run(["ip", "link", "del", veth], capture_output=True)
clean_cgroups()
log("stopped")
"""

_SSHD_CONFIG = f"""\
# The lab's sshd (ssh.service, started by systemd): key-only, root with the lab's key.
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile {LAB_KEYS_DIR}/%u .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM yes
SetEnv SHLVL=1
UseDNS no
PrintMotd no
LogLevel VERBOSE
MaxStartups 100:30:200
MaxSessions 30
Subsystem sftp internal-sftp
Include /etc/ssh/sshd_config.d/*.conf
"""


def _mkdirs_like_machine(upper: Path, path: str) -> Path:
    """mkdir -p path inside the disk; each level made gets the owner and mode of the machine's folder."""
    cur = upper
    for part in Path(path).relative_to("/").parts:
        cur = cur / part
        machine = Path("/") / cur.relative_to(upper)
        if not cur.is_dir():
            cur.mkdir()
            if machine.is_dir():
                st = machine.stat()
                os.chown(cur, st.st_uid, st.st_gid)
                os.chmod(cur, stat.S_IMODE(st.st_mode))
    return cur


def _make_opaque(folder: Path) -> None:
    """Tell overlayfs this folder hides the machine's (lower) one entirely."""
    os.setxattr(folder, "trusted.overlay.opaque", b"y")


@dataclass
class SystemdHost:
    """One disposable server whose PID 1 is systemd; reach it over SSH at address:22 as root."""

    name: str
    address: str
    netns: str
    veth: str
    cgroup: str  # relative to the machine's cgroup2 root
    state_dir: Path
    host_key_pub: str
    lab: SystemdLab = field(repr=False)
    port: int = 22
    manager: str = "systemd"
    _launcher: subprocess.Popen | None = field(default=None, repr=False)
    booted_in: float = 0.0  # seconds from the last boot's start to systemd `running`/`degraded`

    # -- state ------------------------------------------------------------------------------
    @property
    def disk(self) -> Path:
        return self.state_dir / "upper"

    @property
    def launcher_alive(self) -> bool:
        return self._launcher is not None and self._launcher.poll() is None

    def boots(self) -> list[float]:
        """CLOCK_MONOTONIC start of every boot so far (comparable with time.monotonic())."""
        try:
            lines = (self.state_dir / "boots").read_text().splitlines()
        except OSError:
            return []
        return [float(line.split()[1]) for line in lines if line.strip()]

    def pid1(self) -> int | None:
        """The host's PID 1 as the machine sees it (the only child of unshare), or None."""
        try:
            unshare = int((self.state_dir / "unshare.pid").read_text())
            kids = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()
        except (OSError, ValueError):
            return None
        if not kids:
            return None
        pid = int(kids[0])
        try:
            if os.readlink(f"/proc/{pid}/exe") != SYSTEMD and not os.readlink(f"/proc/{pid}/exe").endswith("/systemd"):
                return None  # still stage 1 (sh/unshare/setpriv), not systemd yet
        except OSError:
            return None
        return pid

    def known_hosts_line(self, port: int = 22) -> str:
        pattern = self.address if port == 22 else f"[{self.address}]:{port}"
        return f"{pattern} {' '.join(self.host_key_pub.split()[:2])}\n"

    # -- running commands inside ---------------------------------------------------------------
    def exec(
        self, *argv: str, input: bytes | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run argv as root inside the host (all its namespaces, its root cgroup, a clean env), without SSH."""
        pid = self.pid1()
        if pid is None:
            raise RuntimeError(f"systemd lab host {self.name} is not running")
        procs = os.path.join(_cgroup2_root(), self.cgroup, "cgroup.procs")
        env = ("PATH=" + HOST_PATH, "HOME=/root", "LANG=C.UTF-8", "TERM=dumb")
        # Join the host's root cgroup first: inside the cgroup namespace the process then sits at
        # its root, not outside it (systemctl, and whatever a command leaves running, see a sane tree).
        full = ("/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs,
                "nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "env", "-i", *env, *argv)
        proc = subprocess.run(full, input=input, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"[{self.name}] {' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
            )
        return proc

    def sh(self, script: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.exec("sh", "-c", script, "sh", *args, **kw)

    def system_state(self) -> str:
        """`systemctl is-system-running` (initializing, starting, running, degraded, stopping…), or "" if down."""
        if self.pid1() is None:
            return ""
        try:
            return self.exec("systemctl", "is-system-running", check=False, timeout=10).stdout.decode().strip()
        except (RuntimeError, subprocess.TimeoutExpired):
            return ""

    def failed_units(self) -> list[str]:
        out = self.exec("systemctl", "list-units", "--failed", "--plain", "--no-legend", check=False).stdout.decode()
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    # -- power --------------------------------------------------------------------------------
    def boot(self, timeout: float = 90) -> float:
        """Power on (start the launcher) and wait until systemd has booted; returns the seconds it took."""
        if self.launcher_alive:
            raise RuntimeError(f"systemd lab host {self.name} is already powered on")
        (self.state_dir / "stop").unlink(missing_ok=True)
        (self.state_dir / "unshare.pid").unlink(missing_ok=True)
        log = open(self.state_dir / "launcher.out", "ab")
        env = {"PATH": HOST_PATH, "LC_ALL": "C.UTF-8", "STAGE1": _STAGE1, "STAGE2": _STAGE2,
               "DROP": ",".join("-" + c for c in DROPPED_CAPS)}
        args = {
            "state": self.state_dir, "netns": self.netns, "veth": self.veth, "bridge": BRIDGE,
            "address": self.address, "prefix": SUBNET.prefixlen, "mac": _mac_for(self.address),
            "cgroup": self.cgroup, "cgroot": _cgroup2_root(),
        }
        self._launcher = subprocess.Popen(
            ("setpriv", "--pdeathsig", "KILL", "--", "/usr/bin/python3", "-I", "-S", "-c", _LAUNCHER,
             *(f"{k}={v}" for k, v in args.items())),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, close_fds=True,
        )
        log.close()
        try:
            return self.wait_booted(boot_number=len(self.boots()) + 1, timeout=timeout)
        except BaseException:
            self._stop_processes()
            raise

    def wait_booted(self, boot_number: int, timeout: float = 90) -> float:
        """Wait until boot number boot_number (1 = the first) reaches `running`/`degraded`.

        Returns the seconds since that boot started (the launcher's clock, the machine's monotonic one).
        """
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if not self.launcher_alive:
                raise RuntimeError(f"systemd lab host {self.name} powered off while booting:\n{self.console_tail()}")
            boots = self.boots()
            if len(boots) >= boot_number and self.pid1() is not None:
                state = self.system_state()
                if state in ("running", "degraded"):
                    self.booted_in = time.monotonic() - boots[boot_number - 1]
                    return self.booted_in
            time.sleep(0.05)
        raise RuntimeError(
            f"systemd lab host {self.name}: boot {boot_number} not up after {timeout:.0f} s "
            f"(state {state or '?'}):\n{self.console_tail()}"
        )

    def reboot(self, how: str = "graceful", timeout: float = 90) -> float:
        """Reboot with the same disk; returns the seconds from the new boot's start to systemd up.

        graceful: `systemctl reboot` inside (systemd stops every unit, then reboot(2));
        hard: SIGKILL of PID 1 from outside, a power cut (nothing is stopped, nothing flushed).
        Either way the launcher boots the same disk again, as a machine does.
        """
        before = len(self.boots())
        pid = self.pid1()
        if pid is None:
            raise RuntimeError(f"systemd lab host {self.name} is not running")
        if how == "graceful":
            self.exec("systemctl", "--no-block", "reboot")
        elif how == "hard":
            _kill_pid(pid, 9)
        else:
            raise ValueError(f"reboot how={how!r}: graceful or hard")
        return self.wait_booted(before + 1, timeout)

    def console_tail(self, n: int = 40) -> str:
        try:
            text = (self.state_dir / "console.log").read_bytes().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-n:])

    def _stop_processes(self, graceful: bool = False, timeout: float = 30) -> None:
        """Power off: (graceful: `systemctl poweroff` first) SIGKILL PID 1, wait for the launcher."""
        (self.state_dir / "stop").write_text("")
        if graceful and self.pid1() is not None:
            self.exec("systemctl", "--no-block", "poweroff", check=False)
            end = time.monotonic() + timeout
            while self.launcher_alive and time.monotonic() < end:
                time.sleep(0.05)
        pid = self.pid1()
        if pid is not None:
            _kill_pid(pid)  # the kernel then kills every process of its PID namespace
        if self._launcher is not None:
            try:
                self._launcher.wait(timeout)
            except subprocess.TimeoutExpired:
                # PID 1 was still stage 1 (not yet systemd) or wedged: the unshare we started, then the launcher.
                try:
                    _kill_pid(int((self.state_dir / "unshare.pid").read_text()))
                except (OSError, ValueError):
                    pass
                _kill_pid(self._launcher.pid)
                self._launcher.wait(10)
            self._launcher = None

    def poweroff(self, graceful: bool = True) -> None:
        """Power off, keeping the disk (boot() again later)."""
        self._stop_processes(graceful=graceful)

    def down(self) -> None:
        """Power off and throw the host away: netns, link, cgroup, disk."""
        self._stop_processes()
        _run("ip", "netns", "del", self.netns, check=False)
        _run("ip", "link", "del", self.veth, check=False)
        _run("ip", "neigh", "flush", "to", self.address, check=False)
        cg = os.path.join(_cgroup2_root(), self.cgroup)
        deadline = time.monotonic() + 5
        while os.path.isdir(cg) and time.monotonic() < deadline:
            _remove_cgroup_tree(cg)
            if os.path.isdir(cg):
                time.sleep(0.05)  # the namespace's processes are still being torn down
        for mnt in _mounts_under(str(self.state_dir)):
            _run("umount", "-l", mnt, check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- conveniences ----------------------------------------------------------------------------
    def wait_ssh(self, timeout: float = 30) -> float:
        t0 = time.monotonic()
        while not _port_open(self.address, 22):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"sshd on systemd lab host {self.name} is not listening:\n{self.console_tail()}")
            time.sleep(0.02)
        return time.monotonic() - t0

    def add_user(self, user: str, *, authorized_key: str | None = None, sudo: bool = False) -> None:
        """Add a login user (home, /bin/sh); authorize a public key (default: the lab's client key)."""
        key = authorized_key if authorized_key is not None else self.lab.client_pub
        self.sh(
            'id -u "$1" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$1"\n'
            'printf "%s\\n" "$2" > "$3/$1"\n'
            'if [ "$4" = 1 ]; then printf "%s ALL=(ALL) NOPASSWD: ALL\\n" "$1" > "/etc/sudoers.d/lab-$1"; '
            'chmod 440 "/etc/sudoers.d/lab-$1"; fi\n',
            user, key.strip(), LAB_KEYS_DIR, "1" if sudo else "0",
        )


class SystemdLab:
    """Makes and tracks systemd lab hosts; close() (or the fixture) removes them all."""

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
                    raise RuntimeError(f"another systemd lab holds {LOCK_FILE}") from None
                time.sleep(0.2)
        self.swept = sweep_leftovers()
        self.dir = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
        os.chmod(self.dir, 0o755)
        self.hosts: dict[str, SystemdHost] = {}
        self._next_octet = FIRST_HOST_OCTET
        self._closed = False
        atexit.register(self.close)
        self.client_key = self.dir / "client_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "garrison-systemdlab", "-f", str(self.client_key))
        self.client_pub = (self.dir / "client_ed25519.pub").read_text().strip()
        _run("ip", "-batch", "-", input=(
            f"link add {BRIDGE} type bridge\n"
            f"link set {BRIDGE} address {_mac_for(GATEWAY)}\n"
            f"addr add {GATEWAY}/{SUBNET.prefixlen} dev {BRIDGE}\n"
            f"link set {BRIDGE} up\n").encode())
        Path(f"/proc/sys/net/ipv6/conf/{BRIDGE}/disable_ipv6").write_text("1")

    def host(self, name: str, *, empty: tuple[str, ...] = FRESH_EMPTY, hide: tuple[str, ...] = FRESH_HIDE,
             masked: tuple[str, ...] = MASKED_UNITS, boot_timeout: float = 90) -> SystemdHost:
        """The running host called name, made and booted now if needed.

        On a new disk: /etc is copied from the machine; `empty` folders start empty (opaque);
        `hide` globs (under /etc) are removed from the copy; `masked` units are masked.
        """
        existing = self.hosts.get(name)
        if existing is not None and existing.launcher_alive:
            return existing
        if existing is not None:
            existing.boot(boot_timeout)
            return existing
        if not name.isalnum() or len(name) > 8:
            raise ValueError(f"systemd lab host name must be 1-8 alphanumerics: {name!r}")
        address = str(SUBNET.network_address + self._next_octet)
        self._next_octet += 1
        host = self._make_disk(name, address, empty, hide, masked)
        self.hosts[name] = host
        try:
            host.boot(boot_timeout)
            host.wait_ssh()
        except BaseException:
            host.down()
            del self.hosts[name]
            raise
        return host

    def _make_disk(self, name: str, address: str, empty, hide, masked) -> SystemdHost:
        octet = address.rsplit(".", 1)[1]
        state = self.dir / name
        for sub in ("upper", "work", "root"):
            (state / sub).mkdir(parents=True)
        up = state / "upper"
        os.chmod(up, 0o755)  # the merged root shows the upper folder's mode
        # /etc: the machine's, copied once; opaque so later changes on the machine stay out.
        etc = _mkdirs_like_machine(up, "/etc")
        _run("cp", "-a", "/etc/.", str(etc) + "/", timeout=120)
        _make_opaque(etc)
        for pattern in hide:
            if not pattern.startswith("/etc/"):
                raise ValueError(f"hide: only paths under /etc (the copied folder): {pattern}")
            for p in glob.glob(str(up) + pattern):
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        for folder in empty:
            target = up / folder.lstrip("/")
            if target.exists():
                shutil.rmtree(target)
            _make_opaque(_mkdirs_like_machine(up, folder))
        (etc / "hostname").write_text(name + "\n")
        (etc / "machine-id").write_text(Path("/proc/sys/kernel/random/uuid").read_text().strip().replace("-", "") + "\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n{address}\t{name}\n")
        system = etc / "systemd" / "system"
        system.mkdir(parents=True, exist_ok=True)
        for unit in masked:
            link = system / unit
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to("/dev/null")
        # sshd: the distribution's unit, enabled, with the lab's config and a host key of its own.
        wants = system / "multi-user.target.wants"
        wants.mkdir(exist_ok=True)
        if not (wants / "ssh.service").is_symlink():
            (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
        ssh = etc / "ssh"
        for key in ssh.glob("ssh_host_*"):
            key.unlink()
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(ssh / "ssh_host_ed25519_key"))
        os.chmod(ssh / "ssh_host_ed25519_key", 0o600)
        (ssh / "sshd_config").write_text(_SSHD_CONFIG)
        keys = ssh / LAB_KEYS_DIR.rsplit("/", 1)[1]
        keys.mkdir(mode=0o755)
        (keys / "root").write_text(self.client_pub + "\n")
        # A journal that survives reboots (`journalctl -b -1`).
        _mkdirs_like_machine(up, "/var/log/journal")
        return SystemdHost(
            name=name, address=address, netns=f"{NETNS_PREFIX}{name}", veth=f"{VETH_PREFIX}{octet}",
            cgroup=f"{CGROUP_PREFIX}{name}", state_dir=state,
            host_key_pub=(ssh / "ssh_host_ed25519_key.pub").read_text().strip(), lab=self,
        )

    def known_hosts(self, hosts: list[SystemdHost], path: Path | None = None, port: int = 22) -> Path:
        """A known_hosts file that trusts these hosts' keys."""
        path = path or Path(tempfile.mkstemp(prefix="known_hosts-", dir=self.dir)[1])
        path.write_text("".join(h.known_hosts_line(port) for h in hosts))
        return path

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in list(self.hosts.values()):
            try:
                host.down()
            except Exception:
                pass
        self.hosts.clear()
        _run("ip", "link", "del", BRIDGE, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.close(self._lock_fd)
        except OSError:
            pass


_SHARED: SystemdLab | None = None
_SHARED_USERS = 0


@pytest.fixture(scope="session")
def systemdlab():
    """Session-wide factory of systemd lab hosts: systemdlab.host("s1") -> SystemdHost (booted)."""
    global _SHARED, _SHARED_USERS
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if _SHARED is None or _SHARED._closed:
        _SHARED = SystemdLab()
    lab = _SHARED
    _SHARED_USERS += 1
    try:
        yield lab
    finally:
        _SHARED_USERS -= 1
        if _SHARED_USERS == 0:
            lab.close()
            _SHARED = None
