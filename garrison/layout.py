"""Where everything of an app lives on a host: one place for every path.

Pure. `Layout.of(cfg)` gives the real paths; `Layout.of(cfg, root=tmp)` the
same tree under a prefix, which is how the validators and tests render files
that `nginx -t` and `systemd-analyze` can check without touching /etc.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from garrison.config import Config

SLOTS = ("blue", "green")


def other_slot(slot: str) -> str:
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


@dataclass(frozen=True)
class Layout:
    app: str
    root: str  # "/" on a real host
    base_: str
    socket_dir_: str | None
    bind: str | None

    @classmethod
    def of(cls, cfg: Config, root: str = "/") -> Layout:
        return cls(app=cfg.app.name, root=root, base_=cfg.base, socket_dir_=cfg.gunicorn.socket, bind=cfg.gunicorn.bind)

    def p(self, path: str) -> str:
        """`path` (absolute on the host) under this layout's root."""
        if self.root in ("", "/"):
            return path
        return posixpath.join(self.root, path.lstrip("/"))

    # The app's own tree.
    @property
    def base(self) -> str:
        return self.p(self.base_)

    @property
    def releases(self) -> str:
        return posixpath.join(self.base, "releases")

    def release(self, release_id: str) -> str:
        return posixpath.join(self.releases, release_id)

    @property
    def shared(self) -> str:
        return posixpath.join(self.base, "shared")

    @property
    def env_file(self) -> str:
        return posixpath.join(self.shared, ".env")

    @property
    def venvs(self) -> str:
        return posixpath.join(self.base, "venvs")

    def venv(self, req_hash: str) -> str:
        return posixpath.join(self.venvs, req_hash)

    @property
    def current(self) -> str:
        return posixpath.join(self.base, "current")

    @property
    def slots_dir(self) -> str:
        return posixpath.join(self.base, "slots")

    def slot(self, slot: str) -> str:
        return posixpath.join(self.slots_dir, slot)

    @property
    def run_dir(self) -> str:
        """Sockets and pidfiles: writable by the app user, traversable by nginx's group."""
        return self.p(self.socket_dir_) if self.socket_dir_ else posixpath.join(self.base, "run")

    def socket(self, slot: str) -> str:
        return posixpath.join(self.run_dir, f"{slot}.sock")

    def pidfile(self, slot: str) -> str:
        return posixpath.join(self.run_dir, f"{slot}.pid")

    def control_socket(self, slot: str) -> str:
        return posixpath.join(self.run_dir, f"{slot}.ctl")

    def bind_address(self, slot: str) -> str:
        """What gunicorn binds for `slot` (gunicorn syntax)."""
        if self.bind:
            host, _, port = self.bind.rpartition(":")
            return f"{host}:{int(port) + SLOTS.index(slot)}"
        return f"unix:{self.socket(slot)}"

    def upstream_server(self, slot: str) -> str:
        """The same address in nginx's `server` syntax."""
        if self.bind:
            return self.bind_address(slot)
        return f"unix:{self.socket(slot)}"

    @property
    def lock(self) -> str:
        return posixpath.join(self.base, ".garrison.lock")

    @property
    def state_file(self) -> str:
        return posixpath.join(self.base, "garrison-state.json")

    # Logs.
    @property
    def log_dir(self) -> str:
        return self.p(f"/var/log/{self.app}")

    @property
    def access_log(self) -> str:
        return posixpath.join(self.log_dir, "access.log")

    @property
    def error_log(self) -> str:
        return posixpath.join(self.log_dir, "error.log")

    @property
    def nginx_access_log(self) -> str:
        return posixpath.join(self.log_dir, "nginx-access.log")

    @property
    def nginx_error_log(self) -> str:
        return posixpath.join(self.log_dir, "nginx-error.log")

    def supervisor_log(self, slot: str) -> str:
        return posixpath.join(self.log_dir, f"supervisor-{slot}.log")

    # Files Garrison renders outside the app's tree.
    @property
    def etc_dir(self) -> str:
        return self.p(f"/etc/garrison/{self.app}")

    @property
    def gunicorn_conf(self) -> str:
        return posixpath.join(self.etc_dir, "gunicorn.conf.py")

    @property
    def granian_script(self) -> str:
        return posixpath.join(self.etc_dir, "granian.sh")

    @property
    def error_pages(self) -> str:
        return posixpath.join(self.etc_dir, "html")

    @property
    def nginx_site(self) -> str:
        return self.p(f"/etc/nginx/sites-available/{self.app}.conf")

    @property
    def nginx_site_link(self) -> str:
        return self.p(f"/etc/nginx/sites-enabled/{self.app}.conf")

    @property
    def nginx_upstream(self) -> str:
        return self.p(f"/etc/nginx/garrison/{self.app}.upstream.conf")

    @property
    def systemd_unit(self) -> str:
        return self.p(f"/etc/systemd/system/{self.app}@.service")

    def systemd_instance(self, slot: str) -> str:
        return f"{self.app}@{slot}.service"

    def supervisor_program_conf(self, slot: str) -> str:
        return self.p(f"/etc/garrison/supervisor.d/{self.app}-{slot}.conf")

    def supervisor_program(self, slot: str) -> str:
        return f"{self.app}-{slot}"

    @property
    def logrotate(self) -> str:
        return self.p(f"/etc/logrotate.d/garrison-{self.app}")

    # The load balancer's files for this app (on a host with role "lb").
    @property
    def lb_dir(self) -> str:
        return posixpath.join(self.base, "lb")

    @property
    def lb_state_file(self) -> str:
        """Per app host: the port of its live slot and whether it is marked down."""
        return posixpath.join(self.lb_dir, "lb-state.json")

    @property
    def lb_static(self) -> str:
        """The balancer's own copies of the release's static files, one folder per content hash."""
        return posixpath.join(self.lb_dir, "static")

    @property
    def lb_static_current(self) -> str:
        return posixpath.join(self.lb_static, "current")

    @property
    def lb_upstream(self) -> str:
        return self.p(f"/etc/nginx/garrison/{self.app}-lb-upstream.conf")

    @property
    def lb_site(self) -> str:
        return self.p(f"/etc/nginx/sites-available/garrison-lb-{self.app}")

    @property
    def lb_site_link(self) -> str:
        return self.p(f"/etc/nginx/sites-enabled/garrison-lb-{self.app}")

    @property
    def lb_access_log(self) -> str:
        return self.p(f"/var/log/nginx/garrison-lb-{self.app}.access.log")

    @property
    def lb_error_log(self) -> str:
        return self.p(f"/var/log/nginx/garrison-lb-{self.app}.error.log")
    # Worker processes ([processes.NAME]) and scheduled jobs ([jobs.NAME]).
    def process_script(self, name: str) -> str:
        return posixpath.join(self.etc_dir, f"process-{name}.sh")

    def process_unit(self, name: str) -> str:
        return self.p(f"/etc/systemd/system/{self.app}-{name}@.service")

    def process_instance(self, name: str, index: int) -> str:
        return f"{self.app}-{name}@{index}.service"

    def process_program(self, name: str) -> str:
        """supervisord's group (and program) name; its processes are <group>-0, <group>-1, ..."""
        return f"{self.app}-{name}"

    def process_program_conf(self, name: str) -> str:
        return self.p(f"/etc/garrison/supervisor.d/{self.app}-{name}.conf")

    def process_log(self, name: str) -> str:
        return posixpath.join(self.log_dir, f"process-{name}.log")

    def process_starts(self, name: str, index: int | str) -> str:
        """One line per start of an instance, written by its launcher: restarts = lines - 1."""
        return posixpath.join(self.run_dir, f"process-{name}-{index}.starts")

    @property
    def jobs_dir(self) -> str:
        """The app user's: each job's lock and the record of its last run."""
        return posixpath.join(self.base, "jobs")

    def job_script(self, name: str) -> str:
        return posixpath.join(self.etc_dir, f"job-{name}.sh")

    def job_lock(self, name: str) -> str:
        return posixpath.join(self.jobs_dir, f"{name}.lock")

    def job_started(self, name: str) -> str:
        return posixpath.join(self.jobs_dir, f"{name}.started")

    def job_finished(self, name: str) -> str:
        return posixpath.join(self.jobs_dir, f"{name}.finished")

    def job_log(self, name: str) -> str:
        return posixpath.join(self.log_dir, f"job-{name}.log")

    def job_unit(self, name: str) -> str:
        return self.p(f"/etc/systemd/system/{self.job_service(name)}")

    def job_timer(self, name: str) -> str:
        return self.p(f"/etc/systemd/system/{self.app}-job-{name}.timer")

    def job_service(self, name: str) -> str:
        return f"{self.app}-job-{name}.service"

    def job_timer_unit(self, name: str) -> str:
        return f"{self.app}-job-{name}.timer"

    @property
    def cron_file(self) -> str:
        """Where PID 1 is not systemd: the app's jobs as cron lines (no dots: cron skips such names)."""
        return self.p(f"/etc/cron.d/garrison-{self.app}")


