"""`garrison doctor`: read the host along the request path, then explain what breaks it.

`collect` only reads. It reads files, runs `stat`, `ss`, `df`, `nginx -T`,
`ufw status`, the service manager's status and `tail` of the logs, sends two
health probes (through nginx, and straight to the live slot), and imports the
app as its own user in its release, the way a gunicorn worker does when it
boots. It changes nothing: no reload, no restart, no chmod, no lock taken.
The rules that judge what it read live in `garrison.diagnose.rules`.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence

from garrison import commands as C
from garrison import facts as F
from garrison.diagnose.rules import NGINX_PID, Report, diagnose
from garrison.errors import DeployError, HostError
from garrison.facts import doctor as FD
from garrison.facts.doctor import (
    DoctorFacts,
    Output,
    ReleaseFacts,
    components,
    parse_gunicorn_setting,
    parse_release_names,
)
from garrison.hosts import Executor
from garrison.layout import SLOTS
from garrison.project import Project
from garrison.state import AppOnHost

# Run by the venv's python, as the app user, in the release (argv[1] = app.entry).
# It fails where gunicorn's `import_app` would, and prints the traceback.
IMPORT_CHECK = """\
import importlib, os, sys
entry = sys.argv[1]
sys.path.insert(0, os.getcwd())  # gunicorn puts its working directory first on sys.path
module, _, attr = entry.partition(":")
name = attr.split("(", 1)[0].strip()
obj = getattr(importlib.import_module(module), name)
# A factory ("create_app()") is only looked up: calling it could open connections.
if "(" not in attr and not callable(obj):
    raise TypeError(f"{entry} is a {type(obj).__name__}, not a WSGI callable")
# Which interface it speaks: an async callable (or one of three arguments) is ASGI.
import inspect
call = obj if inspect.isroutine(obj) else getattr(type(obj), "__call__", None)
kind = "factory"
if "(" not in attr and call is not None:
    try:
        args = [p for p in inspect.signature(obj).parameters.values() if p.default is p.empty]
    except (TypeError, ValueError):
        args = []
    kind = "asgi" if inspect.iscoroutinefunction(call) or len(args) == 3 else "wsgi"
print("ok", kind)
"""
# gunicorn's gevent worker module also refuses a gevent that is too old: import it as gunicorn does.
GEVENT_CHECK = "import gevent; import gunicorn.workers.ggevent"
IMPORT_TIMEOUT = 60.0
NGINX_PROBE_DEADLINE = 3.0  # a slot that just started gets a moment; a healthy one answers at once
SLOT_PROBE_DEADLINE = 2.0


# ---- reading primitives ------------------------------------------------------------


def _text(host: Executor, path: str) -> str | None:
    try:
        raw = host.read_file(path)
    except OSError:
        return None
    return None if raw is None else raw.decode(errors="replace")


def _run(host: Executor, argv: Sequence[str], timeout: float = 30.0, env: dict[str, str] | None = None) -> Output:
    res = host.run(tuple(argv), check=False, timeout=timeout, env=env)
    return Output(rc=res.returncode, stdout=res.stdout, stderr=res.stderr)


def _stdout(host: Executor, argv: Sequence[str], timeout: float = 30.0) -> str | None:
    """stdout of a command that succeeded, else None (missing tool, missing file)."""
    out = _run(host, argv, timeout)
    return out.stdout if out.ok else None


def _resolve_any(host: Executor, path: str) -> str | None:
    """`readlink -f path`: where it leads, even when its last component is missing."""
    return (_stdout(host, FD.resolved(path)) or "").strip() or None


def _resolve(host: Executor, path: str) -> str | None:
    """`readlink -f path`, only when what it leads to exists."""
    resolved = _resolve_any(host, path)
    return resolved if resolved and host.exists(resolved) else None


def _existing(host: Executor, path: str) -> str:
    """path, or its nearest existing parent: the filesystem it is (or will be) on."""
    while path != "/" and not host.exists(path):
        path = posixpath.dirname(path)
    return path


def _link(host: Executor, path: str) -> str | None:
    """A symlink's target as written, or None when path is not a symlink."""
    st = host.stat(path)
    return st.link_target if st is not None and st.is_link else None


# ---- what each part of the path needs ---------------------------------------------------


