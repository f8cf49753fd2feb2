"""`garrison provision HOST`: a fresh Debian/Ubuntu server made ready for deploys, idempotently.

Follows the tutorial's server notes: packages (nginx, python3-venv; Garrison's
tool venv from the wheelhouse when there is one) and the app user (the same
steps as `up`), a deploy user with the caller's public key and passwordless
sudo (the sudoers file is checked with `visudo -cf` before it is installed),
ufw rules for SSH, 80 and 443 (the SSH rule always before ufw is enabled),
and optional SSH hardening that is applied only after a second connection as
the deploy user has proven it can log in and sudo, validated with `sshd -t`,
reloaded gracefully (SIGHUP: open sessions stay), and checked again once the
reloaded sshd listens (reverted when the deploy user can no longer get in).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from garrison import commands as C
from garrison import facts as F
from garrison.clock import SYSTEM, Clock, WaitTimeout, wait_until
from garrison.errors import CommandFailed, DeployError, HostError
from garrison.hosts import Executor
from garrison.project import Project
from garrison.steps import execute
from garrison.steps.firewall_rules import allow_ssh_and_web, sshd_config_path
from garrison.workflows import CHANGED, SKIPPED, Run
from garrison.workflows.up import PREPARE, context

HARDEN_FILE = "/etc/ssh/sshd_config.d/garrison.conf"
INCLUDE_LINE = "Include /etc/ssh/sshd_config.d/*.conf"
SSHD_PID_FILE = "/run/sshd.pid"
# Listening TCP sockets with their owning processes (-p) and inodes (-e), no header.
SS_LISTEN_TCP = ("ss", "-Hltnpe")
# After SIGHUP, sshd closes its listening sockets and re-executes itself only once the
# connections still in their pre-authentication phase are done: at worst
# LoginGraceTime (120 s by default) on a server that bots keep knocking on.
SSHD_RELOAD_TIMEOUT = 130.0
SSHD_RELOAD_POLL = 0.1


def parse_listening_inodes(ss_output: str, pid: int) -> frozenset[str]:
    """Inodes of the listening sockets that process pid holds, from `ss -Hltnpe` lines.

    (A fact and its parser: it moves to facts/ with the others.)
    """
    owner = re.compile(rf"\bpid={pid},")
    found = set()
    for line in ss_output.splitlines():
        inode = re.search(r"\bino:(\d+)", line)
        if inode and owner.search(line):
            found.add(inode.group(1))
    return frozenset(found)


@dataclass
class Provision:
    project: Project
    host: Executor
    run: Run
    deploy_user: str = "deploy"
    public_key: str = ""
    harden_ssh: bool = False
    wheelhouse: Path | None = None
    deb_cache: Path | None = None
    # Opens a NEW connection to this host as the given user (for the proof before hardening).
    connect_as: Callable[[str], Executor] | None = None
    clock: Clock = SYSTEM

    def __call__(self) -> None:
        # The same first steps as `up`: packages, Garrison's venv, the app user.
        execute(context(self.project, self.host, self.run, wheelhouse=self.wheelhouse), PREPARE)
        has_sudo = self.ensure_sudo()
        self.ensure_deploy_user()
        if has_sudo:
            self.ensure_sudoers()
        self.ensure_firewall()
        if self.harden_ssh:
            if not has_sudo:
                raise HostError(f"{self.host.name}: not hardening SSH: the deploy user has no sudo (sudo is not installed)")
            self.harden()

    # -- sudo ---------------------------------------------------------------
    def ensure_sudo(self) -> bool:
        h = self.host
        with self.run.step("sudo", "the sudo package") as st:
            if h.which("sudo") and h.which("visudo"):
                st.detail = "sudo is installed"
                return True
            deb = None
            if self.deb_cache and self.deb_cache.is_dir():
                found = sorted(self.deb_cache.glob("sudo_*.deb"))
                deb = found[-1] if found else None
            if deb is not None:
                tmp = "/tmp/garrison-sudo.deb"
                h.write_file(tmp, deb.read_bytes(), mode=0o600)
                try:
                    h.run(C.install_deb(tmp), env=C.APT_ENV, timeout=300)
                finally:
                    h.remove(tmp)
                st.status, st.detail = CHANGED, f"installed {deb.name} from the local cache {self.deb_cache}"
                return True
            res = h.run(C.apt_install(["sudo"]), env=C.APT_ENV, check=False, timeout=600)
            if res.ok and h.which("sudo"):
                st.status, st.detail = CHANGED, "installed sudo with apt-get"
                return True
            st.status = SKIPPED
            st.detail = (
                "sudo is not installed and could not be installed (apt-get failed; no sudo_*.deb in --debs): "
                f"the deploy user {self.deploy_user} gets no sudo; deploy as root, or install sudo and provision again"
            )
            return False

    # -- the deploy user ---------------------------------------------------
    def ensure_deploy_user(self) -> None:
        h, user = self.host, self.deploy_user
        with self.run.step("deploy-user", f"user {user} with your public key") as st:
            done = []
            if not h.run(C.user_exists(user), check=False).ok:
                h.run(C.add_login_user(user, "Garrison deploys"))
                done.append(f"created {user}")
            home = h.run(C.passwd_entry(user)).stdout.strip().split(":")[5]
            ssh_dir = posixpath.join(home, ".ssh")
            if h.ensure_dir(ssh_dir, mode=0o700, owner=user, group=user):
                done.append(f"{ssh_dir}")
            keys_path = posixpath.join(ssh_dir, "authorized_keys")
            current = (h.read_file(keys_path) or b"").decode(errors="replace")
            key = self.public_key.strip()
            have = {" ".join(ln.split()[:2]) for ln in current.splitlines() if ln.strip() and not ln.startswith("#")}
            text = current
            if " ".join(key.split()[:2]) not in have:
                text = (current if not current or current.endswith("\n") else current + "\n") + key + "\n"
                done.append("added your public key")
            if h.ensure_file(keys_path, text.encode(), mode=0o600, owner=user, group=user) and "added your public key" not in done:
                done.append("fixed authorized_keys mode/owner")
            if done:
                st.status, st.detail = CHANGED, "; ".join(done)
            else:
                st.detail = f"{user} exists and has your key"

    def ensure_sudoers(self) -> None:
        h, user = self.host, self.deploy_user
        path = f"/etc/sudoers.d/garrison-{user}"
        want = f"# Garrison: {user} deploys (passwordless sudo).\n{user} ALL=(ALL:ALL) NOPASSWD: ALL\n".encode()
        with self.run.step("sudoers", f"passwordless sudo for {user}") as st:
            if h.has_file(path, want, mode=0o440):
                st.detail = f"{path} in place"
                return
            # sudo ignores files with a dot in their name: the candidate is inert until checked and renamed.
            tmp = f"/etc/sudoers.d/.garrison-{user}.new"
            h.write_file(tmp, want, mode=0o440)
            res = h.run(C.check_sudoers(tmp), check=False)
            if not res.ok:
                h.remove(tmp)
                raise HostError(f"{h.name}: visudo rejected the sudoers file for {user}: {(res.stderr or res.stdout).strip()}")
            h.run(C.replace_file(tmp, path))
            st.status, st.detail = CHANGED, f"wrote {path} (checked with visudo -cf first)"

    # -- firewall -------------------------------------------------------------
    def ensure_firewall(self) -> None:
        h = self.host
        with self.run.step("firewall", "ufw: SSH, 80 and 443") as st:
            if not h.which("ufw"):
                st.status, st.detail = SKIPPED, "ufw is not installed"
                return
            want, opened = allow_ssh_and_web(h, self.project.config.server.port)
            notes = [f"opened {', '.join(opened)}"] if opened else []
            if not F.parse_ufw_active(h.run(F.ufw_status(), check=False).stdout):
                added = F.parse_ufw_added(h.run(F.ufw_added(), check=False).stdout)
                ssh_rule = want[0]  # "PORT/tcp"
                if ssh_rule not in added:
                    raise HostError(
                        f"{h.name}: not enabling ufw: the rule for SSH port {ssh_rule.split('/')[0]} is missing"
                    )
                h.run(C.ufw_enable())
                notes.append("enabled ufw")
            if notes:
                st.status, st.detail = CHANGED, "; ".join(notes)
            else:
                st.detail = f"{', '.join(want)} allowed; ufw active"

    # -- SSH hardening ------------------------------------------------------
    def prove_deploy_login(self) -> str:
        """A second, new connection as the deploy user, which must be able to sudo."""
        if self.connect_as is None:
            raise HostError(f"{self.host.name}: cannot prove a login as {self.deploy_user} (no way to connect)")
        ex = self.connect_as(self.deploy_user)
        try:
            who = ex.run(C.whoami()).stdout.strip()  # through sudo -n: root
            ex.run(C.noop())
        finally:
            close = getattr(ex, "close", None)
            if close:
                close()
        if who != "root":
            raise HostError(f"{self.host.name}: {self.deploy_user} logged in but sudo gave {who!r}, not root")
        return who

    def harden(self) -> None:
        h, user = self.host, self.deploy_user
        with self.run.step("harden-ssh", f"sshd: no root login, no passwords, only {user}") as st:
            want = (
                "# Garrison: SSH hardening (garrison provision --harden-ssh).\n"
                "PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                f"AllowUsers {user}\n"
            ).encode()
            config = sshd_config_path(self.host)
            main_text = (h.read_file(config) or b"").decode(errors="replace")
            included = any(ln.strip().startswith("Include") and "sshd_config.d" in ln for ln in main_text.splitlines())
            if h.read_file(HARDEN_FILE) == want and included:
                # Still prove the way in works (cheap), but change nothing.
                self.prove_deploy_login()
                st.detail = f"{HARDEN_FILE} in place; {user} logs in and sudoes"
                return
            try:
                self.prove_deploy_login()
            except HostError as exc:
                raise HostError(f"{h.name}: not hardening SSH: a login as {user} does not work yet ({exc})") from None
            # Before anything changes: the reload must be observable, or the proof after it
            # could run against the old sshd and prove nothing.
            listening = self.sshd_listening()
            old_main, old_file = main_text, h.read_file(HARDEN_FILE)
            h.ensure_dir(posixpath.dirname(HARDEN_FILE), mode=0o755)
            h.write_file(HARDEN_FILE, want)
            if not included:
                # sshd keeps the FIRST value of a setting: the Include goes on top.
                h.write_file(config, (f"# Added by Garrison: settings in sshd_config.d win.\n{INCLUDE_LINE}\n" + main_text).encode(),
                             mode=cur.mode if (cur := h.stat(config)) else 0o644)
            res = h.run(C.sshd_check(config), check=False)
            if not res.ok:
                self._restore(config, old_main, old_file)
                raise DeployError(f"{h.name}: sshd -t rejected the hardened config, nothing changed: {res.stderr.strip()}")
            try:
                self.reload_sshd(listening)
            except HostError as exc:
                # sshd reads the files again whenever it starts: put the old ones back.
                self._restore(config, old_main, old_file)
                raise DeployError(f"{exc}; the hardening was reverted (files restored)") from None
            try:
                self.prove_deploy_login()
            except HostError as exc:
                self._restore(config, old_main, old_file)
                try:
                    self.reload_sshd()
                except HostError as again:
                    raise DeployError(f"{h.name}: after hardening {user} could not log in ({exc}); the files were "
                                      f"reverted but sshd did not reload them ({again})") from None
                raise DeployError(f"{h.name}: after hardening {user} could not log in ({exc}); hardening reverted") from None
            st.status = CHANGED
            st.detail = f"wrote {HARDEN_FILE}" + ("" if included else f", Include added to {config}") + f"; {user} proven before and after the reload"

    def _restore(self, config: str, old_main: str, old_file: bytes | None) -> None:
        h = self.host
        h.write_file(config, old_main.encode())
        if old_file is None:
            h.remove(HARDEN_FILE)
        else:
            h.write_file(HARDEN_FILE, old_file)

    def sshd_listening(self) -> tuple[int, frozenset[str]]:
        """The running sshd's pid and the inodes of its listening sockets."""
        h = self.host
        pid = F.parse_pid(h.read_file(SSHD_PID_FILE))
        if pid is None:
            raise HostError(f"{h.name}: no {SSHD_PID_FILE}; reload sshd by hand (systemctl reload ssh)")
        res = h.run(SS_LISTEN_TCP, check=False)
        if not res.ok:
            raise HostError(f"{h.name}: cannot see sshd's sockets (`{' '.join(SS_LISTEN_TCP)}` exited {res.returncode}: "
                            f"{(res.stderr or res.stdout).strip()}); reload sshd by hand")
        inodes = parse_listening_inodes(res.stdout, pid)
        if not inodes:
            # e.g. socket activation: the sockets are systemd's, a reload would not show.
            raise HostError(f"{h.name}: sshd (pid {pid}) holds no listening socket of its own; "
                            "reload sshd by hand (systemctl reload ssh)")
        return pid, inodes

    def reload_sshd(self, listening: tuple[int, frozenset[str]] | None = None) -> None:
        """SIGHUP, then wait until the re-executed sshd listens again; sessions already open stay.

        sshd keeps its pid across the re-exec, so the pid alone says nothing; but the
        new sshd binds new sockets. Done when that pid holds as many listening sockets
        as before and none of the old ones: the next connection meets the new config.
        """
        h = self.host
        pid, before = listening or self.sshd_listening()
        try:
            h.run(C.kill("HUP", pid))
        except CommandFailed as exc:
            raise HostError(f"{h.name}: could not reload sshd: {exc}") from None

        def listening_again() -> bool:
            if h.stat(f"/proc/{pid}") is None:
                raise HostError(f"{h.name}: sshd (pid {pid}) exited after the reload (SIGHUP); see its log")
            now = parse_listening_inodes(h.run(SS_LISTEN_TCP, check=False).stdout, pid)
            return len(now) >= len(before) and not (now & before)

        try:
            wait_until(listening_again, timeout=SSHD_RELOAD_TIMEOUT, interval=SSHD_RELOAD_POLL,
                       what=f"sshd (pid {pid}) to listen again after SIGHUP", clock=self.clock)
        except WaitTimeout as exc:
            raise HostError(f"{h.name}: sshd (pid {pid}) did not listen again after the reload: {exc}") from None
