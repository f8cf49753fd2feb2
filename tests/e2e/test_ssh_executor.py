"""SSHExecutor against disposable servers (tests/hostlab.py): real sshd, real network namespaces.

Covers: LocalExecutor-identical semantics for commands and files, one reused
connection, host key policy (unknown, TOFU, changed), auth and reachability
errors as one-line HostErrors, ~/.ssh/config (alias, HostName, Port, User,
IdentityFile, ProxyJump), the ssh-agent, sudo for non-root logins, the deploy
lock (held, SIGKILL, cut connection) and hostile path names.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from garrison.errors import CommandFailed, HostError, LockHeld
from garrison.hosts import Executor
from garrison.hosts.local import HOST_PATH, LocalExecutor
from tests.hostlab import UNUSED_ADDRESS, hostlab, lab_unavailable_reason  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())),
]

asyncssh = pytest.importorskip("asyncssh")
from garrison.hosts.ssh import SSHExecutor  # noqa: E402  (needs asyncssh)


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch):
    """Keys come only from what each test passes (or its ssh config), never from a stray agent."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def hosts(hostlab):
    t0 = time.monotonic()
    a, b = hostlab.host("a"), hostlab.host("b")
    print(f"\nhostlab: 2 hosts up in {time.monotonic() - t0:.2f} s (a {a.created_in:.2f} s, b {b.created_in:.2f} s)")
    return a, b


@pytest.fixture(scope="module")
def known_hosts(hostlab, hosts, tmp_path_factory):
    """Trusts a and b on ports 22 and 2222."""
    path = tmp_path_factory.mktemp("kh") / "known_hosts"
    path.write_text("".join(h.known_hosts_line(p) for h in hosts for p in (22, 2222)))
    return path


def executor(hostlab, host, known_hosts, **kw) -> SSHExecutor:
    kw.setdefault("ssh_config", None)
    kw.setdefault("identity_files", [str(hostlab.client_key)])
    kw.setdefault("connect_timeout", 5)
    return SSHExecutor(host.address, known_hosts=str(known_hosts), **kw)


@pytest.fixture(scope="module")
def ex_a(hostlab, hosts, known_hosts):
    with executor(hostlab, hosts[0], known_hosts) as ex:
        yield ex


def one_line_host_error(excinfo) -> str:
    assert type(excinfo.value) is HostError
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


# -- semantics: the same scenario through LocalExecutor and SSHExecutor -------------------


def _tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name, data=None, mode=0o644, kind=tarfile.REGTYPE, target=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.uname, info.gname = kind, mode, 4321, 4321, "nobody", "x"
            if kind == tarfile.SYMTYPE:
                info.linkname = target
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("app", kind=tarfile.DIRTYPE, mode=0o755)
        add("app/main.py", b"print('hi')\n", 0o644)
        add("app/run.sh", b"#!/bin/sh\necho run\n", 0o755)
        add("app/static", kind=tarfile.DIRTYPE, mode=0o755)
        add("app/static/a b.txt", b"spaced\n", 0o644)
        add("app/link", kind=tarfile.SYMTYPE, target="main.py")
    return buf.getvalue()


