"""Step `release`: the app's files in /srv/<app>/releases/<id>, named by their content hash.

An unchanged tree reuses its release. A rollback or a restart picks a kept
release instead of copying one (`Target`).
"""

from __future__ import annotations

import json
import posixpath

from garrison import commands as C
from garrison import source
from garrison.errors import DeployError
from garrison.steps import Context, Decision, change, unchanged
from garrison.steps.venv import requirements_hash

MARKER = ".garrison-release"


class Release:
    name = "release"

    def what(self, ctx: Context) -> str:
        return "copying the app's code into a release"

    def decide(self, ctx: Context) -> Decision:
        root = ctx.project.root
        files = source.app_files(root)
        if not files:
            raise DeployError(f"{root}: no files to deploy")
        digest = source.content_hash(root, files)[:12]
        ctx.reqhash = requirements_hash(ctx)
        for rid in ctx.state.get("releases", []):
            if rid.endswith("-" + digest) and ctx.host.exists(posixpath.join(ctx.L.release(rid), MARKER)):
                ctx.rid = rid
                # Most recently used last, so pruning keeps it.
                ctx.state["releases"] = [r for r in ctx.state["releases"] if r != rid] + [rid]
                return unchanged(self.name, f"{rid} already holds this code ({len(files)} files)")
        rid = ctx.clock.now().strftime("%Y%m%dT%H%M%SZ") + "-" + digest
        ctx.rid, ctx.new_release = rid, True
        ctx.state.setdefault("releases", []).append(rid)
        return change(self.name, f"new release {rid} ({len(files)} files)", data=files)

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, L, rid, files = ctx.host, ctx.L, ctx.rid, decision.data
        assert rid is not None
        tmp = L.release(rid) + ".partial"
        h.remove(tmp)
        h.ensure_dir(tmp, mode=0o755)
        h.extract_tar(source.archive(ctx.project.root, files), tmp)
        h.write_file(posixpath.join(tmp, MARKER), json.dumps({"id": rid, "files": len(files)}).encode())
        if ctx.reqhash:  # the venv it will run with (built by the next step when new)
            h.ensure_symlink(L.venv(ctx.reqhash), posixpath.join(tmp, ".venv"))
        h.run(C.rename(tmp, L.release(rid)))
        return f"{rid} ({len(files)} files)"


def rollback_target(state: dict, wanted: str | None) -> str:
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


class Target:
    """A kept release instead of a new one: the rollback's target, or the current one (restart)."""

    name = "release"

    def what(self, ctx: Context) -> str:
        return "the kept release to run"

    def decide(self, ctx: Context) -> Decision:
        if ctx.rollback:
            rid = rollback_target(ctx.state, ctx.rollback_to)
            why = f"rollback from {ctx.state.get('current')} to {rid}"
        else:
            rid = ctx.state["current"]
            why = f"restart of {rid}: {ctx.restart}"
        reqhash = ctx.app.release_venv(rid)
        if reqhash is None:
            raise DeployError(f"release {rid} has no complete venv on this host; deploy it again instead")
        ctx.rid, ctx.reqhash = rid, reqhash
        return unchanged(self.name, why)

    def apply(self, ctx: Context, decision: Decision) -> str:
        raise AssertionError("a kept release is never changed")
