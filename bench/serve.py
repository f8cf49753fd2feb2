#!/usr/bin/env python3
"""Serving speed: Garrison's stack against the tutorial's, measured side by side.

    python bench/serve.py [--rounds 3] [--duration 10] [--connections 50]
                          [--garrison-set gunicorn.max_requests=0 ...]
                          [--candidate 'label:gunicorn.workers=2,gunicorn.max_requests=0' ...]

One run, on this machine, everything on loopback, each stack under its own
nginx master (`nginx -p <prefix> -c <conf>`, Debian's stock nginx.conf with its
paths moved into the prefix) on its own port:

* tutorial  -- seed/flask-on-a-vps.txt verbatim: its nginx site (upstream
               127.0.0.1:PORT, no keepalive; `location /static { alias … }`)
               and its gunicorn.py (2 x cpu + 1 gevent workers, max_requests
               1000, access and error logs in the project folder);
* garrison  -- the files Garrison itself renders for the sample app
               (garrison.render.nginx_site / nginx_upstream / gunicorn_conf over
               Layout.of(cfg, root=<prefix>)), run the way its supervisord
               program runs them; `--garrison-set` overrides settings;
* granian   -- the same rendered Garrison site, its upstream socket served by
               `granian --interface wsgi --workers 2 main:app`;
* candidates -- more Garrison variants (`--candidate`), dynamic page only.

wrk drives the same bounded load at each (`wrk -t2 -c50 -d10s --latency`),
interleaved (the order flips every round), on the dynamic page `/` and on the
static image; Flask's own static route is measured on the tutorial's gunicorn
port. After each dynamic run the app server's memory (master + workers) is
read from /proc. The result goes to stdout and to docs/benchmarks.md between
`<!-- serve:begin -->` and `<!-- serve:end -->`.

This machine is shared, so every run also records the share of the CPU that
processes not started here used meanwhile ("others' CPU"); before each run the
benchmark waits for that to drop and repeats a disturbed run, within a time
budget (--quiet-threshold, --quiet-budget). It also records the CPU time each
stack (app server + nginx) spent per request: a cost that other work on the
machine barely changes, unlike req/s and p99.

Needs root (nginx's workers run as www-data), nginx and wrk. The app servers'
venv is built once from /usr/bin/python3 under /tmp/garrison-bench and reused.
Everything started is stopped by PID on exit, on error and on SIGINT/SIGTERM/SIGHUP.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

try:
    from garrison import render as R
    from garrison.config import parse_config
    from garrison.layout import Layout
    from garrison.project import SAMPLE_APP_DIR
except ImportError as exc:  # an interpreter without Garrison's dependencies
    project_python = REPO / ".venv/bin/python"
    if project_python.exists() and os.environ.get("GARRISON_BENCH_REEXEC") != "1":
        os.environ["GARRISON_BENCH_REEXEC"] = "1"
        os.execv(str(project_python), [str(project_python), __file__, *sys.argv[1:]])
    raise SystemExit(f"bench/serve.py needs Garrison's dependencies (jinja2, pydantic): {exc}; run ./up or use .venv/bin/python") from None

import _stack as S  # noqa: E402

DOCS = REPO / "docs/benchmarks.md"
BEGIN, END = "<!-- serve:begin -->", "<!-- serve:end -->"
PAGE, IMAGE, HEALTH = "/", "/static/caesar.png", "/healthz"

# Ports of this benchmark (loopback only); checked free before anything starts.
TUTORIAL_NGINX, GARRISON_NGINX, GRANIAN_NGINX, CANDIDATE_NGINX = 18081, 18082, 18083, 18090
TUTORIAL_APP = 19000  # the tutorial's 9000, moved out of the way of anything else on the machine

# ---------------------------------------------------------------- the tutorial, verbatim
# From seed/flask-on-a-vps.txt. Only the bind port is changed (9000 -> TUTORIAL_APP).
TUTORIAL_GUNICORN = '''"""gunicorn WSGI server configuration."""
from multiprocessing import cpu_count
from os import environ

def max_workers():
    return cpu_count() * 2 + 1

max_requests = 1000
worker_class = 'gevent'
workers = max_workers()

name = 'ave_caesar'
bind = '127.0.0.1:9000'
pidfile = 'gunicorn_from_upstart.pid'

accesslog = 'gunicorn_access.log'
errorlog = 'gunicorn_error.log'
'''

# From seed/flask-on-a-vps.txt. Changed: the two `listen` lines become one
# loopback listen on the benchmark's port, the upstream port, the alias path.
TUTORIAL_SITE = """upstream app_server {
    server 127.0.0.1:9000 fail_timeout=0;
}

