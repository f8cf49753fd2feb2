"""Step `venv`: the app's virtualenv, shared by every release with the same requirements.

It holds what the app declares plus only what its app server needs (gevent only
for the gevent worker, the uvicorn worker only for ASGI, granian only for
granian), so the server resolves the same versions as the developer's machine.
A `.garrison-complete` marker makes a half-built venv (a killed deploy) get
rebuilt, never used.
"""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison import lockfiles, source, wheelhouse
from garrison.config import Config
from garrison.errors import CommandFailed, DeployError, HostError
from garrison.steps import Context, Decision, change, unchanged

COMPLETE = ".garrison-complete"
GEVENT_SPEC = "gunicorn[gevent]>=23"


def server_specs(cfg: Config) -> tuple[str, ...]:
    """What the app's venv needs besides its requirements to run under the configured server."""
    if cfg.app.server == "granian":
        return ("granian>=2",)
    worker = cfg.gunicorn.worker_class
    # gunicorn 27 declares `packaging` only under its gevent extra, yet imports it always.
    specs = [GEVENT_SPEC if worker == "gevent" else "gunicorn>=23", "packaging"]
    if worker == "uvicorn":
        specs.append("uvicorn-worker>=0.2")
    return tuple(specs)


LOCK_INPUTS = ("uv.lock", "poetry.lock", "Pipfile.lock", "pyproject.toml")


def lock_plan(ctx: Context) -> lockfiles.LockPlan | None:
    """The app's lockfile, if it has one (read on this machine, where the release comes from)."""
    if ctx.lock is None:
        root, req = ctx.project.root, ctx.cfg.app.requirements
        files = {n: (root / n).read_text(encoding="utf-8", errors="replace")
                 for n in (*LOCK_INPUTS, req) if n and (root / n).is_file()}
        ctx.lock = (lockfiles.detect(files, req or None),)
    return ctx.lock[0]


def requirements_hash(ctx: Context) -> str:
    a = ctx.cfg.app
    plan = lock_plan(ctx)
    # A changed lock is a new venv, even when the requirements file itself did not change.
    locked = (plan.constraints, *plan.requirements) if plan else ()
    return source.requirements_hash(ctx.project.root, a.requirements, a.python, (*server_specs(ctx.cfg), *locked))


class Venv:
    name = "venv"

    def what(self, ctx: Context) -> str:
        return "the app's virtualenv"

    def decide(self, ctx: Context) -> Decision:
        h, L = ctx.host, ctx.L
        assert ctx.rid is not None and ctx.reqhash is not None
        venv = L.venv(ctx.reqhash)
        link = h.stat(posixpath.join(L.release(ctx.rid), ".venv"))
        # A new release is copied with its link to this venv (the release step).
        linked = ctx.new_release or (link is not None and link.link_target == venv)
        if h.exists(posixpath.join(venv, COMPLETE)):
            if linked:
                return unchanged(self.name, f"reused {ctx.reqhash} (requirements unchanged)")
            return change(self.name, f"link the release to the existing venv {ctx.reqhash}", data=False)
        what = ctx.cfg.app.requirements or "no requirements"
        return change(self.name, f"build venv {ctx.reqhash} ({what} + {' '.join(server_specs(ctx.cfg))})", data=True)

    def apply(self, ctx: Context, decision: Decision) -> str:
        assert ctx.rid is not None and ctx.reqhash is not None
        venv = ctx.L.venv(ctx.reqhash)
        detail = f"reused {ctx.reqhash}; release linked to it"
        if decision.data:
            detail = f"built {ctx.reqhash} {build(ctx, venv)}"
        ctx.host.ensure_symlink(venv, posixpath.join(ctx.L.release(ctx.rid), ".venv"))
        return detail