@dataclass(frozen=True)
class ToolLayout:
    """Garrison's own files on a host, shared by all its apps."""

    root: str = "/"

    def p(self, path: str) -> str:
        return path if self.root in ("", "/") else posixpath.join(self.root, path.lstrip("/"))

    @property
    def venv(self) -> str:
        return self.p("/opt/garrison/venv")

    def catchall_site(self, port: int) -> str:
        return self.p(f"/etc/nginx/sites-available/garrison-catchall-{port}.conf")

    def catchall_link(self, port: int) -> str:
        return self.p(f"/etc/nginx/sites-enabled/garrison-catchall-{port}.conf")

    @property
    def exec_helper(self) -> str:
        return self.p("/opt/garrison/bin/garrison-exec")

    @property
    def supervisord_conf(self) -> str:
        return self.p("/etc/garrison/supervisord.conf")

    @property
    def supervisor_include_dir(self) -> str:
        return self.p("/etc/garrison/supervisor.d")

    @property
    def run_dir(self) -> str:
        return self.p("/run/garrison")

    @property
    def supervisor_socket(self) -> str:
        return posixpath.join(self.run_dir, "supervisor.sock")

    @property
    def supervisord_pid(self) -> str:
        return posixpath.join(self.run_dir, "supervisord.pid")

    @property
    def log_dir(self) -> str:
        return self.p("/var/log/garrison")

    @property
    def boot_entry(self) -> str:
        return self.p("/etc/cron.d/garrison")
