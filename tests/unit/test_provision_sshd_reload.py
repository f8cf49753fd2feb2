"""provision's SSH hardening: the wait for the reloaded sshd, on the strict fake host and a fake clock.

sshd keeps its pid when SIGHUP makes it re-execute itself, so the wait is on
what changes: the pid's listening sockets are closed and new ones bound. The
proof login after the reload must meet the new sshd, never the old one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.config import parse_config
from garrison.errors import DeployError, HostError
from garrison.project import Project
from garrison.workflows import CHANGED, Run
from garrison.workflows.provision import (
    HARDEN_FILE,
    SSHD_RELOAD_POLL,
    SSHD_RELOAD_TIMEOUT,
    Provision,
    parse_listening_inodes,
)
from tests.fakehost import FakeClock, FakeHost, Reply

SS = ("ss", "-Hltnpe")
HUP = ("kill", "-HUP", "77")
LAB_CONFIG = "/etc/ssh/lab_config"


def ss_lines(pid: int, *inodes: str) -> str:
    """`ss -Hltnpe` lines for sockets that pid listens on (one IPv4, one IPv6, ...)."""
    local = ["0.0.0.0:22", "[::]:22", "0.0.0.0:2222"]
    return "".join(
        f'LISTEN 0      128    {local[i]} 0.0.0.0:* users:(("sshd",pid={pid},fd={3 + i})) ino:{inode} sk:{i} cgroup:/ <->\n'
        for i, inode in enumerate(inodes)
    )


# Another program on the host: its pid starts with sshd's, its sockets are never sshd's.
NGINX = 'LISTEN 0      511    0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=770,fd=7),("nginx",pid=177,fd=7)) ino:999 sk:9 <->\n'


def sshd_host() -> FakeHost:
    """sshd (pid 77) runs with its own config (-f), as in the host lab."""
    host = FakeHost("web1")
    host.add_file("/run/sshd.pid", b"77\n")
    host.add_file("/proc/77/cmdline", b"sshd: /usr/sbin/sshd -D -f /etc/ssh/lab_config [listener] 0 of 10-100 startups")
    host.add_file(LAB_CONFIG, b"Port 22\nPort 2222\n")
    return host


def provision(host: FakeHost, clock: FakeClock, **kw) -> Provision:
    cfg = parse_config({"app": {"name": "shop", "entry": "main:app"}})
    project = Project(config=cfg, source=Path("/nonexistent/garrison.toml"), root=Path("/nonexistent"))
    return Provision(project=project, host=host, run=Run(), clock=clock, harden_ssh=True, **kw)


def answers(host: FakeHost, *outputs: str) -> None:
    """ss answers these outputs in turn (the last one for ever after)."""
    for out in outputs[:-1]:
        host.expect(SS, stdout=out)
    host.expect(SS, stdout=outputs[-1], times=None)


def test_listening_inodes_are_those_of_the_pid_only():
    text = ss_lines(77, "101", "102") + NGINX + 'LISTEN 0 5 127.0.0.1:9 0.0.0.0:* users:(("x",pid=77,fd=9))\n'
    assert parse_listening_inodes(text, 77) == {"101", "102"}  # a line without ino: is no evidence
    assert parse_listening_inodes(text, 7) == frozenset()
    assert parse_listening_inodes(text, 770) == {"999"}
    assert parse_listening_inodes("", 77) == frozenset()


def test_reload_waits_until_the_reexecuted_sshd_listens_on_as_many_new_sockets():
    host, clock = sshd_host(), FakeClock()
    host.expect(SS, stdout=ss_lines(77, "101", "102") + NGINX)  # before the signal
    host.expect(HUP)
    answers(
        host,
        ss_lines(77, "101", "102"),  # the signal is not handled yet: the old sockets
        NGINX,  # old sockets closed, re-executing
        ss_lines(77, "201"),  # one new socket bound, the other not yet
        ss_lines(77, "201", "202") + NGINX,
    )
    provision(host, clock).reload_sshd()
    assert host.ran == [SS, HUP, SS, SS, SS, SS]
    assert clock.slept == [SSHD_RELOAD_POLL] * 3
    host.assert_done()


def test_reload_gives_up_at_the_deadline_naming_sshd_and_the_wait():
    host, clock = sshd_host(), FakeClock()
    host.expect(SS, stdout=ss_lines(77, "101"))
    host.expect(HUP)
    answers(host, ss_lines(77, "101"))  # it never re-executes
    with pytest.raises(HostError) as exc:
        provision(host, clock).reload_sshd()
    polls = host.ran.count(SS) - 1
    assert str(exc.value) == (
        f"web1: sshd (pid 77) did not listen again after the reload: gave up waiting after "
        f"{SSHD_RELOAD_TIMEOUT:g} s ({polls} checks): sshd (pid 77) to listen again after SIGHUP"
    )
    assert clock.monotonic() - clock.start == pytest.approx(SSHD_RELOAD_TIMEOUT)
    assert polls == pytest.approx(SSHD_RELOAD_TIMEOUT / SSHD_RELOAD_POLL + 1, abs=1)


def test_reload_stops_waiting_at_once_when_sshd_exits():
    host, clock = sshd_host(), FakeClock()
    host.expect(SS, stdout=ss_lines(77, "101"))

    def sshd_dies(argv, input):
        del host.tree["/proc/77/cmdline"], host.tree["/proc/77"]
        return Reply()

    host.expect(HUP, respond=sshd_dies)
    with pytest.raises(HostError, match=r"^web1: sshd \(pid 77\) exited after the reload \(SIGHUP\); see its log$"):
        provision(host, clock).reload_sshd()
    assert clock.slept == []
    host.assert_done()


def test_reload_refuses_when_sshd_holds_no_socket_of_its_own():
    host, clock = sshd_host(), FakeClock()
    host.expect(SS, stdout=NGINX)  # e.g. socket-activated: systemd holds the sockets
    with pytest.raises(HostError, match=r"sshd \(pid 77\) holds no listening socket of its own; reload sshd by hand"):
        provision(host, clock).reload_sshd()
    assert HUP not in host.ran
    host.assert_done()


# -- harden: the reload inside the whole step -------------------------------------------------


def deploy_login(proofs: list[int], host: FakeHost):
    """connect_as: a new connection as the deploy user, whose sudo gives root; records when."""

    def connect(user: str) -> FakeHost:
        assert user == "deploy"
        proofs.append(len(host.ran))  # how many host commands had run by then
        ex = FakeHost("web1-as-deploy")
        ex.expect(("id", "-un"), stdout="root\n")
        ex.expect(("true",))
        return ex

    return connect


def test_harden_proves_the_login_again_only_once_the_new_sshd_listens():
    host, clock, proofs = sshd_host(), FakeClock(), []
    host.expect(("sshd", "-t", "-f", LAB_CONFIG))
    host.expect(SS, stdout=ss_lines(77, "101", "102"))
    host.expect(HUP)
    answers(host, ss_lines(77, "101", "102"), NGINX, ss_lines(77, "201", "202"))
    p = provision(host, clock, connect_as=deploy_login(proofs, host))
    p.harden()
    assert p.run.steps[-1].status == CHANGED
    assert b"AllowUsers deploy" in host.read_file(HARDEN_FILE)
    assert host.read_file(LAB_CONFIG).splitlines()[1] == b"Include /etc/ssh/sshd_config.d/*.conf"
    # The first proof before anything ran; the second after the poll that saw the new sockets.
    assert proofs == [0, len(host.ran)]
    assert host.ran[-1] == SS and host.ran.index(HUP) < len(host.ran) - 1
    host.assert_done()


def test_harden_reverts_the_files_when_sshd_does_not_listen_again():
    host, clock, proofs = sshd_host(), FakeClock(), []
    host.expect(("sshd", "-t", "-f", LAB_CONFIG))
    host.expect(SS, stdout=ss_lines(77, "101"))
    host.expect(HUP)
    answers(host, NGINX)  # the old sockets closed, no new ones ever
    p = provision(host, clock, connect_as=deploy_login(proofs, host))
    with pytest.raises(DeployError, match=r"did not listen again after the reload: .*; the hardening was reverted"):
        p.harden()
    assert host.stat(HARDEN_FILE) is None
    assert host.read_file(LAB_CONFIG) == b"Port 22\nPort 2222\n"
    assert proofs == [0]  # never "proven" against an sshd that was not there


def test_harden_changes_nothing_when_the_reload_could_not_be_seen():
    host, clock, proofs = sshd_host(), FakeClock(), []
    host.expect(SS, stdout=NGINX)
    p = provision(host, clock, connect_as=deploy_login(proofs, host))
    with pytest.raises(HostError, match="holds no listening socket of its own"):
        p.harden()
    assert host.stat(HARDEN_FILE) is None and host.stat("/etc/ssh/sshd_config.d") is None
    assert host.read_file(LAB_CONFIG) == b"Port 22\nPort 2222\n"
    assert host.ran == [SS]
    host.assert_done()
