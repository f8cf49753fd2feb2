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
from garrison import source, wheelhouse
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


def requirements_hash(ctx: Context) -> str:
    a = ctx.cfg.app
    return source.requirements_hash(ctx.project.root, a.requirements, a.python, server_specs(ctx.cfg))


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
            detail = f"built {ctx.reqhash} with {build(ctx, venv)}"
        ctx.host.ensure_symlink(venv, posixpath.join(ctx.L.release(ctx.rid), ".venv"))
        return detail


def build(ctx: Context, venv: str) -> str:
    """Make the venv and install into it (uv, else pip); returns the tool that did it."""
    h, a = ctx.host, ctx.cfg.app
    assert ctx.rid is not None
    if not h.exists(a.python):
        raise HostError(f"{h.name}: app.python {a.python} does not exist; install python3 or set app.python in garrison.toml")
    h.remove(venv)
    release = ctx.L.release(ctx.rid)
    args = wheelhouse.install_args(h, ctx.wheelhouse)
    args.extend(server_specs(ctx.cfg))
    if a.requirements == "pyproject.toml":
        args.append(release)
    elif a.requirements:
        args += ["-r", posixpath.join(release, a.requirements)]
    env = {"UV_CACHE_DIR": "/var/cache/garrison/uv", "UV_PYTHON_DOWNLOADS": "never", "UV_SYSTEM_CERTS": "1"}
    uv = ctx.hf.uv
    tool = "pip"
    try:
        if not uv:
            raise CommandFailed(("uv",), 127, "", "uv not available")
        h.run(C.make_venv(a.python, venv, uv), env=env, timeout=300)
        h.run(C.pip_install(venv, uv, args), env=env, timeout=1200)
        tool = "uv"
    except CommandFailed:
        # uv missing or refused (e.g. a proxy it can't verify): pip always works.
        h.remove(venv)
        h.run(C.make_venv(a.python, venv, None), timeout=300)
        try:
            h.run(C.pip_install(venv, None, args), timeout=1200)
        except CommandFailed as exc:
            h.remove(venv)
            last = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
            raise DeployError(f"installing the app's requirements failed: {last}") from None
    h.write_file(posixpath.join(venv, COMPLETE), b"")
    return tool