def scenario(ex: Executor, base: str) -> dict:
    """Every primitive and helper once; the record must be the same for both executors."""
    rec: dict = {}
    j = lambda *p: "/".join((base, *p))  # noqa: E731
    r = ex.run(("sh", "-c", 'echo out; echo err >&2; printf "%s|%s|%s" "$PATH" "$LC_ALL" "$GV"'), env={"GV": "x y"})
    rec["run"] = (r.returncode, r.stdout, r.stderr)
    rec["stdin"] = ex.run(("cat",), input=b"piped\n").stdout
    rec["no_stdin"] = ex.run(("cat",)).stdout  # stdin is empty, not the caller's terminal
    rec["false"] = ex.run(("false",), check=False).returncode
    with pytest.raises(CommandFailed) as exc:
        ex.run(("sh", "-c", "echo boom >&2; exit 3"))
    rec["failed"] = (str(exc.value), exc.value.returncode)
    rec["notfound"] = ex.run(("garrison-no-such-program",), check=False).returncode
    t = ex.run(("sh", "-c", "echo started; sleep 5"), timeout=0.5, check=False)
    rec["timeout"] = (t.returncode, t.stderr)
    rec["which"] = ex.which("sh")

    ex.write_file(j("new", "f.txt"), b"one\n", mode=0o640, owner="root", group="daemon")
    rec["written"] = (ex.stat(j("new", "f.txt")), ex.read_file(j("new", "f.txt")))
    ex.write_file(j("new", "f.txt"), b"two\n")
    rec["rewritten"] = (ex.stat(j("new", "f.txt")), ex.read_file(j("new", "f.txt")))
    rec["tmp_left"] = sorted(ex.run(("ls", "-A", j("new"))).stdout.split())
    rec["missing"] = (ex.read_file(j("nope")), ex.stat(j("nope")), ex.exists(j("nope")))
    ex.run(("ln", "-s", "nowhere", j("broken")))
    rec["broken_link"] = (ex.read_file(j("broken")), ex.stat(j("broken")))
    ex.run(("chown", "12345:12346", j("new", "f.txt")))
    rec["unknown_ids"] = ex.stat(j("new", "f.txt"))

    rec["ensure_dir"] = [ex.ensure_dir(j("d"), mode=0o750, group="daemon"), ex.ensure_dir(j("d"), mode=0o750, group="daemon")]
    rec["dir_stat"] = ex.stat(j("d"))
    rec["ensure_file"] = [ex.ensure_file(j("d", "c"), b"c"), ex.ensure_file(j("d", "c"), b"c"), ex.ensure_file(j("d", "c"), b"C")]
    rec["ensure_symlink"] = [ex.ensure_symlink("d", j("current")), ex.ensure_symlink("d", j("current")), ex.ensure_symlink("new", j("current"))]
    rec["link_stat"] = ex.stat(j("current"))
    rec["via_link"] = ex.read_file(j("current", "f.txt"))

    ex.ensure_dir(j("rel"))
    ex.extract_tar(_tarball(), j("rel"))
    rec["tar"] = {p: (ex.stat(j("rel", p)), ex.read_file(j("rel", p)) if p.endswith((".py", ".sh", ".txt")) else None)
                  for p in ("app", "app/main.py", "app/run.sh", "app/static", "app/static/a b.txt", "app/link")}
    with pytest.raises(CommandFailed):
        ex.run(("test", "-d", j("new", "f.txt")))
    rec["remove"] = [ex.remove(j("rel")), ex.remove(j("rel")), ex.exists(j("rel"))]
    return rec


def test_same_semantics_as_local_executor(ex_a, tmp_path):
    local = scenario(LocalExecutor(), str(tmp_path / "base"))
    remote = scenario(ex_a, "/srv/garrison-ssh-test/base")
    for key in local:
        assert remote[key] == local[key], key
    # And the record says what we mean (a few anchors, so "both wrong" fails too):
    assert remote["run"] == (0, f"out\n{HOST_PATH}|C.UTF-8|x y", "err\n")
    assert remote["timeout"] == (124, "timed out after 0.5 s")
    assert remote["notfound"] == 127
    assert remote["written"][0].mode == 0o640 and remote["written"][0].group == "daemon"
    assert remote["unknown_ids"].owner == "12345" and remote["unknown_ids"].group == "12346"
    assert remote["tmp_left"] == ["f.txt"]
    assert remote["link_stat"].is_link and remote["link_stat"].link_target == "new"
    assert remote["tar"]["app/link"][0].link_target == "main.py"
    assert remote["tar"]["app/main.py"][0].owner == "root"


