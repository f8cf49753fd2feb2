"""`garrison up`: make a host serve the app, changing only what differs.

Order matters and is chosen so that a failure never takes down what serves:
packages → tool venv → user and folders → release → venv → config files →
service manager → new slot started and health-checked on its own socket →
nginx pointed at it (validated before it goes live) → old slot stopped →
firewall → health through nginx. A new release always starts in the idle
slot (blue/green), so a release that fails its health check leaves the
previous one serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Callable

from garrison import commands as C
from garrison import diagnose as D
from garrison import facts as F
from garrison import render as R
from garrison import source
from garrison.config import Config
from garrison.errors import CommandFailed, DeployError, HostError
from garrison.hosts import Executor
from garrison.layout import SLOTS, Layout, ToolLayout, other_slot
from garrison.project import Project
from garrison.workflows import CHANGED, SKIPPED, UNCHANGED, Run
from garrison.workflows.firewall import allow_ssh_and_web

HEALTH_DEADLINE = 30.0
# How long a slot must keep the same master and keep answering after its first 2xx.
SETTLE_SECONDS = 2.0
GUNICORN_SPEC = "gunicorn[gevent]>=23"


def server_specs(cfg: Config) -> tuple[str, ...]:
    """What the app's venv needs besides its requirements to run under the configured server.

    gunicorn 27 declares `packaging` only under its gevent extra, so the extra is
    always installed; ASGI apps also need the uvicorn worker."""
    if cfg.app.server == "granian":
        return ("granian>=2",)
    specs = [GUNICORN_SPEC]
    if cfg.gunicorn.worker_class == "uvicorn":
        specs.append("uvicorn-worker>=0.2")
    return tuple(specs)
TOOL_PACKAGES = ("supervisor>=4.2", "uv")


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of shared/.env, read exactly as garrison-exec reads them on the host."""
    from garrison.hosts.garrison_exec import parse_env

    return parse_env(text)


def probe_source() -> str:
    return resources.files("garrison.hosts").joinpath("probe.py").read_text()


@dataclass
class HostFacts:
    systemd: bool
    ipv6: bool
    nginx_user: str
    uv: str | None = None


