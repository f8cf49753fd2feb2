"""Step `prune`: old releases beyond `app.keep_releases`, and venvs no release uses.

The current release and whatever a slot runs are always kept."""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison.steps import Context, Decision, change, unchanged


def kept(ctx: Context) -> list[str]:
    state = ctx.state
    keep = set(state.get("releases", [])[-ctx.cfg.app.keep_releases:])
    if state.get("current"):
        keep.add(state["current"])
    if ctx.rid:
        keep.add(ctx.rid)  # in a plan, the release about to go live
    keep |= {v["release"] for v in state.get("slots", {}).values()}
    return [r for r in state.get("releases", []) if r in keep]


class Prune:
    name = "prune"

    def what(self, ctx: Context) -> str:
        return f"old releases (keeping {ctx.cfg.app.keep_releases})"

    def decide(self, ctx: Context) -> Decision:
        h, L = ctx.host, ctx.L
        keep = kept(ctx)
        gone = [r for r in ctx.state.get("releases", []) if r not in keep]
        used = {ctx.reqhash} if ctx.reqhash else set()
        for rid in keep:
            st = h.stat(posixpath.join(L.release(rid), ".venv"))
            if st and st.link_target:
                used.add(posixpath.basename(st.link_target))
        listing = h.run(C.list_dir(L.venvs), check=False).stdout.split()
        venvs = [p for p in listing if posixpath.basename(p) not in used]
        if not gone and not venvs:
            return unchanged(self.name, f"{len(keep)} release(s) kept, nothing to remove")
        what = ([f"remove release(s) {', '.join(gone)}"] if gone else []) + (
            [f"remove unused venv(s) {', '.join(posixpath.basename(v) for v in venvs)}"] if venvs else [])
        return change(self.name, "; ".join(what), data=(gone, venvs, keep))

    def apply(self, ctx: Context, decision: Decision) -> str:
        gone, venvs, keep = decision.data
        for rid in gone:
            ctx.host.remove(ctx.L.release(rid))
        for path in venvs:
            ctx.host.remove(path)
        ctx.state["releases"] = keep
        return decision.reason.replace("remove ", "removed ")