def test_one_connection_is_reused_for_everything(hostlab, hosts, known_hosts):
    b = hosts[1]
    before = len(b.accepted_logins())
    with executor(hostlab, b, known_hosts) as ex:
        t0 = time.monotonic()
        for i in range(10):
            ex.run(("true",))
            ex.write_file(f"/tmp/reuse/{i}", b"x")
            assert ex.read_file(f"/tmp/reuse/{i}") == b"x"
            assert ex.stat(f"/tmp/reuse/{i}").mode == 0o644
        with ex.lock("/run/lock/reuse.lock", "test"):
            ex.extract_tar(_tarball(), "/tmp/reuse")
        per_op = (time.monotonic() - t0) / 42
        conn = ex._conn
        ex.run(("true",))
        assert ex._conn is conn
        assert ex.connections_opened == 1
    assert len(b.accepted_logins()) == before + 1
    assert per_op < 0.25, f"{per_op:.3f} s per operation"


def test_threads_share_the_connection(hostlab, hosts, known_hosts):
    from concurrent.futures import ThreadPoolExecutor

    with executor(hostlab, hosts[1], known_hosts) as ex:
        def job(i: int) -> str:
            return "".join(ex.run(("sh", "-c", f"sleep 0.1; echo {i}-{k}")).stdout for k in range(3))

        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:  # more than sshd's MaxSessions default (10)
            out = list(pool.map(job, range(16)))
        assert out == ["".join(f"{i}-{k}\n" for k in range(3)) for i in range(16)]
        assert ex.connections_opened == 1
        assert time.monotonic() - t0 < 3  # in parallel, not one after another (4.8 s)


def test_the_real_machine_is_untouched(ex_a, hosts):
    for path in ("/etc/garrison-lab-probe", "/srv/garrison-lab-probe", "/root/garrison-lab-probe", "/tmp/garrison-lab-probe"):
        ex_a.write_file(path, b"inside the lab\n")
        assert ex_a.read_file(path) == b"inside the lab\n"
        assert not os.path.exists(path), path
    assert ex_a.run(("hostname",)).stdout.strip() == "a"
    # Outside the overlays the host's / is read-only: a stray write fails rather than leak.
    res = ex_a.run(("mkdir", "/garrison-lab-probe"), check=False)
    assert res.returncode != 0 and "Read-only" in res.stderr
    assert not os.path.exists("/garrison-lab-probe")


def test_hostile_path_names_cannot_inject(ex_a, hosts):
    a = hosts[0]
    nasty = "/tmp/x; touch /tmp/pwned"
    others = ["/tmp/$(touch /tmp/pwned)", "/tmp/`touch /tmp/pwned`", "/tmp/a'b\"c\nd e", "/tmp/-rf"]
    for path in [nasty, *others]:
        ex_a.write_file(path, b"data")
        assert ex_a.read_file(path) == b"data"
        assert ex_a.stat(path).mode == 0o644
        assert ex_a.run(("cat", path)).stdout == "data"
        with ex_a.lock(path + ".lock", "holder; touch /tmp/pwned"):
            pass
    link = "/tmp/l; touch pwned `touch pwned`"
    ex_a.ensure_symlink("$(touch /tmp/pwned)", link)
    assert ex_a.stat(link).link_target == "$(touch /tmp/pwned)"
    assert a.exec("test", "-e", "/tmp/pwned", check=False).returncode == 1
    assert a.exec("test", "-e", "/root/pwned", check=False).returncode == 1
    assert a.exec("test", "-f", nasty).returncode == 0  # the file has exactly that name


# -- host keys -------------------------------------------------------------------------------


