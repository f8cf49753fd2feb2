"""Model → file text: every config file Garrison puts on a host.

Pure functions of (Config, Layout) with Jinja2 StrictUndefined, so a template
that names a missing value fails loudly instead of rendering an empty string.
`render_all` maps each file's path on the host to its text; `garrison render`
and the host workflows both use it. `render_lb` does the same for the files of
a load-balancer host (role "lb"): its site and the upstream of the app hosts.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from functools import lru_cache

import jinja2

from garrison import commands as C
from garrison.config import Config
from garrison.config.model import cron_schedule
from garrison.layout import SLOTS, Layout, ToolLayout


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("garrison.render", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["pyrepr"] = repr
    env.filters["shquote"] = shlex.quote
    return env


def _render(template: str, cfg: Config | None, layout: Layout | None, **extra: object) -> str:
    ctx: dict[str, object] = dict(extra)
    if cfg is not None:
        ctx.update(app=cfg.app.name, user=cfg.user, a=cfg.app, s=cfg.server, g=cfg.gunicorn, n=cfg.nginx, cfg=cfg)
    if layout is not None:
        ctx["L"] = layout
    return _env().get_template(template).render(ctx)


ACME_ROOT = "/var/lib/garrison/acme"


def letsencrypt_dir(cfg: Config) -> str:
    return f"/etc/letsencrypt/live/{cfg.server.names[0]}"


def tls_settings(cfg: Config) -> dict[str, object] | None:
    """What the HTTPS server block needs, or None for HTTP only."""
    tls = cfg.server.tls
    if tls is None:
        return None
    if tls == "letsencrypt":
        live = letsencrypt_dir(cfg)
        return {"cert": f"{live}/fullchain.pem", "key": f"{live}/privkey.pem", "chain": f"{live}/chain.pem", "stapling": True}
    return {"cert": tls.cert, "key": tls.key, "chain": "", "stapling": False}


def nginx_site(cfg: Config, layout: Layout, *, ipv6: bool = True, acme_bootstrap: bool = False) -> str:
    """The app's site. With `acme_bootstrap`, the HTTP-only site that serves the first
    Let's Encrypt challenge before any certificate exists."""
    tls = None if acme_bootstrap else tls_settings(cfg)
    return _render("nginx_site.conf.j2", cfg, layout, ipv6=ipv6, tls=tls, acme_bootstrap=acme_bootstrap,
                   acme_root=layout.p(ACME_ROOT))


def nginx_upstream(cfg: Config, layout: Layout, slot: str) -> str:
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}")
    return _render("nginx_upstream.conf.j2", cfg, layout, slot=slot)


def gunicorn_conf(cfg: Config, layout: Layout) -> str:
    return _render("gunicorn.conf.py.j2", cfg, layout)


def granian_script(cfg: Config, layout: Layout) -> str:
    """The launcher of granian for both slots (app.server = "granian")."""
    entry = cfg.app.entry
    factory = entry.endswith(")")
    target = entry[: entry.index("(")] if factory else entry
    interface = "asgi" if cfg.gunicorn.worker_class == "uvicorn" else "wsgi"
    return _render("granian.sh.j2", cfg, layout, factory=factory, target=target, interface=interface)


def systemd_unit(cfg: Config, layout: Layout) -> str:
    return _render("systemd.service.j2", cfg, layout)


def supervisor_program(cfg: Config, layout: Layout, slot: str, tool: ToolLayout | None = None) -> str:
    """One slot's program. Secrets stay in shared/.env: garrison-exec reads it as root."""
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}")
    return _render("supervisor_program.conf.j2", cfg, layout, slot=slot, T=tool or ToolLayout(layout.root))


def supervisord_conf(tool: ToolLayout) -> str:
    return _render("supervisord.conf.j2", None, None, T=tool)


def logrotate(cfg: Config, layout: Layout) -> str:
    return _render("logrotate.j2", cfg, layout)