def _release(u: AppOnHost, path: str, slot: str, worker_class: str, env: dict[str, str]) -> ReleaseFacts:
    """A release's interpreter, and whether its app (and gevent) import as the app user."""
    h, cfg = u.host, u.cfg
    python = _resolve(h, f"{path}/.venv/bin/python")
    venv_bin = _resolve(h, f"{path}/.venv/bin")
    if python is None or venv_bin is None:
        return ReleaseFacts(id=posixpath.basename(path), path=path, python=python, venv_bin=venv_bin)
    # What the service manager gives gunicorn; and no .pyc written into the release. The
    # app's secrets reach the check through garrison-exec, never through its argv.
    run_env = {"HOME": u.L.base, "GARRISON_SLOT": slot, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}

    def as_app(*args: str) -> tuple[str, ...]:
        return C.as_app(u.tool, u.L.env_file, cfg.user, path, run_env, (f"{path}/.venv/bin/python", *args))

    gevent = _run(h, as_app("-c", GEVENT_CHECK), IMPORT_TIMEOUT) if worker_class == "gevent" else None
    return ReleaseFacts(
        id=posixpath.basename(path),
        path=path,
        python=python,
        venv_bin=venv_bin,
        import_check=_run(h, as_app("-c", IMPORT_CHECK, cfg.app.entry), IMPORT_TIMEOUT),
        gevent_check=gevent,
        has_pip=h.exists(f"{venv_bin}/pip"),
    )


def _releases(u: AppOnHost, state: dict, live: str | None, worker_class: str) -> tuple[str | None, ReleaseFacts | None, ReleaseFacts | None]:
    """(release listing, the live slot's release, the newest release if it never went live).

    `up` records a release in its state only once it is healthy, so a newer
    release that is not recorded is the one a failed deploy left behind.
    """
    h, L = u.host, u.L
    try:
        env = u.app_env()
    except OSError:
        env = {}
    live_path = _resolve(h, L.slot(live)) if live else _resolve(h, L.current)
    live_rel = _release(u, live_path, live or "blue", worker_class, env) if live_path else None
    listing = _stdout(h, FD.release_names(L.releases))
    names = parse_release_names(listing)
    recorded = set(state.get("releases") or [])
    failed = None
    if names and names[-1] not in recorded and (live_rel is None or names[-1] != live_rel.id):
        failed = _release(u, L.release(names[-1]), "blue", worker_class, env)
    return listing, live_rel, failed


def _deploying(u: AppOnHost) -> str | None:
    """Who holds the deploy lock, while a deploy runs.

    A shared flock succeeds unless a deploy holds the lock. Tried only on an
    existing lock file, since flock(1) would create a missing one.
    """
    h, lock = u.host, u.L.lock
    if h.exists(lock) and h.run(FD.deploy_lock_free(lock), check=False).returncode == 1:
        return (_text(h, lock) or "").strip() or "another process"
    return None


def _stat_paths(u: AppOnHost, static: dict[str, str | None], releases: Sequence[ReleaseFacts | None]) -> list[str]:
    """Every path a rule judges by owner, group and mode, with the folders above it."""
    L = u.L
    paths = [L.state_file, L.nginx_upstream, L.nginx_site, L.nginx_site_link, NGINX_PID, L.env_file, L.error_log]
    for slot in SLOTS:
        paths.append(L.pidfile(slot))
        if not L.bind:
            paths += components(L.socket(slot))
    for folder in static.values():
        if folder:
            paths += components(folder)
    for rel in releases:
        if rel and rel.python and rel.venv_bin:
            paths += components(rel.venv_bin) + components(rel.python)
    return list(dict.fromkeys(paths))


def _slot_status(u: AppOnHost, systemd: bool) -> dict[str, Output]:
    h, L = u.host, u.L
    if systemd:
        return {s: _run(h, FD.systemd_state(L.systemd_instance(s))) for s in SLOTS}
    return {s: _run(h, FD.supervisor_state(u.tool, L.supervisor_program(s))) for s in SLOTS}


# ---- the whole picture ----------------------------------------------------------------------