def test_unknown_host_key_names_the_trust_command_and_it_works(hostlab, hosts, tmp_path):
    a = hosts[0]
    for port in (22, 2222):
        # (A fresh file per port: asyncssh, unlike OpenSSH, lets a key trusted for
        # host:22 also vouch for host:2222.)
        kh = tmp_path / f"known_hosts-{port}"
        with pytest.raises(HostError) as exc:
            executor(hostlab, a, kh, port=port).run(("true",))
        message = one_line_host_error(exc)
        assert a.address in message and "unknown host key" in message
        port_opt = f"-p {port} " if port != 22 else ""
        expected = f"ssh-keyscan {port_opt}-H {a.address} >> {kh}"
        assert expected in message
        assert not kh.exists()  # nothing trusted behind the user's back
        # The command in the message is the fix.
        subprocess.run(["sh", "-c", message.split("run: ", 1)[1]], check=True, capture_output=True, timeout=20)
        with executor(hostlab, a, kh, port=port) as ex:
            assert ex.run(("true",)).ok


def test_trust_on_first_use_appends_the_key(hostlab, hosts, tmp_path):
    b = hosts[1]
    kh = tmp_path / "new" / "known_hosts"
    with executor(hostlab, b, kh, trust_on_first_use=True) as ex:
        assert ex.run(("hostname",)).stdout == "b\n"
    lines = kh.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("|1|")  # hashed, like ssh-keyscan -H
    assert lines[0].split()[1:] == b.host_key_pub.split()[:2]
    with executor(hostlab, b, kh) as ex:  # now trusted without TOFU
        assert ex.run(("true",)).ok
    assert kh.read_text().splitlines() == lines


def test_changed_host_key_is_refused_even_with_tofu(hostlab, tmp_path):
    host = hostlab.host("rekey")
    kh = hostlab.known_hosts([host], tmp_path / "known_hosts")
    with executor(hostlab, host, kh) as ex:
        assert ex.run(("true",)).ok
    host.regenerate_host_key()
    before = kh.read_text()
    for tofu in (False, True):
        with pytest.raises(HostError) as exc:
            executor(hostlab, host, kh, trust_on_first_use=tofu).run(("true",))
        message = one_line_host_error(exc)
        assert host.address in message and "CHANGED" in message
        assert f"ssh-keygen -f {kh} -R {host.address} && ssh-keyscan -H {host.address} >> {kh}" in message
        assert kh.read_text() == before
    subprocess.run(["sh", "-c", message.split("run: ", 1)[1]], check=True, capture_output=True, timeout=20)
    with executor(hostlab, host, kh) as ex:
        assert ex.run(("true",)).ok


# -- auth and reachability -------------------------------------------------------------------


def test_wrong_client_key_is_one_line(hostlab, hosts, known_hosts):
    a = hosts[0]
    wrong = hostlab.new_client_key("wrong_key")
    with pytest.raises(HostError) as exc:
        executor(hostlab, a, known_hosts, identity_files=[str(wrong)]).run(("true",))
    message = one_line_host_error(exc)
    assert a.address in message and "root" in message and "refused" in message and "wrong_key" in message


def test_unreachable_address_fails_within_the_connect_timeout(hostlab, hosts, known_hosts):
    t0 = time.monotonic()
    with pytest.raises(HostError) as exc:
        SSHExecutor(UNUSED_ADDRESS, known_hosts=str(known_hosts), ssh_config=None, connect_timeout=1.5).run(("true",))
    took = time.monotonic() - t0
    message = one_line_host_error(exc)
    assert UNUSED_ADDRESS in message and ("1.5 s" in message or "unreachable" in message)
    assert took < 1.5 + 1.0, took


def test_refused_port_is_one_line(hostlab, hosts, known_hosts):
    a = hosts[0]
    with pytest.raises(HostError) as exc:
        executor(hostlab, a, known_hosts, port=2200).run(("true",))
    message = one_line_host_error(exc)
    assert f"{a.address}" in message and "refused" in message and "2200" in message


# -- ssh config, ProxyJump, agent ------------------------------------------------------------