server {
    listen 80 default_server;
    listen [::]:80 default_server ipv6only=on;

    client_max_body_size 4G;
    server_name _;

    keepalive_timeout 5;

    # your Flask project's static files - amend as required
    location /static {
        alias /home/demo/projects/ave_caesar/static;
    }

    location / {
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Host $http_host;
        proxy_redirect off;
        proxy_pass http://app_server;
    }
}
"""


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"expected exactly one {old!r} in the file to adapt")
    return text.replace(old, new)


# ---------------------------------------------------------------- stacks
@dataclass
class Stack:
    key: str
    title: str
    port: int  # its nginx
    app: Any = None  # Popen of the app server's master
    nginx: Any = None  # Popen of its nginx master
    error_log: Path | None = None  # gunicorn's error log: worker boots are counted there
    notes: list[str] = field(default_factory=list)
    dynamic_only: bool = False


def _mkdir(path: Path | str, mode: int = 0o755) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path


def _app_env(venv: Path, home: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "HOME": home,
        "LANG": "C.UTF-8",
        **extra,
    }


def setup_tutorial(run: Path, venv: Path, procs: S.Procs) -> Stack:
    prefix = _mkdir(run / "tutorial")
    project = prefix / "home/demo/projects/ave_caesar"
    _mkdir(project.parent)
    for d in (prefix / "home", prefix / "home/demo"):
        os.chmod(d, 0o755)
    shutil.copytree(SAMPLE_APP_DIR, project, ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(project, 0o755)
    conf = _mkdir(prefix / "etc/gunicorn.d") / "gunicorn.py"
    conf.write_text(_replace_once(TUTORIAL_GUNICORN, "127.0.0.1:9000", f"127.0.0.1:{TUTORIAL_APP}"))
    site_text = TUTORIAL_SITE
    site_text = _replace_once(
        site_text,
        "    listen 80 default_server;\n    listen [::]:80 default_server ipv6only=on;\n",
        f"    listen 127.0.0.1:{TUTORIAL_NGINX} default_server;\n",
    )
    site_text = _replace_once(site_text, "127.0.0.1:9000", f"127.0.0.1:{TUTORIAL_APP}")
    site_text = _replace_once(site_text, "/home/demo/projects/ave_caesar/static", f"{project}/static")
    site = _mkdir(prefix / "etc/nginx/sites-available") / "flask"
    site.write_text(site_text)

    # The upstart job: activate the venv, cd to the project, gunicorn --config … main:app.
    argv = [str(venv / "bin/gunicorn"), "--config", str(conf), "main:app"]
    app = procs.start(
        "gunicorn tutorial", argv, cwd=str(project), env=_app_env(venv, str(prefix / "home/demo")),
        logfile=str(prefix / "stdout.log"),
    )
    S.wait_http(TUTORIAL_APP, HEALTH, 60, app)
    nginx = S.start_nginx(procs, "tutorial", _mkdir(prefix / "nginx"), site)
    S.wait_http(TUTORIAL_NGINX, HEALTH, 30, nginx)
    return Stack(
        "tutorial",
        "tutorial",
        TUTORIAL_NGINX,
        app=app,
        nginx=nginx,
        error_log=project / "gunicorn_error.log",
        notes=[
            f"`cd {project.relative_to(run)} && gunicorn --config etc/gunicorn.d/gunicorn.py main:app` "
            "(the tutorial's gunicorn.py verbatim: gevent, `cpu_count()*2+1` workers, max_requests 1000, "
            f"access + error log files; bind 127.0.0.1:{TUTORIAL_APP} instead of :9000)",
            "nginx: the tutorial's site verbatim (upstream `127.0.0.1:PORT fail_timeout=0`, no keepalive, "
            "HTTP/1.0 to gunicorn; `location /static { alias …; }`), listen moved to loopback",
        ],
    )


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def parse_sets(items: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", key.strip()):
            raise SystemExit(f"expected table.key=value (e.g. gunicorn.workers=2), got {item!r}")
        out.append((key.strip(), _parse_value(raw.strip())))
    return out


def garrison_config(port: int, sets: list[tuple[str, Any]]):
    data = tomllib.loads((SAMPLE_APP_DIR / "garrison.toml").read_text())
    data.setdefault("server", {})["port"] = port
    for key, value in sets:
        *tables, last = key.split(".")
        node = data
        for t in tables:
            node = node.setdefault(t, {})
        node[last] = value
    return parse_config(data, source="garrison.toml (sample app + overrides)")


def setup_garrison(
    run: Path, venv: Path, procs: S.Procs, key: str, title: str, port: int, sets: list[tuple[str, Any]],
    server: str = "gunicorn",
) -> Stack:
    """The sample app deployed from Garrison's own rendered files under a prefix."""
    cfg = garrison_config(port, sets)
    root = _mkdir(run / re.sub(r"[^A-Za-z0-9_.-]", "_", key))
    L = Layout.of(cfg, root=str(root))
    for d in (L.base, L.releases, L.venvs, L.slots_dir, L.shared, L.run_dir, L.log_dir, L.etc_dir, L.error_pages,
              os.path.dirname(L.nginx_upstream), os.path.dirname(L.nginx_site)):
        _mkdir(d)
    # A release, its venv link, the live slot and `current`, as a deploy leaves them.
    release = Path(L.release("bench"))
    shutil.copytree(SAMPLE_APP_DIR, release, ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(release, 0o755)
    (release / ".venv").symlink_to(venv)
    Path(L.slot("blue")).symlink_to(os.path.relpath(release, L.slots_dir))
    Path(L.current).symlink_to(os.path.relpath(release, L.base))

    site_text = R.nginx_site(cfg, L, ipv6=False)
    # The one change: listen on loopback only (`listen 127.0.0.1:PORT` instead of `listen PORT`).
    site_text = _replace_once(site_text, f"listen {port}", f"listen 127.0.0.1:{port}")
    Path(L.nginx_site).write_text(site_text)
    Path(L.nginx_upstream).write_text(R.nginx_upstream(cfg, L, "blue"))
    Path(L.error_pages, "garrison-50x.html").write_text(R.error_page(cfg))
    Path(L.gunicorn_conf).write_text(R.gunicorn_conf(cfg, L))

    slot = L.slot("blue")
    env = _app_env(venv, L.base, GARRISON_SLOT="blue", PYTHONUNBUFFERED="1")
    g, n = cfg.gunicorn, cfg.nginx
    if server == "gunicorn":
        # What the rendered supervisord program runs (umask 007, HOME, GARRISON_SLOT).
        argv = [f"{slot}/.venv/bin/gunicorn", "--config", L.gunicorn_conf]
        app = procs.start(f"gunicorn {key}", argv, cwd=slot, env=env, logfile=L.supervisor_log("blue"), umask=0o007)
        auto = "2*cpu+1" if g.worker_class == "sync" else "max(2, cpu)"
        workers = auto if g.workers == "auto" else str(g.workers)
        recycle = f"max_requests {g.max_requests} (+jitter {g.jitter})" if g.max_requests else "max_requests 0 (no recycling)"
        what = (
            f"gunicorn with Garrison's rendered gunicorn.conf.py: {g.worker_class}, {workers} workers"
            + (f" x {g.threads} threads" if g.worker_class == "gthread" else "")
            + f", {recycle}, keepalive {g.keepalive}s, access log {'on' if g.access_log else 'off'}, unix socket"
        )
        error_log: Path | None = Path(L.error_log)
    else:
        argv = [f"{slot}/.venv/bin/granian", "--interface", "wsgi", "--workers", "2",
                "--uds", L.socket("blue"), "--uds-permissions", "0o777", cfg.app.entry]
        app = procs.start(f"granian {key}", argv, cwd=slot, env=env, logfile=L.supervisor_log("blue"), umask=0o007)
        what = (
            f"`granian --interface wsgi --workers 2 --uds {os.path.relpath(L.socket('blue'), run)} "
            f"--uds-permissions 0o777 {cfg.app.entry}` (granian's defaults otherwise: no access log) "
            "on the socket Garrison's rendered upstream names"
        )
        error_log = None
    nginx_prefix = _mkdir(root / "nginx")
    nginx = S.start_nginx(procs, key, nginx_prefix, Path(L.nginx_site))
    try:
        S.wait_http(port, cfg.app.health_path, 60, app)
    except RuntimeError as exc:
        tail = Path(L.supervisor_log("blue")).read_text(errors="replace")[-2000:] if Path(L.supervisor_log("blue")).exists() else ""
        raise RuntimeError(f"{title}: {exc}\n{tail}") from None
    if nginx.poll() is not None:
        raise RuntimeError(f"nginx of {title} exited")
    ka = (
        f"upstream keepalive {n.upstream_keepalive} (HTTP/1.1, `Connection \"\"`)"
        if n.upstream_keepalive else "no upstream keepalive (HTTP/1.1, `Connection \"\"`)"
    )
    nginx_note = f"nginx: Garrison's rendered site, {ka}, gzip {'on' if n.gzip else 'off'}, static via alias + expires {n.static_expires}"
    overrides = ", ".join(f"`{k} = {_toml(v)}`" for k, v in sets) or "none (Garrison's defaults)"
    return Stack(key, title, port, app=app, nginx=nginx, error_log=error_log,
                 notes=[what, nginx_note, f"overrides of garrison.toml: {overrides}"])


# ---------------------------------------------------------------- measuring
@dataclass
class Sample:
    rps: float
    p50: float
    p99: float
    errors: int
    rss: float | None = None
    pss: float | None = None
    procs: int | None = None
    boots: int | None = None
    foreign: float = 0.0
    cpu_ms: float = 0.0  # CPU time of the stack (app server + nginx) per request


class Quiet:
    """Waits for the machine to be quiet before a run, within a total budget of seconds."""

    def __init__(self, meter: S.CpuMeter, threshold: float, budget: float) -> None:
        self.meter, self.threshold, self.budget = meter, threshold, budget
        self.spent = 0.0
        self.repeats = 0

    def wait(self) -> None:
        if self.budget - self.spent < 1:
            return
        waited, share = self.meter.wait_quiet(self.threshold, min(20.0, self.budget - self.spent))
        self.spent += waited
        if waited >= 2:
            S.log(f"waited {waited:.0f} s for other work to calm down (others at {share:.0%} of the CPU)")


def stack_jiffies(stack: Stack) -> int:
    return sum(S._tree_jiffies(p.pid) for p in (stack.app, stack.nginx) if p is not None)


def measure(procs: S.Procs, stack: Stack, url: str, args: argparse.Namespace, memory: bool, quiet: Quiet) -> Sample:
    for attempt in (1, 2, 3):
        quiet.wait()
        boots0 = S.count_lines(stack.error_log, "Booting worker") if stack.error_log else None
        a = quiet.meter.snapshot()
        j0 = stack_jiffies(stack)
        t0 = time.monotonic()
        res = S.run_wrk(procs, url, args.duration, args.connections, args.threads)
        j1 = stack_jiffies(stack)
        foreign = quiet.meter.foreign(a, quiet.meter.snapshot())
        # A run that other work on the machine disturbed is repeated once, while the budget lasts.
        if attempt < 3 and foreign > args.quiet_threshold * 2 and quiet.spent + args.duration < quiet.budget:
            quiet.spent += time.monotonic() - t0
            quiet.repeats += 1
            S.log(f"{stack.title}: others used {foreign:.0%} of the CPU during the run; repeating it")
            continue
        break
    cpu_ms = (j1 - j0) * 1000 / os.sysconf("SC_CLK_TCK") / max(res.requests, 1)
    sample = Sample(res.rps, res.p50_ms, res.p99_ms, res.errors, foreign=foreign, cpu_ms=cpu_ms)
    if memory and stack.app is not None:
        sample.rss, sample.pss, sample.procs = S.tree_memory(stack.app.pid)
    if boots0 is not None:
        sample.boots = S.count_lines(stack.error_log, "Booting worker") - boots0
    if stack.app is not None and stack.app.poll() is not None:
        raise RuntimeError(f"the app server of {stack.title} died during the run")
    S.log(
        f"{stack.title:<28} {url:<45} {res.rps:8.0f} req/s  p50 {res.p50_ms:6.1f} ms  p99 {res.p99_ms:7.1f} ms"
        f"  errors {res.errors}" + (f"  RSS {sample.rss:.0f} MB" if sample.rss else "")
        + (f"  boots {sample.boots}" if sample.boots is not None else "") + f"  cpu {cpu_ms:.3f} ms/req  others {foreign:.0%}"
    )
    return sample


# ---------------------------------------------------------------- report
def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float], fmt: str) -> str:
    if not xs:
        return "–"
    m = format(med(xs), fmt)
    if len(xs) == 1:
        return m
    return f"{m} ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def machine_facts() -> dict[str, str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = S._kb("/proc/meminfo", "MemTotal") / 1024 / 1024
    nginx_v = subprocess.run([S.NGINX, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    return {"cores": str(os.cpu_count()), "cpu": model, "mem": f"{mem:.0f} GiB", "kernel": platform.release(), "nginx": nginx_v}


def report(
    stacks: dict[str, Stack], results: dict[tuple[str, str], list[Sample]], args: argparse.Namespace,
    versions: dict[str, str], facts: dict[str, str], loads: tuple[str, str], started: datetime.datetime,
    elapsed: float, repeats: int, waited: float,
) -> str:
    rows = []
    labels = {"dyn": "`/` (Flask page)", "static": f"`{IMAGE}` via nginx", "flask-static": f"`{IMAGE}` via Flask (gunicorn port, no nginx)"}
    for (key, kind), samples in results.items():
        st = stacks[key]
        rss = [s.rss for s in samples if s.rss is not None]
        pss = [s.pss for s in samples if s.pss is not None]
        boots = [float(s.boots) for s in samples if s.boots is not None]
        nproc = samples[0].procs
        mem = f"{spread(rss, '.0f')} / {spread(pss, '.0f')} ({nproc} proc)" if rss else ""
        others = spread([s.foreign * 100 for s in samples], ".0f")
        cpu = spread([s.cpu_ms for s in samples], ".3f")
        rows.append(
            f"| {st.title} | {labels[kind]} | {spread([s.rps for s in samples], '.0f')} | "
            f"{spread([s.p50 for s in samples], '.1f')} | {spread([s.p99 for s in samples], '.1f')} | "
            f"{spread([float(s.errors) for s in samples], '.0f')} | {mem} | {spread(boots, '.0f') if boots else ''} | {cpu} | {others} |"
        )

    def paired(a: tuple[str, str], b: tuple[str, str], attr: str = "rps") -> list[float]:
        if a not in results or b not in results:
            return []
        return [getattr(x, attr) / getattr(y, attr) for x, y in zip(results[a], results[b], strict=False) if getattr(y, attr)]

    T, G = ("tutorial", "dyn"), ("garrison", "dyn")
    ratio_rows = []

    def uneven(a: tuple[str, str], b: tuple[str, str]) -> str:
        """A warning when other work disturbed the two sides of a ratio unequally."""
        n = sum(1 for x, y in zip(results[a], results[b], strict=False) if abs(x.foreign - y.foreign) > 0.2)
        return f"; ⚠ others' CPU differed by > 20 points between the two sides in {n} of {len(results[a])} rounds" if n else ""

    def ratio(name: str, xs: list[float], target: str, ok: bool | None, extra: str = "") -> None:
        if not xs:
            return
        verdict = "" if ok is None else ("**met**" if ok else "**missed**")
        ratio_rows.append(f"| {name} | {spread(xs, '.2f')}× | {target} | {verdict}{extra} |")

    def p99_med(k: tuple[str, str]) -> float:
        return med([s.p99 for s in results[k]])

    def rps_med(k: tuple[str, str]) -> float:
        return med([s.rps for s in results[k]])

    def rss_med(k: tuple[str, str]) -> float:
        return med([s.rss for s in results[k] if s.rss is not None])

    if G in results:
        g = paired(G, T)
        p = paired(G, T, "p99")
        ratio("Garrison / tutorial, `/` req/s", g, "≥ 1.5× with p99 no worse", med(g) >= 1.5 and p99_med(G) <= p99_med(T),
              uneven(G, T))
        ratio("Garrison / tutorial, `/` p99 latency", p, "≤ 1.0×", med(p) <= 1.0)
        m = paired(G, T, "rss")
        ratio("Garrison / tutorial, app-server RSS after `/` run", m, "≤ 0.7× at ≥ tutorial's req/s",
              med(m) <= 0.7 and rps_med(G) >= rps_med(T))
        ratio("Garrison / tutorial, app-server PSS after `/` run", paired(G, T, "pss"), "(PSS: shared pages split)", None)
        ratio("Garrison / tutorial, `/` CPU per request", paired(G, T, "cpu_ms"), "(lower is cheaper)", None)
    if ("granian", "dyn") in results:
        N = ("granian", "dyn")
        gr = paired(N, T)
        ratio("Garrison+granian / tutorial, `/` req/s", gr, "≥ 2.5×", med(gr) >= 2.5,
              f" (p99 {spread(paired(N, T, 'p99'), '.2f')}×, RSS {spread(paired(N, T, 'rss'), '.2f')}×, "
              f"CPU/req {spread(paired(N, T, 'cpu_ms'), '.2f')}×){uneven(N, T)}")
    if ("garrison", "static") in results:
        F = ("tutorial", "flask-static")
        s = paired(("garrison", "static"), F)
        ratio("nginx static (Garrison's site) / Flask static", s, "≥ 15×", med(s) >= 15,
              f" (Flask's CPU per request / nginx's: {spread(paired(F, ('garrison', 'static'), 'cpu_ms'), '.0f')}×)"
              + uneven(("garrison", "static"), F))
        ratio("nginx static (tutorial's site) / Flask static", paired(("tutorial", "static"), ("tutorial", "flask-static")), "", None)
    for key, st in stacks.items():
        if key.startswith("cand:") and (key, "dyn") in results:
            c = paired((key, "dyn"), T)
            cp = paired((key, "dyn"), T, "p99")
            cm = paired((key, "dyn"), T, "rss")
            cc = paired((key, "dyn"), T, "cpu_ms")
            ratio(f"{st.title} / tutorial, `/` req/s", c, "≥ 1.5×, p99 ≤ 1.0×, RSS ≤ 0.7×", med(c) >= 1.5 and med(cp) <= 1.0 and med(cm) <= 0.7,
                  f" (p99 {spread(cp, '.2f')}×, RSS {spread(cm, '.2f')}×, CPU/req {spread(cc, '.2f')}×){uneven((key, 'dyn'), T)}")

    notes = []
    for st in stacks.values():
        notes.append(f"- **{st.title}** (nginx on 127.0.0.1:{st.port}): " + "; ".join(st.notes))
    cmd = "python bench/serve.py " + shlex.join(args.argv_shown)
    text = f"""## Serving speed: Garrison's stack vs the tutorial's

Written by `{cmd.strip()}` on {started:%Y-%m-%d %H:%M} UTC ({elapsed / 60:.1f} min).
Machine: {facts['cores']} cores ({facts['cpu']}), {facts['mem']} RAM, Linux {facts['kernel']}; nginx {facts['nginx']},
Python {versions.get('python')} (/usr/bin/python3), Flask {versions.get('flask')}, gunicorn {versions.get('gunicorn')},
gevent {versions.get('gevent')}, granian {versions.get('granian')}. Load average before / after: {loads[0]} / {loads[1]}
(other work on the machine shows up as spread).

Load: `wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency URL`, {args.rounds} rounds, the stacks
interleaved (A/B/A/B, order reversed every other round), after a {args.warmup} s warm-up each. Every number is the
median over rounds with (min–max) across rounds; ratios are taken within a round, then summarised the same way.
Errors are wrk's socket errors plus non-2xx/3xx answers. Memory is the app server's master and all its workers,
read from /proc right after each `/` run: summed VmRSS / summed PSS, in MB. Worker boots: gunicorn's
"Booting worker" lines during the run (recycling by `max_requests`). CPU ms/req: CPU time of the stack's
app server and nginx (all their processes, recycled workers included) per request: what the stack costs,
which other work on the machine hardly changes. Others' CPU: the share of the machine's
CPU time that processes not started by the benchmark used during the run (this machine is shared); before each
run the benchmark waits (up to {args.quiet_budget:.0f} s in all) for that to fall below {args.quiet_threshold:.0%}, and repeats a
run (at most twice) when it exceeded {2 * args.quiet_threshold:.0%} (runs repeated: {repeats}; seconds spent waiting: {waited:.0f}).

| stack | page | req/s | p50 ms | p99 ms | errors | app server RSS / PSS MB | worker boots | CPU ms/req | others' CPU % |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

| ratio | measured | target | |
|---|---|---|---|
{chr(10).join(ratio_rows)}

What ran (each stack under its own nginx master: Debian 12's stock nginx.conf — `user www-data`,
`worker_processes auto`, `sendfile`, `tcp_nopush`, `gzip on`, access log to a file — with pid, logs and temp paths
in the stack's prefix; app servers run as root from one venv built from /usr/bin/python3):
{chr(10).join(notes)}
"""
    return text


def write_docs(section: str) -> None:
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if DOCS.exists():
        text = DOCS.read_text()
        if BEGIN in text and END in text and text.index(BEGIN) < text.index(END):
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            new = head + block + tail
        else:
            new = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        new = f"# Benchmarks\n\n{block}\n"
    fd, tmp = tempfile.mkstemp(dir=DOCS.parent, prefix=".benchmarks.", suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.chmod(tmp, 0o644)
    os.replace(tmp, DOCS)


# ---------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load per stack before round 1")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds of rest between two wrk runs")
    ap.add_argument("--quiet-threshold", type=float, default=0.15,
                    help="before each run, wait until other processes use less than this share of all CPUs "
                         "(default 0.15); a run during which they used over twice that is repeated once")
    ap.add_argument("--quiet-budget", type=float, default=90.0,
                    help="total seconds the run may spend waiting for quiet and repeating disturbed runs (default 90)")
    ap.add_argument("--garrison-set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                    help="override a garrison.toml setting of the Garrison stack (TOML value; bare words are strings)")
    ap.add_argument("--candidate", action="append", default=[], metavar="LABEL:TABLE.KEY=VALUE[,…]",
                    help="another Garrison variant measured on `/` alongside (its own nginx and app server)")
    ap.add_argument("--no-granian", action="store_true", help="skip the granian stack")
    ap.add_argument("--no-static", action="store_true", help="skip the static-file runs")
    ap.add_argument("--no-docs", action="store_true", help=f"print only; leave {DOCS.relative_to(REPO)} alone")
    ap.add_argument("--keep", action="store_true", help="keep the run's prefix folder (configs, logs) for inspection")
    args = ap.parse_args(argv)
    args.argv_shown = argv
    if args.rounds < 1 or args.duration < 1 or args.connections < 1:
        ap.error("rounds, duration and connections must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench/serve.py runs nginx masters whose workers are www-data: run it as root")
    for tool in (S.NGINX, S.WRK, S.SYSTEM_PYTHON):
        if not os.path.exists(tool):
            raise SystemExit(f"{tool} is missing (apt-get install nginx wrk python3-venv)")
    sets = parse_sets(args.garrison_set)
    candidates = []
    for i, spec in enumerate(args.candidate):
        label, sep, body = spec.partition(":")
        if not sep or not label:
            raise SystemExit(f"expected LABEL:table.key=value[,…], got {spec!r}")
        candidates.append((label, parse_sets([x for x in body.split(",") if x.strip()]), CANDIDATE_NGINX + i))
        garrison_config(1, candidates[-1][1])  # fail now on a bad setting, before anything starts
    garrison_config(1, sets)

    ports = [TUTORIAL_NGINX, TUTORIAL_APP, GARRISON_NGINX] + ([] if args.no_granian else [GRANIAN_NGINX])
    ports += [c[2] for c in candidates]
    busy = [p for p in ports if not S.port_free(p)]
    if busy:
        raise SystemExit(f"ports in use on 127.0.0.1: {busy}; stop what holds them first")

    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    venv = S.app_venv()
    versions = S.package_versions(venv)
    S.CACHE.mkdir(parents=True, exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix="run-", dir=S.CACHE))
    os.chmod(run, 0o755)
    procs = S.Procs()
    S.install_signal_handlers()
    stacks: dict[str, Stack] = {}
    results: dict[tuple[str, str], list[Sample]] = {}
    quiet = Quiet(S.CpuMeter(procs), args.quiet_threshold, args.quiet_budget)
    try:
        S.log(f"stacks under {run}")
        stacks["tutorial"] = setup_tutorial(run, venv, procs)
        stacks["garrison"] = setup_garrison(run, venv, procs, "garrison", "Garrison" + (" (overridden)" if sets else " (defaults)"),
                                            GARRISON_NGINX, sets)
        if not args.no_granian:
            stacks["granian"] = setup_garrison(run, venv, procs, "granian", "Garrison's nginx + granian", GRANIAN_NGINX, sets, server="granian")
        for label, csets, port in candidates:
            key = f"cand:{label}"
            stacks[key] = setup_garrison(run, venv, procs, key, f"candidate {label}", port, csets)
            stacks[key].dynamic_only = True

        dyn = [(k, "dyn", f"http://127.0.0.1:{st.port}{PAGE}") for k, st in stacks.items()]
        static: list[tuple[str, str, str]] = []
        if not args.no_static:
            static = [
                ("tutorial", "static", f"http://127.0.0.1:{TUTORIAL_NGINX}{IMAGE}"),
                ("garrison", "static", f"http://127.0.0.1:{GARRISON_NGINX}{IMAGE}"),
                ("tutorial", "flask-static", f"http://127.0.0.1:{TUTORIAL_APP}{IMAGE}"),
            ]
        S.log(f"warm-up: {args.warmup} s per target")
        for _key, _kind, url in dyn + static:
            S.run_wrk(procs, url, args.warmup, args.connections, args.threads)
        for r in range(args.rounds):
            S.log(f"round {r + 1}/{args.rounds}")
            order = dyn + static if r % 2 == 0 else list(reversed(dyn)) + list(reversed(static))
            for key, kind, url in order:
                time.sleep(args.pause)
                sample = measure(procs, stacks[key], url, args, memory=(kind == "dyn"), quiet=quiet)
                results.setdefault((key, kind), []).append(sample)
    finally:
        procs.stop_all()
        if args.keep:
            S.log(f"kept {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    # Stable row order: stacks as set up, dynamic first.
    ordered = {}
    for kind in ("dyn", "static", "flask-static"):
        for key in stacks:
            if (key, kind) in results:
                ordered[(key, kind)] = results[(key, kind)]
    section = report(stacks, ordered, args, versions, machine_facts(), (load_before, load_after), started,
                     time.monotonic() - t0, quiet.repeats, quiet.spent)
    print(section)
    if not args.no_docs:
        write_docs(section)
        S.log(f"wrote {DOCS.relative_to(REPO)} (between {BEGIN} and {END})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except S.Interrupted as exc:
        print(f"interrupted ({exc}); everything started was stopped", file=sys.stderr)
        sys.exit(130)