@dataclass
class Up:
    """One `up` of one project on one host."""

    project: Project
    host: Executor
    run: Run
    tool: ToolLayout = ToolLayout()

    @property
    def cfg(self) -> Config:
        return self.project.config

    @property
    def L(self) -> Layout:
        return Layout.of(self.cfg)

    # ---- state ------------------------------------------------------------
    def read_state(self) -> dict:
        raw = self.host.read_file(self.L.state_file)
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return {}

    def write_state(self, state: dict) -> None:
        state.pop("live_slot", None)  # the upstream include says which slot is live
        self.host.write_file(self.L.state_file, json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")

    # ---- steps ------------------------------------------------------------
    def check_system(self) -> HostFacts:
        h = self.host
        with self.run.step("system", "checking the system and its packages") as st:
            osr = F.parse_os_release((h.read_file("/etc/os-release") or b"").decode(errors="replace"))
            if not osr.is_debian_family:
                raise HostError(
                    f"{h.name}: {osr.pretty} is not supported; garrison up needs Debian or Ubuntu (read from /etc/os-release)"
                )
            uid = h.run(("id", "-u")).stdout.strip()
            res = h.run(C.dpkg_status(C.BASE_PACKAGES), check=False)
            missing = [p for p in C.BASE_PACKAGES if p not in F.parse_dpkg_status(res.stdout)]
            if missing and uid != "0":
                raise HostError(
                    f"{h.name}: missing packages {', '.join(missing)} and not root; run: "
                    f"sudo apt-get update && sudo apt-get install -y {' '.join(missing)}"
                )
            if uid != "0":
                raise HostError(f"{h.name}: garrison up must run as root (it writes /etc/nginx and /srv); run: sudo garrison up")
            if missing:
                h.run(C.apt_update(), env=C.APT_ENV, timeout=600)
                try:
                    h.run(C.apt_install(missing), env=C.APT_ENV, timeout=1200)
                except CommandFailed as exc:
                    raise HostError(
                        f"{h.name}: apt-get could not install {' '.join(missing)}: {exc}; "
                        f"run `apt-get install -y {' '.join(missing)}` by hand to see why"
                    ) from None
                st.status, st.detail = CHANGED, f"installed {', '.join(missing)} on {osr.pretty}"
            else:
                st.detail = f"{osr.pretty}; nginx and python3-venv present"
            systemd = F.parse_pid1((h.read_file("/proc/1/comm") or b"").decode())
            ipv6 = h.exists("/proc/net/if_inet6")
            nginx_user = F.parse_nginx_user((h.read_file("/etc/nginx/nginx.conf") or b"").decode(errors="replace"))
        return HostFacts(systemd=systemd, ipv6=ipv6, nginx_user=nginx_user)

    def ensure_tool_venv(self, facts: HostFacts) -> None:
        """Garrison's own venv on the host: supervisord (no systemd) and uv (fast venvs)."""
        h, T = self.host, self.tool
        with self.run.step("tool", "Garrison's venv on the host (supervisord, uv)") as st:
            py = f"{T.venv}/bin/python"
            want = ["uv"] + ([] if facts.systemd else ["supervisord"])
            have = [b for b in want if h.exists(f"{T.venv}/bin/{b}")]
            if have == want:
                st.detail = f"{T.venv} has {', '.join(want)}"
            else:
                if not h.exists(py):
                    h.run(("/usr/bin/python3", "-m", "venv", T.venv), timeout=300)
                # A local wheelhouse (--wheelhouse / GARRISON_WHEELHOUSE): hosts without a route to PyPI.
                from garrison.workflows.fleet import sync_wheelhouse, wheelhouse_for

                local = wheelhouse_for(self)
                offline = ["--no-index", "--find-links", sync_wheelhouse(h, local)[0]] if local else []
                h.run((f"{T.venv}/bin/pip", "install", "--quiet", "--disable-pip-version-check", *offline, *TOOL_PACKAGES),
                      timeout=900)
                st.status, st.detail = CHANGED, f"installed {', '.join(TOOL_PACKAGES)} into {T.venv}" + (
                    f" from the wheelhouse {local}" if local else "")
            facts.uv = f"{T.venv}/bin/uv" if h.exists(f"{T.venv}/bin/uv") else h.which("uv")
            if not facts.systemd:
                helper = resources.files("garrison.hosts").joinpath("garrison_exec.py").read_bytes()
                h.ensure_dir(posixpath.dirname(T.exec_helper), mode=0o755)
                if h.ensure_file(T.exec_helper, helper, mode=0o755):
                    st.status = CHANGED
                    st.detail += f"; wrote {T.exec_helper}"

    def ensure_user_and_folders(self, facts: HostFacts) -> None:
        h, L, user = self.host, self.L, self.cfg.user
        with self.run.step("user", f"app user {user} and folders") as st:
            done = []
            if not h.run(C.user_exists(user), check=False).ok:
                h.run(C.add_system_user(user, L.base))
                done.append(f"created system user {user}")
            changed = False
            # Code, venvs and releases belong to root: the app can't rewrite itself.
            # Everything on the path to static files is world-traversable, so nginx's
            # user never gets the tutorial's 403.
            for path in (L.base, L.releases, L.venvs, L.slots_dir, L.etc_dir, L.error_pages):
                changed |= h.ensure_dir(path, mode=0o755)
            changed |= h.ensure_dir(L.shared, mode=0o750, owner=user, group=user)
            # Sockets: created by the app user, group nginx's user (setgid), 0660 via umask.
            changed |= h.ensure_dir(L.run_dir, mode=0o2750, owner=user, group=facts.nginx_user)
            changed |= h.ensure_dir(L.log_dir, mode=0o750, owner=user, group="adm" if self._group_exists("adm") else user)
            changed |= h.ensure_dir(posixpath.dirname(L.nginx_upstream), mode=0o755)
            if changed:
                done.append(f"folders under {L.base} and {L.log_dir}")
            if done:
                st.status, st.detail = CHANGED, "; ".join(done)
            else:
                st.detail = f"{user} and its folders exist with the right owners"

    def _group_exists(self, group: str) -> bool:
        return self.host.run(("getent", "group", group), check=False).ok

    def ensure_release(self, state: dict) -> str:
        h, L, root = self.host, self.L, self.project.root
        with self.run.step("release", "copying the app's code into a release") as st:
            files = source.app_files(root)
            if not files:
                raise DeployError(f"{root}: no files to deploy")
            digest = source.content_hash(root, files)[:12]
            for rid in state.get("releases", []):
                if rid.endswith("-" + digest) and h.exists(posixpath.join(L.release(rid), ".garrison-release")):
                    st.detail = f"{rid} already holds this code ({len(files)} files)"
                    # Most recently used last, so pruning keeps it.
                    state["releases"] = [r for r in state["releases"] if r != rid] + [rid]
                    return rid
            rid = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + digest
            tmp = L.release(rid) + ".partial"
            h.remove(tmp)
            h.ensure_dir(tmp, mode=0o755)
            h.extract_tar(source.archive(root, files), tmp)
            h.write_file(posixpath.join(tmp, ".garrison-release"), json.dumps({"id": rid, "files": len(files)}).encode())
            h.run(("mv", "-T", tmp, L.release(rid)))
            state.setdefault("releases", []).append(rid)
            st.status, st.detail = CHANGED, f"{rid} ({len(files)} files)"
            return rid

    def ensure_venv(self, facts: HostFacts, rid: str) -> str:
        h, L, a = self.host, self.L, self.cfg.app
        with self.run.step("venv", "the app's virtualenv") as st:
            reqhash = source.requirements_hash(self.project.root, a.requirements, a.python, server_specs(self.cfg))
            venv = L.venv(reqhash)
            marker = posixpath.join(venv, ".garrison-complete")
            if h.exists(marker):
                st.detail = f"reused {posixpath.basename(venv)} (requirements unchanged)"
            else:
                if not h.exists(a.python):
                    raise HostError(
                        f"{h.name}: app.python {a.python} does not exist; install python3 or set app.python in garrison.toml"
                    )
                h.remove(venv)
                release = L.release(rid)
                from garrison.workflows.fleet import sync_wheelhouse, wheelhouse_for

                local = wheelhouse_for(self)
                args = ["--no-index", "--find-links", sync_wheelhouse(h, local)[0]] if local else []
                args.extend(server_specs(self.cfg))
                if a.requirements == "pyproject.toml":
                    args.append(release)
                elif a.requirements:
                    args += ["-r", posixpath.join(release, a.requirements)]
                env = {"UV_CACHE_DIR": "/var/cache/garrison/uv", "UV_PYTHON_DOWNLOADS": "never", "UV_SYSTEM_CERTS": "1"}
                tool = "pip"
                try:
                    if not facts.uv:
                        raise CommandFailed(("uv",), 127, "", "uv not available")
                    h.run(C.make_venv(a.python, venv, facts.uv), env=env, timeout=300)
                    h.run(C.pip_install(venv, facts.uv, args), env=env, timeout=1200)
                    tool = "uv"
                except CommandFailed:
                    # uv missing or refused (e.g. a proxy it can't verify): pip always works.
                    h.remove(venv)
                    h.run(C.make_venv(a.python, venv, None), timeout=300)
                    try:
                        h.run(C.pip_install(venv, None, args), timeout=1200)
                    except CommandFailed as exc:
                        h.remove(venv)
                        raise DeployError(
                            f"installing the app's requirements failed: {exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}"
                        ) from None
                h.write_file(marker, b"")
                st.status, st.detail = CHANGED, f"built {posixpath.basename(venv)} with {tool}"
            h.ensure_symlink(venv, posixpath.join(L.release(rid), ".venv"))
        return reqhash

    def ensure_config_files(self, facts: HostFacts, live_slot: str) -> dict[str, bool]:
        h, L, cfg = self.host, self.L, self.cfg
        with self.run.step("config", "gunicorn, service and logrotate files") as st:
            changed = {
                "gunicorn": h.ensure_file(L.gunicorn_conf, R.gunicorn_conf(cfg, L).encode()),
                **({"granian": h.ensure_file(L.granian_script, R.granian_script(cfg, L).encode(), mode=0o755)}
                   if cfg.app.server == "granian" else {}),
                "errorpage": h.ensure_file(posixpath.join(L.error_pages, "garrison-50x.html"), R.error_page(cfg).encode()),
                "logrotate": h.ensure_file(L.logrotate, R.logrotate(cfg, L).encode()),
            }
            if facts.systemd:
                changed["unit"] = h.ensure_file(L.systemd_unit, R.systemd_unit(cfg, L).encode())
                if changed["unit"]:
                    h.run(C.systemctl("daemon-reload"))
            else:
                T = self.tool
                for d in (T.supervisor_include_dir, T.log_dir):
                    h.ensure_dir(d, mode=0o755)
                changed["supervisord"] = h.ensure_file(T.supervisord_conf, R.supervisord_conf(T).encode())
            names = [k for k, v in changed.items() if v]
            if names:
                st.status, st.detail = CHANGED, "wrote " + ", ".join(names)
            else:
                st.detail = "all up to date"
        return changed

    def ensure_manager(self, facts: HostFacts, conf_changed: bool) -> None:
        """supervisord running (hosts without systemd), with a boot entry where possible."""
        if facts.systemd:
            return
        h, T = self.host, self.tool
        with self.run.step("supervisor", "supervisord (restarts gunicorn, starts it at boot)") as st:
            notes = []
            if self.supervisord_pid() is None:
                h.ensure_dir(T.run_dir, mode=0o755)
                h.run(C.supervisord(T))
                self._wait_supervisor()
                st.status = CHANGED
                notes.append("started supervisord")
            elif conf_changed:
                h.run(C.supervisorctl(T, "reread"))
                st.status = CHANGED
                notes.append("reloaded supervisord's config")
            if h.exists("/etc/cron.d") and h.which("cron"):
                line = (
                    f"@reboot root mkdir -p {T.run_dir} && {' '.join(C.supervisord(T))}\n"
                )
                boot = "# Garrison: start supervisord (and with it every app's gunicorn) at boot.\n" + line
                if h.ensure_file(T.boot_entry, boot.encode()):
                    st.status = CHANGED
                    notes.append(f"boot entry {T.boot_entry}")
            else:
                notes.append("no systemd and no cron here: start supervisord at boot with " + " ".join(C.supervisord(T)))
            st.detail = "; ".join(notes) or "supervisord running"

    def supervisord_pid(self) -> int | None:
        pid = F.parse_pid(self.host.read_file(self.tool.supervisord_pid))
        if pid is None:
            return None
        return pid if self.host.run(C.kill("0", pid), check=False).ok else None

    def _wait_supervisor(self, deadline: float = 15.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.host.run(C.supervisorctl(self.tool, "pid"), check=False).ok:
                return
            time.sleep(0.1)
        raise HostError(f"{self.host.name}: supervisord did not answer within {deadline:.0f} s; see {self.tool.log_dir}/supervisord.log")

    # ---- slots --------------------------------------------------------------
    def slot_running(self, facts: HostFacts, slot: str) -> bool:
        if facts.systemd:
            return self.host.run(C.systemctl("is-active", "--quiet", self.L.systemd_instance(slot)), check=False).ok
        res = self.host.run(C.supervisorctl(self.tool, "status", self.L.supervisor_program(slot)), check=False)
        return "RUNNING" in res.stdout

    def start_slot(self, facts: HostFacts, slot: str, rid: str) -> None:
        h, L = self.host, self.L
        self.stop_slot(facts, slot)
        h.ensure_symlink(posixpath.relpath(L.release(rid), L.slots_dir), L.slot(slot))
        if facts.systemd:
            h.run(C.systemctl("enable", L.systemd_instance(slot)))
            h.run(C.systemctl("restart", L.systemd_instance(slot)), check=False)
        else:
            h.write_file(L.supervisor_program_conf(slot), R.supervisor_program(self.cfg, L, slot, self.tool).encode())
            h.run(C.supervisorctl(self.tool, "reread"))
            h.run(C.supervisorctl(self.tool, "add", L.supervisor_program(slot)), check=False)

    def stop_slot(self, facts: HostFacts, slot: str) -> None:
        h, L = self.host, self.L
        if facts.systemd:
            h.run(C.systemctl("disable", "--now", L.systemd_instance(slot)), check=False)
        else:
            if self.supervisord_pid() is not None:
                h.run(C.supervisorctl(self.tool, "stop", L.supervisor_program(slot)), check=False, timeout=120)
                h.run(C.supervisorctl(self.tool, "remove", L.supervisor_program(slot)), check=False)
            h.remove(L.supervisor_program_conf(slot))

    def probe(self, target: str, deadline: float = HEALTH_DEADLINE, timeout: float = 5.0) -> dict:
        a, s = self.cfg.app, self.cfg.server
        res = self.host.run(
            ("/usr/bin/python3", "-c", probe_source(), target, a.health_path, s.names[0], str(deadline), str(timeout)),
            check=False,
            timeout=deadline + 30,
        )
        try:
            return json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"ok": False, "status": None, "error": (res.stderr.strip() or "probe gave no answer")[-300:]}

    def log_since(self, path: str, offset: int) -> str:
        res = self.host.run(("tail", "-c", f"+{offset + 1}", path), check=False)
        return res.stdout if res.ok else ""

    def log_size(self, path: str) -> int:
        st = self.host.run(("stat", "-c", "%s", path), check=False)
        return int(st.stdout.strip()) if st.ok and st.stdout.strip().isdigit() else 0

    def wait_healthy(self, facts: HostFacts, slot: str, log_offset: int) -> dict:
        """Probe the slot's own socket until 2xx or the deadline; stop early when it can't come up."""
        a = self.cfg.app
        end = time.monotonic() + a.health_deadline
        attempts = 0
        refusals = 0
        while True:
            window = min(2.0, max(0.2, end - time.monotonic()))
            result = self.probe(self.L.bind_address(slot), deadline=window, timeout=a.health_timeout)
            attempts += result.get("attempts", 1)
            result["attempts"] = attempts
            if result.get("ok"):
                return self.settle(facts, slot, result)
            # A client error (Django's ALLOWED_HOSTS 400, a 404 health path) won't change by waiting.
            status = result.get("status") or 0
            refusals = refusals + 1 if 400 <= status < 500 and status not in (408, 429) else 0
            if refusals >= 3:
                return result
            failure = D.boot_failure(self.log_since(self.L.error_log, log_offset))
            if failure is not None:
                result["boot_failure"] = failure
                return result
            if result.get("status") is None:
                exited = self.slot_exited(facts, slot)
                if exited:
                    result["exited"] = exited
                    return result
            if time.monotonic() >= end:
                result["timeout"] = True
                return result

    def settle(self, facts: HostFacts, slot: str, result: dict, seconds: float = SETTLE_SECONDS) -> dict:
        """A first 2xx is not enough: the same gunicorn master must keep answering for a while.

        Orphaned workers of a master that just crashed can answer a probe, and a
        master can die a moment after its first answer; neither may take traffic.
        """
        pidfile = self.L.pidfile(slot)
        master = F.parse_pid(self.host.read_file(pidfile))
        end = time.monotonic() + seconds
        attempts = result.get("attempts", 1)
        while True:
            now = F.parse_pid(self.host.read_file(pidfile))
            alive = now is not None and self.host.run(C.kill("0", now), check=False).ok
            if master is None or now != master or not alive:
                died = f"master pid {master} died" if now == master else f"master pid {master} replaced by {now or 'none'}"
                return dict(result, ok=False, exited=self.slot_exited(facts, slot) or died, attempts=attempts)
            if time.monotonic() >= end:
                return dict(result, attempts=attempts)
            again = self.probe(self.L.bind_address(slot), deadline=0.2, timeout=self.cfg.app.health_timeout)
            attempts += again.get("attempts", 1)
            if not again.get("ok"):
                out = dict(again, attempts=attempts)
                if again.get("status") is None:
                    out["exited"] = self.slot_exited(facts, slot) or "it stopped answering right after its first answer"
                return out
            time.sleep(0.1)

    def slot_exited(self, facts: HostFacts, slot: str) -> str | None:
        """The manager's word when a slot's gunicorn died after starting, else None."""
        if facts.systemd:
            res = self.host.run(C.systemctl("is-failed", self.L.systemd_instance(slot)), check=False)
            return "systemd reports the unit failed" if res.ok else None
        res = self.host.run(C.supervisorctl(self.tool, "status", self.L.supervisor_program(slot)), check=False)
        words = res.stdout.split()
        if len(words) >= 2 and words[1] in ("BACKOFF", "EXITED", "FATAL"):
            return f"supervisord: {' '.join(words[1:])}"
        return None

    def evidence(self, slot: str, log_offset: int) -> list[str]:
        """What a failed slot left behind: its error log since it started, its socket."""
        h, L = self.host, self.L
        lines: list[str] = []
        tail = self.log_since(L.error_log, log_offset).strip().splitlines()
        if not tail:
            tail = (h.read_file(L.supervisor_log(slot)) or b"").decode(errors="replace").strip().splitlines()
        failure = D.boot_failure("\n".join(tail))
        shown = list(failure.traceback) if failure and failure.traceback else tail[-25:]
        if shown:
            lines.append(f"from {L.error_log}:")
            lines += ["  " + t for t in shown]
        if not L.bind:
            st = h.stat(L.socket(slot))
            lines.append(f"socket {L.socket(slot)}: " + ("present" if st else "missing (gunicorn never bound it)"))
        return lines

    def live_slot(self) -> str | None:
        """The slot nginx sends traffic to, read from the upstream include (the truth)."""
        L = self.L
        server = F.parse_upstream_server((self.host.read_file(L.nginx_upstream) or b"").decode(errors="replace"))
        for slot in SLOTS:
            if server == L.upstream_server(slot):
                return slot
        return None

    def health_failure(self, result: dict) -> str:
        path, a = self.cfg.app.health_path, self.cfg.app
        if result.get("boot_failure"):
            return f"the app failed to boot: {result['boot_failure'].summary}"
        if result.get("exited"):
            return f"gunicorn started, then exited ({result['exited']}): the app crashed after start"
        if result.get("status"):
            body = " ".join(str(result.get("body") or "").split())[:100]
            hint = " (Django: add the server name to ALLOWED_HOSTS)" if "Bad Request (400)" in body else ""
            return f"{path} answered HTTP {result['status']} instead of 2xx{hint}"
        if result.get("timeout"):
            return f"{path} did not answer within {a.health_deadline} s ({result.get('error') or 'no answer'}): the app hangs or is too slow to start"
        return f"{path}: {result.get('error') or 'no answer'}"

    def app_env(self) -> dict[str, str]:
        return parse_env_file((self.host.read_file(self.L.env_file) or b"").decode(errors="replace"))

    def run_hook(self, facts: HostFacts, name: str, command: str, rid: str, slot: str) -> None:
        """A release hook as the app user, in the release, with its venv and environment."""
        h, L = self.host, self.L
        release = L.release(rid)
        env = {
            "PATH": f"{release}/.venv/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": L.base,
            "VIRTUAL_ENV": f"{release}/.venv",
            "GARRISON_RELEASE": rid,
            "GARRISON_SLOT": slot,
            "GARRISON_HOOK": name,
        }
        env.update(parse_env_file((h.read_file(L.env_file) or b"").decode(errors="replace")))
        argv = ("runuser", "-u", self.cfg.user, "--", "env", "-C", release, *(f"{k}={v}" for k, v in env.items()),
                "/bin/sh", "-c", command)
        res = h.run(argv, check=False, timeout=1800)
        if not res.ok:
            out = (res.stderr.strip() or res.stdout.strip()).splitlines()[-15:]
            raise DeployError(
                f"the {name} hook `{command}` exited {res.returncode} in release {rid}\n" + "\n".join("  " + ln for ln in out)
            )

    def deploy_slot(self, facts: HostFacts, state: dict, rid: str, fingerprint: str, reason: str, live: str | None) -> str:
        """Start rid in the idle slot, health-check it, point nginx at it, stop the old slot."""
        L, a = self.L, self.cfg.app
        new = other_slot(live) if live else "blue"
        kept = f"slot {live} keeps serving the previous release" if live else "nothing was serving before"
        if self.cfg.hooks.release:
            with self.run.step("hook", f"release hook in {rid}") as st:
                try:
                    # The release is root-owned, but the hook may have to fill the static
                    # folders nginx serves (Django's collectstatic into STATIC_ROOT): the
                    # missing ones are created for the app user first.
                    for static in a.static:
                        folder = posixpath.join(L.release(rid), static.path)
                        if not self.host.exists(folder):
                            self.host.ensure_dir(folder, mode=0o755, owner=self.cfg.user, group=self.cfg.user)
                    self.run_hook(facts, "release", self.cfg.hooks.release, rid, new)
                except DeployError as exc:
                    st.detail = str(exc).splitlines()[0]
                    raise DeployError(f"{exc}; {kept}") from None
                st.status, st.detail = CHANGED, f"`{self.cfg.hooks.release}` succeeded"
        with self.run.step("slot", f"starting release in slot {new}") as st:
            log_offset = self.log_size(L.error_log)
            self.start_slot(facts, new, rid)
            result = self.wait_healthy(facts, new, log_offset)
            if not result.get("ok"):
                ev = self.evidence(new, log_offset)
                self.stop_slot(facts, new)
                why = self.health_failure(result)
                st.detail = why
                raise DeployError(f"release {rid} failed on slot {new}: {why}; {kept}\n" + "\n".join(ev))
            st.status, st.detail = CHANGED, f"{reason}; {rid} healthy on slot {new} after {result.get('attempts')} probe(s)"
        # Recorded before the switch: if we die right after it, the next run knows what the slot runs.
        state.setdefault("slots", {})[new] = {"release": rid, "fingerprint": fingerprint}
        self.write_state(state)
        self.switch_nginx(facts, new)
        state["current"] = rid
        self.host.ensure_symlink(posixpath.relpath(L.release(rid), L.base), L.current)
        self.write_state(state)
        if live:
            with self.run.step("drain", f"draining and stopping the old slot {live}") as st2:
                drained = self.wait_nginx_drained()
                self.stop_slot(facts, live)
                state["slots"].pop(live, None)
                self.write_state(state)
                st2.status, st2.detail = CHANGED, f"old nginx workers {drained}; slot {live} stopped gracefully"
        if self.cfg.hooks.post_deploy:
            with self.run.step("post_deploy", "post-deploy hook") as st3:
                try:
                    self.run_hook(facts, "post_deploy", self.cfg.hooks.post_deploy, rid, new)
                except DeployError as exc:
                    st3.detail = str(exc).splitlines()[0]
                    raise DeployError(f"{exc}; release {rid} is live and serving (the hook ran after the cut-over)") from None
                st3.status, st3.detail = CHANGED, f"`{self.cfg.hooks.post_deploy}` succeeded"
        return new

    def wait_nginx_drained(self) -> str:
        """Wait until nginx's old workers (after a reload) have finished their requests."""
        deadline = time.monotonic() + self.cfg.gunicorn.graceful_timeout
        while True:
            res = self.host.run(("ps", "-eo", "pid=,ppid=,args="), check=False)
            old = F.count_nginx_draining(res.stdout, F.parse_pid(self.host.read_file("/run/nginx.pid")))
            if old == 0:
                return "finished"
            if time.monotonic() > deadline:
                return f"still finishing ({old}) after {self.cfg.gunicorn.graceful_timeout} s"
            time.sleep(0.05)

    # ---- nginx --------------------------------------------------------------
    def nginx_running(self, facts: HostFacts) -> bool:
        pid = F.parse_pid(self.host.read_file("/run/nginx.pid"))
        return pid is not None and self.host.run(C.kill("0", pid), check=False).ok

    def nginx_apply(self, facts: HostFacts) -> str:
        """Start nginx, or reload it gracefully, after a full `nginx -t`."""
        h = self.host
        res = h.run(C.nginx_test(), check=False)
        if not res.ok:
            raise DeployError(f"nginx -t failed: {res.stderr.strip()}")
        if self.nginx_running(facts):
            old = self.nginx_workers()
            h.run(C.systemctl("reload", "nginx") if facts.systemd else C.nginx_reload())
            # `nginx -s reload` only signals the master: wait until workers with the
            # new config have replaced the old ones, so that "done" means done.
            end = time.monotonic() + 15
            while time.monotonic() < end:
                now = self.nginx_workers()
                if now and not (now & old):
                    return "reloaded nginx"
                time.sleep(0.02)
            raise DeployError("nginx did not start workers with the new config within 15 s; see /var/log/nginx/error.log")
        if facts.systemd:
            h.run(C.systemctl("enable", "--now", "nginx"))
        else:
            h.run(C.nginx_start())
        return "started nginx"

    def nginx_workers(self) -> set[int]:
        """PIDs of nginx workers that accept new connections (not the ones shutting down)."""
        res = self.host.run(("ps", "-eo", "pid=,ppid=,args="), check=False)
        return F.parse_nginx_workers(res.stdout, F.parse_pid(self.host.read_file("/run/nginx.pid")))

    def switch_nginx(self, facts: HostFacts, slot: str) -> None:
        h, L = self.host, self.L
        with self.run.step("upstream", f"pointing nginx at slot {slot}") as st:
            old = h.read_file(L.nginx_upstream)
            if h.ensure_file(L.nginx_upstream, R.nginx_upstream(self.cfg, L, slot).encode()):
                if h.exists(L.nginx_site_link):
                    try:
                        st.detail = self.nginx_apply(facts)
                    except DeployError:
                        if old is not None:
                            h.write_file(L.nginx_upstream, old)
                        raise
                st.status = CHANGED
                st.detail = f"upstream → {slot}" + (f"; {st.detail}" if st.detail else "")
            else:
                st.detail = f"already on {slot}"

    def validate_site(self, site_text: str, disable_default: bool) -> None:
        """`nginx -t` on the candidate site before it replaces the live file."""
        h, L = self.host, self.L
        enabled = "/etc/nginx/sites-enabled"
        main = (h.read_file("/etc/nginx/nginx.conf") or b"").decode(errors="replace")
        check_dir = f"/etc/nginx/.garrison-check-{self.cfg.app.name}"
        check_main = R.nginx_check_main(main, enabled, check_dir)
        if check_main is None:
            raise DeployError(
                "/etc/nginx/nginx.conf does not include /etc/nginx/sites-enabled/; add "
                "`include /etc/nginx/sites-enabled/*;` to its http block"
            )
        h.remove(check_dir)
        h.ensure_dir(check_dir, mode=0o755)
        try:
            listing = h.run(("find", enabled, "-mindepth", "1", "-maxdepth", "1"), check=False).stdout.split()
            for entry in listing:
                name = posixpath.basename(entry)
                if name == posixpath.basename(L.nginx_site_link) or (disable_default and name == "default"):
                    continue
                if self.cfg.server.default and entry == self.tool.catchall_link(self.cfg.server.port):
                    continue
                h.run(("ln", "-s", entry, posixpath.join(check_dir, name)))
            h.write_file(posixpath.join(check_dir, posixpath.basename(L.nginx_site_link)), site_text.encode())
            main_path = f"/etc/nginx/.garrison-check-{self.cfg.app.name}.conf"
            h.write_file(main_path, check_main.encode())
            res = h.run(C.nginx_test(main_path), check=False)
            h.remove(main_path)
            if not res.ok:
                err = res.stderr.strip().replace(check_dir, posixpath.dirname(L.nginx_site))
                raise DeployError(f"the new nginx site for {self.cfg.app.name} was rejected by nginx -t, the live one is untouched: {err}")
        finally:
            h.remove(check_dir)

    def preflight(self) -> None:
        """What can be checked before anything changes, so that a doomed deploy touches nothing."""
        tls = R.tls_settings(self.cfg)
        if tls is not None and self.cfg.server.tls != "letsencrypt":
            for key in ("cert", "key"):
                if not self.host.exists(str(tls[key])):
                    raise DeployError(
                        f"server.tls.{key}: {tls[key]} does not exist on {self.host.name}; copy it there "
                        "(mode 0600 for the key) or use tls = \"letsencrypt\""
                    )

    def ensure_tls(self, facts: HostFacts, state: dict, live_slot: str) -> None:
        """Certificates before the HTTPS site: the user's files, or Let's Encrypt via certbot."""
        h, s = self.host, self.cfg.server
        if s.tls is None:
            return
        with self.run.step("tls", "certificate for HTTPS") as st:
            tls = R.tls_settings(self.cfg)
            assert tls is not None
            if s.tls != "letsencrypt":
                for key in ("cert", "key"):
                    if not h.exists(str(tls[key])):
                        raise DeployError(
                            f"server.tls.{key}: {tls[key]} does not exist on {h.name}; copy it there (mode 0600 for the key) "
                            "or use tls = \"letsencrypt\""
                        )
                st.detail = f"using {tls['cert']}"
                return
            h.ensure_dir(h_acme := self.L.p(R.ACME_ROOT), mode=0o755)
            if not h.which("certbot"):
                h.run(C.apt_install(["certbot"]), env=C.APT_ENV, timeout=1200)
                st.status = CHANGED
            hook = "/etc/letsencrypt/renewal-hooks/deploy/garrison-reload-nginx"
            h.ensure_dir(posixpath.dirname(hook), mode=0o755)
            if h.ensure_file(hook, b"#!/bin/sh\n# Garrison: serve renewed certificates.\nnginx -t -q && nginx -s reload\n", mode=0o755):
                st.status = CHANGED
            if h.exists(str(tls["cert"])):
                st.detail = f"{tls['cert']} present; certbot renews it (deploy hook reloads nginx)"
                return
            # Serve the HTTP-01 challenge from the plain site first, then ask for the certificate.
            self.ensure_site(facts, state, live_slot, site=R.nginx_site(self.cfg, self.L, ipv6=facts.ipv6, acme_bootstrap=True))
            res = h.run(C.certbot_certonly(s.names, h_acme, s.tls_email or ""), check=False, timeout=600)
            if not res.ok:
                raise DeployError(f"certbot could not obtain a certificate for {', '.join(s.names)}: "
                                  f"{(res.stderr.strip() or res.stdout.strip()).splitlines()[-1:]}; the site keeps serving HTTP")
            st.status, st.detail = CHANGED, f"obtained {tls['cert']}"

    def ensure_site(self, facts: HostFacts, state: dict, live_slot: str, site: str | None = None) -> None:
        h, L, s = self.host, self.L, self.cfg.server
        with self.run.step("nginx", f"nginx site {posixpath.basename(L.nginx_site)}") as st:
            notes = []
            if h.ensure_file(L.nginx_upstream, R.nginx_upstream(self.cfg, L, live_slot).encode()):
                notes.append(f"upstream → {live_slot}")
            site = site if site is not None else R.nginx_site(self.cfg, L, ipv6=facts.ipv6)
            default_link = "/etc/nginx/sites-enabled/default"
            disable_default = s.default and h.exists(default_link)
            current = h.read_file(L.nginx_site)
            if current != site.encode() or not h.exists(L.nginx_site_link) or disable_default:
                self.validate_site(site, disable_default)
                if current != site.encode():
                    h.write_file(L.nginx_site, site.encode())
                    notes.append("site written")
                if h.ensure_symlink(L.nginx_site, L.nginx_site_link):
                    notes.append("site enabled")
                if disable_default:
                    h.remove(default_link)
                    state["default_site_disabled"] = True
                    notes.append("distribution's default site disabled (server.default = true)")
            notes += self.ensure_catchall(facts, site, disable_default)
            if notes or not self.nginx_running(facts):
                try:
                    notes.append(self.nginx_apply(facts))
                except DeployError:
                    if current is not None:
                        h.write_file(L.nginx_site, current)
                    raise
                st.status = CHANGED
            st.detail = "; ".join(notes) if notes else "site unchanged, nginx running"

    def enabled_configs(self) -> dict[str, str]:
        h = self.host
        listing = h.run(("find", "/etc/nginx/sites-enabled", "/etc/nginx/conf.d", "-mindepth", "1", "-maxdepth", "1"),
                        check=False).stdout.split()
        return {p: (h.read_file(p) or b"").decode(errors="replace") for p in listing}

    def ensure_catchall(self, facts: HostFacts, site: str, disable_default: bool) -> list[str]:
        """Unknown hosts must never land on a random app: when no site is the default
        server on our port, Garrison's catch-all answers them with 444."""
        h, T, port = self.host, self.tool, self.cfg.server.port
        if self.cfg.server.default:
            # This app is the default server now: the catch-all would be a second one.
            return ["catch-all removed (this app is the default server)"] if h.remove(T.catchall_link(port)) else []
        configs = self.enabled_configs()
        configs[self.L.nginx_site_link] = site
        others = [p for p in F.default_server_files(configs, port) if p != T.catchall_link(port)]
        if disable_default:
            others = [p for p in others if not p.endswith("/default")]
        notes = []
        if others:
            if h.remove(T.catchall_link(port)):
                notes.append(f"catch-all removed ({others[0]} is the default server)")
            return notes
        if h.ensure_file(T.catchall_site(port), R.nginx_catchall(port, facts.ipv6).encode()):
            notes.append(f"catch-all site: unknown hosts on port {port} get 444")
        if h.ensure_symlink(T.catchall_site(port), T.catchall_link(port)):
            notes.append("catch-all enabled")
        return notes

    def ensure_firewall(self) -> None:
        h = self.host
        with self.run.step("firewall", "ufw rules for SSH, HTTP and HTTPS") as st:
            if not h.which("ufw"):
                st.status, st.detail = SKIPPED, "ufw is not installed"
                return
            active = F.parse_ufw_active(h.run(("ufw", "status"), check=False).stdout)
            want, opened = allow_ssh_and_web(h, self.cfg.server.port)
            state = "active" if active else "inactive (rules added; enable with `ufw enable`)"
            if opened:
                st.status, st.detail = CHANGED, f"opened {', '.join(opened)}; ufw {state}"
            else:
                st.detail = f"{', '.join(want)} already allowed; ufw {state}"

    def check_through_nginx(self) -> None:
        s = self.cfg.server
        with self.run.step("health", f"GET {self.cfg.app.health_path} through nginx") as st:
            target = f"https://127.0.0.1:{s.https_port}" if s.tls else f"127.0.0.1:{s.port}"
            result = self.probe(target)
            if not result.get("ok"):
                L = self.L
                ev = []
                for path in (L.nginx_error_log, L.error_log):
                    tail = (self.host.read_file(path) or b"").decode(errors="replace").strip().splitlines()[-10:]
                    if tail:
                        ev.append(f"last lines of {path}:")
                        ev += ["  " + t for t in tail]
                why = f"HTTP {result['status']}" if result.get("status") else result.get("error")
                raise DeployError(f"the app does not answer through nginx on port {s.port}: {why}\n" + "\n".join(ev))
            scheme, port = ("https", s.https_port) if s.tls else ("http", s.port)
            st.detail = f"HTTP {result['status']} from {scheme}://{s.names[0]}:{port}{self.cfg.app.health_path}"

    def prune(self, state: dict) -> None:
        h, L = self.host, self.L
        keep = set(state.get("releases", [])[-self.cfg.app.keep_releases:])
        if state.get("current"):
            keep.add(state["current"])
        keep |= {v["release"] for v in state.get("slots", {}).values()}
        gone = [r for r in state.get("releases", []) if r not in keep]
        for rid in gone:
            h.remove(L.release(rid))
        state["releases"] = [r for r in state.get("releases", []) if r in keep]
        # Venvs no release points at any more.
        used = set()
        for rid in state["releases"]:
            st = h.stat(posixpath.join(L.release(rid), ".venv"))
            if st and st.link_target:
                used.add(posixpath.basename(st.link_target))
        listing = h.run(("find", L.venvs, "-mindepth", "1", "-maxdepth", "1"), check=False).stdout.split()
        for path in listing:
            if posixpath.basename(path) not in used:
                h.remove(path)

    # ---- the whole thing ----------------------------------------------------
    def fingerprint(self, facts: HostFacts, rid: str, reqhash: str) -> str:
        """What a running slot is: the code, the venv, and every file that shapes the process."""
        L = self.L
        # The environment is part of what a slot is: changing it restarts the app (blue/green).
        env_text = json.dumps(self.app_env(), sort_keys=True)
        service_text = R.systemd_unit(self.cfg, L) if facts.systemd else R.supervisor_program(self.cfg, L, "blue")
        server_text = R.granian_script(self.cfg, L) if self.cfg.app.server == "granian" else R.gunicorn_conf(self.cfg, L)
        return hashlib.sha256("\0".join((rid, reqhash, server_text, service_text, env_text)).encode()).hexdigest()[:16]

    def ensure_serving(self, facts: HostFacts, state: dict, rid: str, reqhash: str, live: str | None, reason: str | None = None) -> str:
        """Make a slot running rid take the traffic: nothing, a restart of a dead slot, or a cut-over."""
        L = self.L
        fingerprint = self.fingerprint(facts, rid, reqhash)
        live_info = state.get("slots", {}).get(live or "", {})
        if live and live_info.get("fingerprint") == fingerprint:
            with self.run.step("slot", f"slot {live} serves {rid}") as st:
                if self.slot_running(facts, live):
                    st.detail = f"slot {live} runs {rid}, nothing to restart"
                else:
                    log_offset = self.log_size(L.error_log)
                    self.start_slot(facts, live, rid)
                    result = self.wait_healthy(facts, live, log_offset)
                    if not result.get("ok"):
                        raise DeployError(f"slot {live} was down and does not come back: {self.health_failure(result)}")
                    st.status, st.detail = CHANGED, f"slot {live} was not running: started it"
            return live
        if reason is None:
            if not live:
                reason = "first release"
            elif live_info.get("release") != rid:
                reason = "new code"
            else:
                reason = "new venv or gunicorn/service config"
        new = self.deploy_slot(facts, state, rid, fingerprint, reason, live)
        history = state.setdefault("history", [])
        if not history or history[-1] != rid:
            history.append(rid)
        del history[:-50]
        self.write_state(state)
        return new

    def __call__(
        self,
        rollback_to: str | None = None,
        rollback: bool = False,
        restart: str | None = None,
        locked: Callable[[], None] | None = None,
    ) -> None:
        """Deploy the source tree; or roll back; or, with `restart` (a reason), restart the
        current release blue/green. `locked` runs first under the deploy lock (env changes)."""
        facts = self.check_system()
        self.preflight()
        self.ensure_tool_venv(facts)
        self.ensure_user_and_folders(facts)
        holder = f"garrison (pid {os.getpid()} on {socket.gethostname()}) since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
        with self.host.lock(self.L.lock, holder):
            if locked is not None:
                locked()
            state = self.read_state()
            live = self.live_slot()
            if rollback:
                rid = self.rollback_target(state, rollback_to)
                reqhash = self.release_venv(rid)
                reason = f"rollback from {state.get('current')}"
            elif restart is not None and state.get("current"):
                rid = state["current"]
                reqhash = self.release_venv(rid)
                reason = restart
            else:
                rid = self.ensure_release(state)
                reqhash = self.ensure_venv(facts, rid)
                reason = None
            changed = self.ensure_config_files(facts, live or "blue")
            self.ensure_manager(facts, changed.get("supervisord", False))
            live = self.ensure_serving(facts, state, rid, reqhash, live, reason)
            self.ensure_tls(facts, state, live)
            self.ensure_site(facts, state, live)
            self.write_state(state)
            self.ensure_firewall()
            self.check_through_nginx()
            self.prune(state)
            self.write_state(state)

    def rollback_target(self, state: dict, wanted: str | None) -> str:
        releases = state.get("releases", [])
        current = state.get("current")
        if wanted:
            matches = [r for r in releases if r == wanted or r.startswith(wanted)]
            if len(matches) != 1:
                known = ", ".join(releases) or "none"
                raise DeployError(f"release {wanted!r} is {'ambiguous' if matches else 'not on this host'}; releases kept: {known}")
            return matches[0]
        # Most recently live first; releases that predate the history in creation order.
        for rid in [*reversed(state.get("history", [])), *reversed(releases)]:
            if rid != current and rid in releases:
                return rid
        raise DeployError(f"no previous release to roll back to (current: {current}); releases kept: {', '.join(releases) or 'none'}")

    def release_venv(self, rid: str) -> str:
        st = self.host.stat(posixpath.join(self.L.release(rid), ".venv"))
        if st is None or not st.link_target or not self.host.exists(posixpath.join(st.link_target, ".garrison-complete")):
            raise DeployError(f"release {rid} has no complete venv on this host; deploy it again instead")
        return posixpath.basename(st.link_target)


def up(project: Project, host: Executor, run: Run) -> Run:
    Up(project=project, host=host, run=run)()
    return run


def rollback(project: Project, host: Executor, run: Run, release: str | None = None) -> Run:
    Up(project=project, host=host, run=run)(rollback_to=release, rollback=True)
    return run


def sample_project_path() -> Path:
    from garrison.project import SAMPLE_APP_DIR

    return Path(os.fspath(SAMPLE_APP_DIR))
