"""The systemd lab host itself (tests/systemdlab.py): what the systemd end-to-end tests rely on.

systemd really is PID 1 and reaches `running`; sshd is started by it and takes the
lab's key; a reboot (graceful or a power cut) keeps the disk but not /run, gives a
new boot id and boots by itself; a poweroff ends the host; down leaves nothing on
the machine.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.systemdlab import BRIDGE, _cgroup2_root, lab_unavailable_reason, systemdlab  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())),
]


def ssh(lab, h, kh, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ("ssh", "-F", "none", "-i", str(lab.client_key), "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={kh}",
         "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", f"root@{h.address}", command),
        capture_output=True, text=True, timeout=30,
    )


def test_boot_exec_ssh_reboots_and_down(systemdlab, tmp_path):
    lab = systemdlab
    t0 = time.monotonic()
    h = lab.host("lab1")
    print(f"first boot (disk made): {time.monotonic() - t0:.2f} s; systemd up {h.booted_in:.2f} s after boot start")
    assert h.exec("cat", "/proc/1/comm").stdout.decode().strip() == "systemd"
    assert h.system_state() == "running", h.failed_units()
    assert h.exec("hostname").stdout.decode().strip() == "lab1"
    # Its own network: its address, no default route.
    assert h.address in h.exec("ip", "-4", "-o", "addr").stdout.decode()
    assert "default" not in h.exec("ip", "route").stdout.decode()

    # sshd was started by systemd (ssh.service) and lets root in with the lab's key, checking the host key.
    kh = lab.known_hosts([h], tmp_path / "known_hosts")
    r = ssh(lab, h, kh, "cat /proc/1/comm; systemctl is-active ssh")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["systemd", "active"]

    boot_id = h.exec("cat", "/proc/sys/kernel/random/boot_id").stdout
    h.exec("sh", "-c", "echo kept > /var/lib/lab-marker; echo lost > /run/lab-marker")
    for how in ("graceful", "hard"):
        took = h.reboot(how)
        print(f"{how} reboot: systemd up {took:.2f} s after the boot's start")
        assert h.system_state() in ("running", "degraded")
        new_id = h.exec("cat", "/proc/sys/kernel/random/boot_id").stdout
        assert new_id != boot_id
        boot_id = new_id
        assert h.exec("cat", "/var/lib/lab-marker").stdout == b"kept\n"  # the disk persists
        assert h.exec("test", "-e", "/run/lab-marker", check=False).returncode != 0  # /run does not
        h.wait_ssh()
        assert ssh(lab, h, kh, "true").returncode == 0  # same host key, sshd back by itself

    # `systemctl reboot` typed in an SSH session: the host boots again with nothing else done.
    n = len(h.boots())
    ssh(lab, h, kh, "systemctl reboot")
    h.wait_booted(n + 1)
    assert len(h.boots()) == n + 1
    # The journal persists across boots on the disk.
    boots = h.exec("journalctl", "--list-boots", "--no-pager", check=False).stdout.decode().strip().splitlines()
    print("\n".join(boots))
    assert len(boots) == 1 + 4, boots  # a header, then the first boot and the three reboots

    # A poweroff inside ends the host (the launcher does not boot it again).
    h.exec("systemctl", "--no-block", "poweroff")
    deadline = time.monotonic() + 30
    while h.launcher_alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not h.launcher_alive
    assert h.pid1() is None

    h.down()
    lab.hosts.pop("lab1")
    assert h.netns not in subprocess.run(("ip", "netns", "list"), capture_output=True, text=True).stdout
    assert subprocess.run(("ip", "link", "show", h.veth), capture_output=True).returncode != 0
    assert not os.path.exists(os.path.join(_cgroup2_root(), h.cgroup))
    assert not h.state_dir.exists()
    assert subprocess.run(("ip", "link", "show", BRIDGE), capture_output=True).returncode == 0  # the lab's, until close