def collect(project: Project, host: Executor) -> DoctorFacts:
    """Everything the rules look at, read from host; changes nothing on it."""
    u = AppOnHost(project.config, host)
    cfg, L, h = u.cfg, u.L, host
    if h.run(C.whoami_uid(), check=False).stdout.strip() != "0":
        # Without root, runuser, nginx -T and the env file are out of reach, and
        # "can't read" would pass for "missing": no half-true report.
        raise HostError(
            f"{h.name}: garrison doctor must run as root (it reads nginx's config and imports the app "
            f"as {cfg.user}); run: sudo garrison doctor"
        )

    systemd = F.parse_pid1(_text(h, "/proc/1/comm") or "")
    nginx_user = F.parse_nginx_user(_text(h, "/etc/nginx/nginx.conf") or "")
    state_text = _text(h, L.state_file)
    try:
        state = json.loads(state_text) if state_text else {}
    except ValueError:
        state = {}
    live = u.live_slot()
    gunicorn_conf = _text(h, L.gunicorn_conf)
    worker_class = parse_gunicorn_setting(gunicorn_conf, "worker_class") or cfg.gunicorn.worker_class
    listing, live_rel, failed_rel = _releases(u, state if isinstance(state, dict) else {}, live, worker_class)

    static = {st.path: _resolve_any(h, f"{L.current}/{st.path}") for st in cfg.app.static}
    static_denied = {
        path: _stdout(h, FD.static_denied(folder))
        for path, folder in static.items() if folder and h.exists(folder)
    }
    # stat exits 1 when some paths are missing: they are left out, and that is the fact.
    stat = _run(h, FD.stat_paths(_stat_paths(u, static, (live_rel, failed_rel))))
    nginx_pid = _text(h, NGINX_PID)
    pid = F.parse_pid(nginx_pid)
    ufw = h.which("ufw")
    a, srv = cfg.app, cfg.server
    # Probe before reading the logs: what nginx logs about the probe's own request
    # (a connect() refused with errno 13, a timeout) is the freshest evidence there is.
    probe_nginx = u.probe(f"127.0.0.1:{srv.port}", deadline=NGINX_PROBE_DEADLINE, timeout=a.health_timeout)
    probe_slot = u.probe(L.bind_address(live), deadline=SLOT_PROBE_DEADLINE, timeout=a.health_timeout) if live else None

    return DoctorFacts(
        config=cfg,
        config_path=str(project.source),
        systemd=systemd,
        nginx_user=nginx_user,
        nginx_groups=_stdout(h, FD.groups_of(nginx_user)),
        app_groups=_stdout(h, FD.groups_of(cfg.user)),
        clock=_stdout(h, FD.clock()),
        state=state_text,
        deploying=_deploying(u),
        releases=listing,
        upstream=_text(h, L.nginx_upstream),
        site=_text(h, L.nginx_site),
        site_link=_link(h, L.nginx_site_link),
        nginx_T=_run(h, FD.nginx_dump()),
        default_servers=_run(h, FD.default_servers()).stdout,
        nginx_pid=nginx_pid,
        nginx_alive=h.run(C.kill("0", pid), check=False).ok if pid else None,
        ss_tcp=_stdout(h, FD.tcp_sockets()),
        ss_unix=_stdout(h, FD.unix_sockets()),
        df=_run(h, FD.disk_use((_existing(h, L.base), _existing(h, L.log_dir)))).stdout or None,
        ufw_installed=ufw is not None,
        ufw=_run(h, FD.ufw_status_verbose()) if ufw else None,
        gunicorn_conf=gunicorn_conf,
        slot_status=_slot_status(u, systemd),
        pids={s: _text(h, L.pidfile(s)) for s in SLOTS},
        stats=stat.stdout if stat.rc in (0, 1) else None,
        static=static,
        static_denied=static_denied,
        gunicorn_log=_stdout(h, FD.log_tail(L.error_log)),
        nginx_log=_stdout(h, FD.log_tail(L.nginx_error_log)),
        probe_nginx=probe_nginx,
        probe_slot=probe_slot,
        live=live_rel,
        failed=failed_rel,
        jobs={name: (_text(h, L.job_finished(name)), _text(h, L.job_started(name))) for name in cfg.jobs},
    )


def doctor(project: Project, host: Executor) -> Report:
    """Read the host, then explain it: findings in request-path order, and the cause."""
    return diagnose(collect(project, host))


def explain(project: Project, host: Executor, exc: DeployError) -> DeployError:
    """A failed deploy on host, with doctor's cause (read on that same host) appended."""
    try:
        report = doctor(project, host)
        # What broke is the release that just failed: its own finding (an import error, an
        # ASGI app under WSGI workers) explains more than "no deploy finished" on a first deploy.
        failed = next((f for f in report.findings if f.check == "failed_release" and f.status == "fail"), None)
        cause = failed or report.cause
    except Exception:  # explaining must never hide the deploy's own error
        cause = None
    if cause is not None and cause.status != "ok":
        exc.args = (f"{exc}\ndoctor ({cause.hop}, {cause.check}): {cause.evidence}\n  fix: {cause.fix}",)
    return exc