def test_ssh_config_alias_hostname_port_user_identityfile(hostlab, hosts, known_hosts, tmp_path):
    a = hosts[0]
    cfg = tmp_path / "config"
    cfg.write_text(
        f"Host web-alias\n  HostName {a.address}\n  Port 2222\n  User root\n  IdentityFile {hostlab.client_key}\n"
        f"Host deploy-alias\n  HostName {a.address}\n  User deploy\n  IdentityFile {hostlab.client_key}\n"
    )
    with SSHExecutor("web-alias", known_hosts=str(known_hosts), ssh_config=str(cfg)) as ex:
        assert (ex.target.host, ex.port, ex.user) == (a.address, 2222, "root")
        assert ex.run(("sh", "-c", "echo $SSH_CONNECTION")).stdout.split()[2:] == [a.address, "2222"]
    # An explicit port wins over the config, as on the ssh command line.
    with SSHExecutor("web-alias", port=22, known_hosts=str(known_hosts), ssh_config=str(cfg)) as ex:
        assert ex.run(("sh", "-c", "echo $SSH_CONNECTION")).stdout.split()[3] == "22"
    # User from the config: deploy (no sudo on the host) -> the sudo error names that user.
    a.add_user("deploy")
    with pytest.raises(HostError) as exc:
        SSHExecutor("deploy-alias", known_hosts=str(known_hosts), ssh_config=str(cfg)).run(("true",))
    assert f"user deploy on deploy-alias ({a.address})" in one_line_host_error(exc)


@pytest.mark.parametrize("jump_spec", ["alias", "user@ip:port"])
def test_proxy_jump_through_a_to_b(hostlab, hosts, known_hosts, tmp_path, jump_spec):
    a, b = hosts
    jump = "jumpbox" if jump_spec == "alias" else f"root@{a.address}:2222"
    cfg = tmp_path / "config"
    cfg.write_text(
        f"Host jumpbox\n  HostName {a.address}\n  User root\n  IdentityFile {hostlab.client_key}\n"
        f"Host behind\n  HostName {b.address}\n  User root\n  IdentityFile {hostlab.client_key}\n  ProxyJump {jump}\n"
    )
    # A raw user@ip:port hop has no IdentityFile of its own: explicit identity_files serve every hop.
    keys = None if jump_spec == "alias" else [str(hostlab.client_key)]
    with SSHExecutor("behind", known_hosts=str(known_hosts), ssh_config=str(cfg), identity_files=keys) as ex:
        client_ip, _, server_ip, _ = ex.run(("sh", "-c", "echo $SSH_CONNECTION")).stdout.split()
        assert (client_ip, server_ip) == (a.address, b.address)  # b saw the connection come from a
        assert ex.run(("hostname",)).stdout == "b\n"
        assert len(ex._jumps) == 1


def test_proxy_jump_with_unknown_jump_host_key_names_the_jump_host(hostlab, hosts, tmp_path):
    a, b = hosts
    kh = tmp_path / "known_hosts"
    kh.write_text(b.known_hosts_line())  # b trusted, the jump host a is not
    cfg = tmp_path / "config"
    cfg.write_text(f"Host behind\n  HostName {b.address}\n  IdentityFile {hostlab.client_key}\n  ProxyJump {a.address}\n")
    with pytest.raises(HostError) as exc:
        SSHExecutor("behind", known_hosts=str(kh), ssh_config=str(cfg)).run(("true",))
    message = one_line_host_error(exc)
    assert message.startswith(f"{a.address}: unknown host key") and "jump host for behind" in message


def test_keys_from_the_ssh_agent(hostlab, hosts, known_hosts, tmp_path, monkeypatch):
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", str(hostlab.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
        with SSHExecutor(hosts[0].address, known_hosts=str(known_hosts), ssh_config=None) as ex:
            assert ex.run(("true",)).ok
    finally:
        agent.kill()
        agent.wait(5)


# -- non-root logins -----------------------------------------------------------------------------