def error_page(cfg: Config) -> str:
    return _render("error_page.html.j2", cfg, None)


def upstart_job(cfg: Config, layout: Layout) -> str:
    return _render("upstart.conf.j2", cfg, layout)


# A load balancer's upstream: an app host that fails twice within 5 s is left out for 5 s
# (nginx's passive health check); the next request goes to another host.
LB_MAX_FAILS = 2
LB_FAIL_TIMEOUT = "5s"


@dataclass(frozen=True)
class LbServer:
    """One app host in a load balancer's upstream: its private address and live port."""

    name: str
    address: str  # "ip:port" of the slot that serves on that host
    down: bool = False  # out of the rotation (a rolling deploy is on it)


def lb_upstream(cfg: Config, servers: list[LbServer]) -> str:
    """The app hosts the load balancer sends requests to (included by its site)."""
    return _render("lb_upstream.conf.j2", cfg, None, servers=servers, max_fails=LB_MAX_FAILS,
                   fail_timeout=LB_FAIL_TIMEOUT)


def lb_site(cfg: Config, layout: Layout, *, ipv6: bool = True) -> str:
    """The load balancer's site: the app's names and port, static files from its own copy
    of the release, everything else to the upstream of the app hosts."""
    statics = [{"url": st.url, "dir": posixpath.join(layout.lb_static_current, st.path.rstrip("/"))}
               for st in cfg.app.static]
    return _render("lb_site.conf.j2", cfg, layout, ipv6=ipv6, statics=statics)


def render_lb(cfg: Config, layout: Layout, servers: list[LbServer], *, ipv6: bool = True) -> dict[str, str]:
    """Every file of the app on a load balancer, keyed by its absolute path under `layout`."""
    return {layout.lb_site: lb_site(cfg, layout, ipv6=ipv6), layout.lb_upstream: lb_upstream(cfg, servers)}
# -- worker processes and scheduled jobs -------------------------------------------------

def process_script(cfg: Config, layout: Layout, name: str) -> str:
    """The launcher both service managers start (as the app user, with the env file's variables)."""
    return _render("process.sh.j2", cfg, layout, name=name, p=cfg.processes[name])


def process_unit(cfg: Config, layout: Layout, name: str) -> str:
    """systemd's template unit of a process: <app>-<name>@<copy>.service."""
    return _render("systemd_process.service.j2", cfg, layout, name=name, p=cfg.processes[name])


def process_program(cfg: Config, layout: Layout, name: str, tool: ToolLayout | None = None) -> str:
    """supervisord's program of a process (numprocs = count)."""
    return _render("supervisor_process.conf.j2", cfg, layout, name=name, p=cfg.processes[name],
                   T=tool or ToolLayout(layout.root))


def job_script(cfg: Config, layout: Layout, name: str) -> str:
    return _render("job.sh.j2", cfg, layout, name=name, j=cfg.jobs[name])


def job_unit(cfg: Config, layout: Layout, name: str) -> str:
    return _render("systemd_job.service.j2", cfg, layout, name=name, j=cfg.jobs[name])


def job_timer(cfg: Config, layout: Layout, name: str) -> str:
    return _render("systemd_job.timer.j2", cfg, layout, name=name, j=cfg.jobs[name],
                   calendar=on_calendar(cfg.jobs[name].schedule))


def cron_jobs(cfg: Config, layout: Layout, names: list[str], tool: ToolLayout | None = None) -> str:
    """/etc/cron.d/garrison-<app>: one line per job (where PID 1 is not systemd)."""
    tool = tool or ToolLayout(layout.root)
    jobs = [(n, cfg.jobs[n], " ".join(C.job_run(tool, layout, cfg.user, n))) for n in names]
    return _render("cron_jobs.j2", cfg, layout, jobs=jobs)


WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _calendar_values(values: frozenset[int], low: int, high: int, fmt: str = "{:02d}") -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return ",".join(fmt.format(v) for v in sorted(values))


def on_calendar(schedule: str) -> list[str]:
    """A cron schedule as systemd OnCalendar= values, each field spelled out as a list.

    cron runs a job when the day of month OR the day of week matches if both are
    restricted; systemd's fields all have to match, so that case takes two values."""
    minute, hour, dom, month, dow = cron_schedule(schedule)
    m = _calendar_values(minute, 0, 59)
    h = _calendar_values(hour, 0, 23)
    d = _calendar_values(dom, 1, 31)
    mo = _calendar_values(month, 1, 12)
    w = "" if dow == frozenset(range(7)) else ",".join(WEEKDAYS[v] for v in sorted(dow)) + " "
    if d != "*" and w:
        return [f"*-{mo}-{d} {h}:{m}:00", f"{w}*-{mo}-* {h}:{m}:00"]
    return [f"{w}*-{mo}-{d} {h}:{m}:00"]


def render_all(
    cfg: Config,
    layout: Layout,
    *,
    live_slot: str = "blue",
    ipv6: bool = True,
    tool: ToolLayout | None = None,
) -> dict[str, str]:
    """Every file of the app, keyed by its absolute path under `layout`."""
    tool = tool or ToolLayout(layout.root)
    files = {
        layout.nginx_site: nginx_site(cfg, layout, ipv6=ipv6),
        layout.nginx_upstream: nginx_upstream(cfg, layout, live_slot),
        f"{layout.error_pages}/garrison-50x.html": error_page(cfg),
        layout.gunicorn_conf: gunicorn_conf(cfg, layout),
        layout.systemd_unit: systemd_unit(cfg, layout),
        layout.supervisor_program_conf(live_slot): supervisor_program(cfg, layout, live_slot),
        tool.supervisord_conf: supervisord_conf(tool),
        layout.logrotate: logrotate(cfg, layout),
        layout.p(f"/etc/init/{cfg.app.name}.conf"): upstart_job(cfg, layout),
    }
    if cfg.app.server == "granian":
        files[layout.granian_script] = granian_script(cfg, layout)
    for name in cfg.processes:
        files[layout.process_script(name)] = process_script(cfg, layout, name)
        files[layout.process_unit(name)] = process_unit(cfg, layout, name)
        files[layout.process_program_conf(name)] = process_program(cfg, layout, name, tool)
    for name in cfg.jobs:
        files[layout.job_script(name)] = job_script(cfg, layout, name)
        files[layout.job_unit(name)] = job_unit(cfg, layout, name)
        files[layout.job_timer(name)] = job_timer(cfg, layout, name)
    if cfg.jobs:
        files[layout.cron_file] = cron_jobs(cfg, layout, list(cfg.jobs), tool)
    return files


def nginx_check_main(main_conf: str, enabled_dir: str, check_dir: str) -> str | None:
    """nginx.conf with its sites-enabled include pointed at `check_dir`.

    Lets `nginx -t` judge a new site file BEFORE it replaces the live one:
    check_dir holds the other enabled sites plus the candidate. None when the
    main config does not include `enabled_dir` (then the caller falls back to
    swap, test, and restore on failure).
    """
    needle = enabled_dir.rstrip("/") + "/"
    if needle not in main_conf:
        return None
    return main_conf.replace(needle, check_dir.rstrip("/") + "/")


def nginx_catchall(port: int, ipv6: bool) -> str:
    """The site that answers unknown hosts when no site is the default: no answer at all (444)."""
    listen6 = f"    listen [::]:{port} default_server;\n" if ipv6 else ""
    return (
        "# Garrison: a request for a name no site serves gets no answer (444), never a random app.\n"
        "server {\n"
        f"    listen {port} default_server;\n{listen6}"
        "    server_name _;\n"
        "    access_log off;\n"
        "    return 444;\n"
        "}\n"
    )