def install_commands(ctx: Context, venv: str) -> tuple[list[tuple[str, ...]], dict[str, str]]:
    """The pip/uv argument lists that fill the venv, and the files they read (path → text)."""
    a, release = ctx.cfg.app, ctx.L.release(ctx.rid or "")
    additions = server_specs(ctx.cfg)
    plan = lock_plan(ctx)
    if plan is None:
        if a.requirements == "pyproject.toml":
            return [(*additions, release)], {}
        if a.requirements:
            return [(*additions, "-r", posixpath.join(release, a.requirements))], {}
        return [additions], {}
    files = {f"{venv}/.garrison-constraints.txt": plan.constraints}
    requirements = None
    if plan.requirements:
        requirements = f"{venv}/.garrison-requirements.txt"
        files[requirements] = "".join(r + "\n" for r in plan.requirements)
    extra = [arg for url in plan.index_urls for arg in ("--extra-index-url", url)]
    steps = plan.install_steps(release, f"{venv}/.garrison-constraints.txt", requirements, additions)
    return [(*extra, *step) for step in steps], files


def build(ctx: Context, venv: str) -> str:
    """Make the venv and install into it (uv, else pip); returns what was done, in one line.

    With a lockfile the venv must hold exactly the locked versions; without one, a version
    that Garrison's additions moved away from what the app's requirements alone resolve to
    is named (the package, both versions, the addition)."""
    h, a = ctx.host, ctx.cfg.app
    assert ctx.rid is not None
    if not h.exists(a.python):
        raise HostError(f"{h.name}: app.python {a.python} does not exist; install python3 or set app.python in garrison.toml")
    offline = wheelhouse.install_args(h, ctx.wheelhouse)
    commands, files = install_commands(ctx, venv)
    env = {"UV_CACHE_DIR": "/var/cache/garrison/uv", "UV_PYTHON_DOWNLOADS": "never", "UV_SYSTEM_CERTS": "1"}

    def fill(uv: str | None) -> None:
        h.remove(venv)
        h.run(C.make_venv(a.python, venv, uv), env=env if uv else None, timeout=300)
        for path, text in files.items():
            h.write_file(path, text.encode())
        for args in commands:
            h.run(C.pip_install(venv, uv, [*offline, *args]), env=env if uv else None, timeout=1200)

    uv, tool = ctx.hf.uv, "uv"
    try:
        if not uv:
            raise CommandFailed(("uv",), 127, "", "uv not available")
        fill(uv)
    except CommandFailed:
        # uv missing or refused (e.g. a proxy it can't verify): pip always works.
        uv, tool = None, "pip"
        try:
            fill(None)
        except CommandFailed as exc:
            h.remove(venv)
            last = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
            raise DeployError(f"installing the app's requirements failed: {last}") from None
    freeze = h.run(C.pip_freeze(venv, uv), check=False).stdout
    plan = lock_plan(ctx)
    notes = [f"with {tool}"]
    if plan is not None:
        wrong = lockfiles.lock_mismatches(plan, freeze)
        if wrong:
            h.remove(venv)
            raise DeployError(f"the venv does not hold the versions {plan.lockfile} locks: " + "; ".join(wrong))
        notes.append(f"exactly the versions of {plan.lockfile}")
    elif uv and a.requirements:
        notes += explain_additions(ctx, venv, uv, offline, freeze, env)
    h.write_file(posixpath.join(venv, COMPLETE), b"")
    return "; ".join(notes)


def explain_additions(ctx: Context, venv: str, uv: str, offline: list[str], freeze: str, env: dict[str, str]) -> list[str]:
    """What the app's requirements alone resolve to, compared with the venv: one line per
    package whose version Garrison's additions changed."""
    a, release = ctx.cfg.app, ctx.L.release(ctx.rid or "")
    source_file = posixpath.join(release, a.requirements)
    res = ctx.host.run(C.uv_compile(uv, f"{venv}/bin/python", source_file, offline), env=env, check=False, timeout=600)
    if not res.ok:
        return []
    alone = lockfiles.parse_freeze(res.stdout)
    return lockfiles.explain_version_changes(alone, lockfiles.parse_freeze(freeze), list(server_specs(ctx.cfg)))