def test_user_without_sudo_is_one_line_naming_the_host(hostlab, hosts, known_hosts):
    a = hosts[0]
    a.add_user("nosudo")
    with pytest.raises(HostError) as exc:
        executor(hostlab, a, known_hosts, user="nosudo").run(("true",))
    message = one_line_host_error(exc)
    assert message.startswith(f"user nosudo on {a.address} has no passwordless sudo: ")


def test_user_with_passwordless_sudo_runs_everything_as_root(hostlab, tmp_path):
    deb = hostlab.fetch_deb("sudo")
    if deb is None:
        pytest.skip("no sudo .deb available (apt-get download sudo failed)")
    host = hostlab.host("sudo")
    host.install_deb(deb)  # into the host's overlay only
    host.add_user("ops", sudo=True)
    host.add_user("plain")
    kh = hostlab.known_hosts([host], tmp_path / "known_hosts")
    with executor(hostlab, host, kh, user="ops") as ex:
        assert ex.run(("id", "-un")).stdout == "root\n"
        assert ex.run(("sh", "-c", 'echo "$SUDO_USER|$PATH"')).stdout == f"ops|{HOST_PATH}\n"
        ex.write_file("/etc/garrison-sudo-probe", b"x", mode=0o600, group="daemon")
        st = ex.stat("/etc/garrison-sudo-probe")
        assert (st.mode, st.owner, st.group) == (0o600, "root", "daemon")
        assert ex.read_file("/etc/garrison-sudo-probe") == b"x"
        ex.ensure_dir("/srv/sudo-test", mode=0o750)
        ex.extract_tar(_tarball(), "/srv/sudo-test")
        assert ex.stat("/srv/sudo-test/app/link").link_target == "main.py"
        with ex.lock("/run/lock/sudo.lock", "ops deploy"):
            with pytest.raises(LockHeld):
                with executor(hostlab, host, kh) as root_ex:
                    root_ex.lock("/run/lock/sudo.lock", "root")
    with pytest.raises(HostError) as exc:
        executor(hostlab, host, kh, user="plain").run(("true",))
    message = one_line_host_error(exc)
    assert message.startswith(f"user plain on {host.address} has no passwordless sudo: ") and "password" in message


# -- the deploy lock -----------------------------------------------------------------------------


def test_second_lock_attempt_names_the_holder(hostlab, hosts, known_hosts):
    a = hosts[0]
    with executor(hostlab, a, known_hosts) as one, executor(hostlab, a, known_hosts) as two:
        path = "/srv/locktest/deploy.lock"
        lock = one.lock(path, "deploy by alice (pid 4242)")
        with pytest.raises(LockHeld) as exc:
            two.lock(path, "bob")
        assert str(exc.value) == (
            f"another deploy holds the lock {path} on {a.address}: deploy by alice (pid 4242); wait for it to finish"
        )
        lock.release()
        lock.release()  # idempotent
        assert one.read_file(path) == b""  # as LocalExecutor: no holder after release
        with two.lock(path, "bob"):
            assert two.read_file(path) == b"bob"
            assert two.stat(path).mode == 0o600


CHILD = """
import os, sys
from garrison.errors import HostError
from garrison.hosts.ssh import SSHExecutor
address, known_hosts, key, path, stale = sys.argv[1:6]
ex = SSHExecutor(address, known_hosts=known_hosts, ssh_config=None, identity_files=[key], lock_stale_after=float(stale))
lock = ex.lock(path, "child pid %d" % os.getpid())
print("locked", flush=True)
sys.stdin.readline()  # the test says when to go on
try:
    ex.run(("true",))
    print("ran unlocked", flush=True)
except HostError as exc:
    print(exc, flush=True)
"""


