"""Step `tool`: Garrison's own venv on the host (uv; supervisord where PID 1 is not systemd)
and garrison-exec, the launcher that hands the app its secrets without an argv."""

from __future__ import annotations

import posixpath
from importlib import resources

from garrison import commands as C
from garrison import wheelhouse
from garrison.steps import Context, Decision, change, unchanged

TOOL_PACKAGES = ("supervisor>=4.2", "uv")


def exec_helper_source() -> bytes:
    return resources.files("garrison.hosts").joinpath("garrison_exec.py").read_bytes()


class Tool:
    name = "tool"

    def what(self, ctx: Context) -> str:
        return "Garrison's venv on the host (supervisord, uv)"

    def decide(self, ctx: Context) -> Decision:
        h, T = ctx.host, ctx.tool
        want = ["uv"] + ([] if ctx.hf.systemd else ["supervisord"])
        missing = [b for b in want if not h.exists(f"{T.venv}/bin/{b}")]
        helper = not h.has_file(T.exec_helper, exec_helper_source(), mode=0o755)
        ctx.hf.uv = h.which("uv") if "uv" in missing else f"{T.venv}/bin/uv"
        todo = ([f"install {', '.join(missing)} into {T.venv}"] if missing else []) + ([f"write {T.exec_helper}"] if helper else [])
        if todo:
            return change(self.name, "; ".join(todo), data=(bool(missing), helper))
        return unchanged(self.name, f"{T.venv} has {', '.join(want)}; {T.exec_helper} current")

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, T = ctx.host, ctx.tool
        install, helper = decision.data
        notes = []
        if install:
            if not h.exists(f"{T.venv}/bin/python"):
                h.run(C.system_venv(T.venv), timeout=300)
            offline = wheelhouse.install_args(h, ctx.wheelhouse)
            h.run(C.pip_install(T.venv, None, [*offline, *TOOL_PACKAGES]),
                  timeout=900)
            notes.append(f"installed {', '.join(TOOL_PACKAGES)} into {T.venv}"
                         + (f" from the wheelhouse {ctx.wheelhouse}" if ctx.wheelhouse else ""))
            ctx.hf.uv = f"{T.venv}/bin/uv" if h.exists(f"{T.venv}/bin/uv") else h.which("uv")
        if helper:
            h.ensure_dir(posixpath.dirname(T.exec_helper), mode=0o755)
            h.ensure_file(T.exec_helper, exec_helper_source(), mode=0o755)
            notes.append(f"wrote {T.exec_helper}")
        return "; ".join(notes)
