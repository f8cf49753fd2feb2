"""`garrison provision HOST` against a disposable lab server (tests/hostlab.py), then a deploy.

The lab host starts as a fresh server (see test_fleet.fresh): root logs in with the lab's
client key; sudo is not installed (its .deb comes from the lab's local cache, as a
server without a mirror would need); ufw is not installed (the firewall step says so).
The lab's sshd runs with `-f /etc/ssh/garrison-lab/sshd_config` (inside the host's
overlay): hardening adds the Include of sshd_config.d on top of THAT file, validates
with `sshd -t -f` and reloads with SIGHUP, all inside the host.
"""

from __future__ import annotations

import time

import pytest

from garrison.errors import HostError
from tests.e2e.lab import (
    assert_sample_served,
    cli_env,
    fresh,
    garrison,
    host_entry,
    make_app,
    steps_by_host,
)
from tests.hostlab import hostlab, lab_unavailable_reason  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.machine,
    pytest.mark.skipif(lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())),
]
pytest.importorskip("asyncssh")


def test_provision_deploy_harden(hostlab, wheelhouse, tmp_path):
    from garrison.hosts.ssh import SSHExecutor

    deb = hostlab.fetch_deb("sudo")
    if deb is None:
        pytest.skip("no sudo .deb available for the offline lab host (apt-get download sudo failed)")
    h = fresh(hostlab.host("p1"))
    assert h.exec("sh", "-c", "command -v sudo", check=False).returncode != 0  # a server without sudo
    kh = hostlab.known_hosts([h], tmp_path / "known_hosts")
    env = dict(cli_env(hostlab, kh, wheelhouse), GARRISON_DEB_CACHE=str(deb.parent))
    app = make_app(tmp_path / "app", [host_entry(h)])

    t0 = time.monotonic()
    first = garrison("provision", "p1", cwd=app, env=env)
    print(f"first provision: {time.monotonic() - t0:.1f} s")
    assert first.returncode == 0, first.stderr
    steps = dict(steps_by_host(first.stdout)["p1"])
    assert steps["sudo"] == "changed" and steps["deploy-user"] == "changed" and steps["sudoers"] == "changed"
    assert steps["tool"] == "changed" and steps["user"] == "changed"
    assert steps["firewall"] == "skipped" and "ufw is not installed" in first.stdout
    assert h.exec("stat", "-c", "%a %U", "/etc/sudoers.d/garrison-deploy").stdout.decode().split() == ["440", "root"]
    assert h.exec("ls", "-a", "/etc/sudoers.d").stdout.decode().count(".new") == 0

    again = garrison("provision", "p1", cwd=app, env=env)
    assert again.returncode == 0, again.stderr
    steps = steps_by_host(again.stdout)["p1"]
    assert all(s in ("unchanged", "skipped") for _, s in steps), steps
    assert "nothing changed" in again.stdout

    # Deploy as the deploy user (its key, its sudo): the page is served by the host's nginx.
    app = make_app(tmp_path / "app", [host_entry(h, user="deploy")])
    dep = garrison("deploy", cwd=app, env=env)
    assert dep.returncode == 0, dep.stderr
    assert_sample_served(h.address)

    # Hardening: proven before, applied, proven after; root is then refused.
    app_root = make_app(tmp_path / "app-root", [host_entry(h)])
    hard = garrison("provision", "p1", "--harden-ssh", cwd=app_root, env=env)
    assert hard.returncode == 0, hard.stderr
    assert dict(steps_by_host(hard.stdout)["p1"])["harden-ssh"] == "changed"
    conf = h.exec("cat", "/etc/ssh/sshd_config.d/garrison.conf").stdout.decode()
    assert "PermitRootLogin no" in conf and "AllowUsers deploy" in conf and "PasswordAuthentication no" in conf
    with SSHExecutor(h.address, user="deploy", known_hosts=str(kh), ssh_config=None,
                     identity_files=[str(hostlab.client_key)], connect_timeout=5) as ex:
        assert ex.run(("id", "-un")).stdout == "root\n"  # the deploy user gets in, and sudoes
    assert h.exec("head", "-2", "/etc/ssh/garrison-lab/sshd_config").stdout.decode().splitlines()[1] == (
        "Include /etc/ssh/sshd_config.d/*.conf"
    )
    with pytest.raises(HostError) as exc:
        SSHExecutor(h.address, user="root", known_hosts=str(kh), ssh_config=None,
                    identity_files=[str(hostlab.client_key)], connect_timeout=5).run(("true",))
    assert "refused" in str(exc.value)

    # Provisioning again, now as the deploy user: nothing changes; a deploy still works.
    again = garrison("provision", "p1", "--harden-ssh", "--user", "deploy", cwd=app, env=env)
    assert again.returncode == 0, again.stderr
    assert all(s in ("unchanged", "skipped") for _, s in steps_by_host(again.stdout)["p1"]), again.stdout
    dep = garrison("deploy", cwd=app, env=env)
    assert dep.returncode == 0, dep.stderr
    assert_sample_served(h.address)