def lock_holder(hostlab, host, known_hosts, path, stale=30.0) -> subprocess.Popen:
    """A separate deploying process that holds the lock at path."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, host.address, str(known_hosts), str(hostlab.client_key), path, str(stale)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert child.stdout.readline() == b"locked\n"
    return child


def wait_for_lock(ex: SSHExecutor, path: str, deadline: float) -> float:
    t0 = time.monotonic()
    while True:
        try:
            ex.lock(path, "parent").release()
            return time.monotonic() - t0
        except LockHeld:
            assert time.monotonic() - t0 < deadline, f"lock still held after {deadline} s"
            time.sleep(0.05)


def test_sigkill_of_the_holder_releases_the_lock(hostlab, hosts, known_hosts):
    a = hosts[0]
    path = "/run/lock/killed.lock"
    child = lock_holder(hostlab, a, known_hosts, path)
    try:
        with executor(hostlab, a, known_hosts) as ex:
            with pytest.raises(LockHeld) as exc:
                ex.lock(path, "parent")
            assert f"child pid {child.pid}" in str(exc.value)
            child.send_signal(signal.SIGKILL)
            child.wait(5)
            print(f"\nlock free {wait_for_lock(ex, path, 5):.2f} s after SIGKILL of its holder")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


def test_a_frozen_holder_loses_the_lock_and_then_stops(hostlab, hosts, known_hosts):
    """No heartbeat for lock_stale_after (network died silently, laptop suspended): the host drops the lock."""
    a = hosts[0]
    path = "/run/lock/frozen.lock"
    child = lock_holder(hostlab, a, known_hosts, path, stale=1.5)
    try:
        with executor(hostlab, a, known_hosts) as ex:
            time.sleep(2)  # heartbeats keep it held past the stale time
            with pytest.raises(LockHeld):
                ex.lock(path, "parent")
            child.send_signal(signal.SIGSTOP)
            print(f"\nlock free {wait_for_lock(ex, path, 4):.2f} s after its holder froze")
            lock = ex.lock(path, "parent")
            child.send_signal(signal.SIGCONT)
            child.stdin.write(b"go\n")
            child.stdin.flush()
            said = child.stdout.readline().decode()
            assert "lock /run/lock/frozen.lock was lost" in said, said  # it does not deploy unlocked
            lock.release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


def test_cut_connection_releases_the_lock_and_is_not_silently_reconnected(hostlab, hosts, known_hosts):
    a = hosts[0]
    path = "/run/lock/cut.lock"
    with executor(hostlab, a, known_hosts) as holder, executor(hostlab, a, known_hosts) as other:
        holder.lock(path, "holder")
        with pytest.raises(LockHeld):
            other.lock(path, "other")
        holder._conn.abort()  # the network drops (no SSH goodbye)
        t0 = time.monotonic()
        while True:
            try:
                lock = other.lock(path, "other")
                break
            except LockHeld:
                assert time.monotonic() - t0 < 5, "lock not released after the connection was cut"
                time.sleep(0.05)
        lock.release()
        with pytest.raises(HostError) as exc:
            holder.run(("true",))  # the deploy must not continue without its lock
        assert "lost" in one_line_host_error(exc) and "lock" in str(exc.value)


def test_timeout_stops_the_remote_command(ex_a, hosts):
    a = hosts[0]
    res = ex_a.run(("sh", "-c", "sleep 30 & echo $! > /tmp/bg.pid; wait"), timeout=0.5, check=False)
    assert res.returncode == 124
    pid = a.exec("cat", "/tmp/bg.pid").stdout.decode().strip()
    time.sleep(0.2)
    assert a.exec("kill", "-0", pid, check=False).returncode != 0, "the command's children outlived its timeout"


def test_close_then_use_is_a_clear_error(hostlab, hosts, known_hosts):
    ex = executor(hostlab, hosts[0], known_hosts)
    ex.run(("true",))
    ex.close()
    with pytest.raises(HostError) as exc:
        ex.run(("true",))
    assert "closed" in one_line_host_error(exc)
