"""Steps of `up` that must refuse or act carefully, on a scripted fake host (no machine touched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from garrison.config import parse_config
from garrison.errors import HostError
from garrison.hosts import Executor, HostLock, Result, Stat
from garrison.project import Project
from garrison.state import parse_env_file
from garrison.steps import execute
from garrison.steps.firewall import Firewall
from garrison.steps.system import System
from garrison.workflows import CHANGED, SKIPPED, Run
from garrison.workflows.provision import Provision
from garrison.workflows.up import context

FEDORA = b'NAME="Fedora Linux"\nID=fedora\nPRETTY_NAME="Fedora Linux 40"\n'
DEBIAN = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'


class FakeHost(Executor):
    """Answers commands from a script and records every argv it was asked to run."""

    name = "fake"

    def __init__(self, files: dict[str, bytes], answers: dict[tuple[str, ...], Result] | None = None):
        self.files = files
        self.answers = answers or {}
        self.ran: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, input=None, env: Mapping[str, str] | None = None, check=True, timeout=None) -> Result:
        argv = tuple(argv)
        self.ran.append(argv)
        for prefix, res in self.answers.items():
            if argv[: len(prefix)] == prefix:
                return Result(argv, res.returncode, res.stdout, res.stderr)
        return Result(argv, 0, "", "")

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(path)

    def write_file(self, path, data, *, mode=0o644, owner="root", group="root") -> None:
        self.files[path] = data

    def stat(self, path: str) -> Stat | None:
        return Stat(0o644, "root", "root", False, False, None) if path in self.files else None

    def extract_tar(self, data: bytes, dest: str) -> None:
        raise AssertionError("not expected")

    def lock(self, path: str, holder: str) -> HostLock:
        raise AssertionError("not expected")


def project(tmp_path) -> Project:
    cfg = parse_config({"app": {"name": "shop", "entry": "main:app"}})
    return Project(config=cfg, source=tmp_path / "garrison.toml", root=tmp_path)


def test_up_refuses_a_non_debian_system(tmp_path):
    host = FakeHost({"/etc/os-release": FEDORA})
    with pytest.raises(HostError, match="Fedora Linux 40 is not supported; garrison up needs Debian or Ubuntu"):
        execute(context(project(tmp_path), host, Run()), [System()])
    assert not any(a[0] == "apt-get" for a in host.ran)


def test_up_as_non_root_with_missing_packages_names_the_command(tmp_path):
    host = FakeHost(
        {"/etc/os-release": DEBIAN},
        {("id", "-u"): Result((), 0, "1000\n", ""), ("dpkg-query",): Result((), 0, "nginx\tii \n", "")},
    )
    with pytest.raises(HostError) as exc:
        execute(context(project(tmp_path), host, Run()), [System()])
    assert "missing packages python3-venv and not root" in str(exc.value)
    assert "sudo apt-get update && sudo apt-get install -y python3-venv" in str(exc.value)
    assert not any(a[0] == "apt-get" for a in host.ran)


def test_up_as_root_installs_only_what_is_missing(tmp_path):
    host = FakeHost(
        {"/etc/os-release": DEBIAN, "/proc/1/comm": b"systemd\n"},
        {("id", "-u"): Result((), 0, "0\n", ""), ("dpkg-query",): Result((), 0, "python3-venv\tii \n", "")},
    )
    run = Run()
    ctx = context(project(tmp_path), host, run)
    execute(ctx, [System()])
    facts = ctx.hf
    installs = [a for a in host.ran if a[:2] == ("apt-get", "install")]
    assert installs == [("apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx")]
    assert run.steps[0].status == CHANGED and facts.systemd


def test_firewall_opens_ssh_first_and_only_what_is_missing(tmp_path):
    host = FakeHost(
        {"/etc/ssh/sshd_config": b"Port 2222\n"},
        {
            ("sh", "-c"): Result((), 0, "/usr/sbin/ufw\n", ""),
            ("ufw", "status"): Result((), 0, "Status: active\n", ""),
            ("ufw", "show", "added"): Result((), 0, "Added user rules:\nufw allow 443/tcp\n", ""),
        },
    )
    run = Run()
    execute(context(project(tmp_path), host, run), [Firewall()])
    allows = [a for a in host.ran if a[:2] == ("ufw", "allow")]
    assert allows == [("ufw", "allow", "2222/tcp"), ("ufw", "allow", "80/tcp")]
    assert run.steps[-1].status == CHANGED and "ufw active" in run.steps[-1].detail


def test_firewall_is_skipped_without_ufw(tmp_path):
    host = FakeHost({}, {("sh", "-c"): Result((), 1, "", "")})
    run = Run()
    execute(context(project(tmp_path), host, run), [Firewall()])
    assert run.steps[-1].status == SKIPPED
    assert not any(a[0] == "ufw" for a in host.ran)


def _provision_host(added: str) -> FakeHost:
    """sshd runs with its own config (-f), on port 2200; ufw is installed and inactive."""
    return FakeHost(
        {
            "/run/sshd.pid": b"77\n",
            "/proc/77/cmdline": b"sshd: /usr/sbin/sshd -D -f /etc/ssh/lab_config [listener]",
            "/etc/ssh/lab_config": b"Port 2200\n",
            "/etc/ssh/sshd_config": b"Port 22\n",
        },
        {
            ("sh", "-c"): Result((), 0, "/usr/sbin/ufw\n", ""),
            ("ufw", "status"): Result((), 0, "Status: inactive\n", ""),
            ("ufw", "show", "added"): Result((), 0, added, ""),
        },
    )


def test_provision_enables_ufw_once_the_ssh_rule_of_the_running_sshd_is_in():
    host = _provision_host("Added user rules:\nufw allow 2200/tcp\nufw allow 80/tcp\n")
    run = Run()
    Provision(project=project(Path("/nonexistent")), host=host, run=run).ensure_firewall()
    assert [a for a in host.ran if a[:2] == ("ufw", "allow")] == [("ufw", "allow", "443/tcp")]
    assert ("ufw", "--force", "enable") in host.ran
    assert run.steps[-1].status == CHANGED and run.steps[-1].detail == "opened 443/tcp; enabled ufw"


def test_provision_refuses_to_enable_ufw_without_the_ssh_rule():
    host = _provision_host("Added user rules:\n")  # the allows did not take
    with pytest.raises(HostError, match="not enabling ufw: the rule for SSH port 2200 is missing"):
        Provision(project=project(Path("/nonexistent")), host=host, run=Run()).ensure_firewall()
    assert ("ufw", "allow", "2200/tcp") == next(a for a in host.ran if a[:2] == ("ufw", "allow"))
    assert ("ufw", "--force", "enable") not in host.ran


def test_env_file_parsing():
    text = "# comment\nA=1\nexport B='two words'\nC=\"x=y\"\nnot a line\n1BAD=x\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "x=y"}
    assert parse_env_file("") == {}
