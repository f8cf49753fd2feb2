"""Step `upstream`: nginx's upstream include names the serving slot (the cut-over itself).

The include is the only file a cut-over rewrites; it is the truth about which
slot is live. After the switch the release becomes `current`.
"""

from __future__ import annotations

import posixpath

from garrison import render as R
from garrison.steps import Context, Decision, change, file_diff, nginx, unchanged
from garrison.steps.site import site_change


def record_live(ctx: Context) -> None:
    """The release that now serves is current (state, history, the `current` link)."""
    cut, L, state = ctx.cutover, ctx.L, ctx.state
    assert cut is not None
    state["current"] = cut.rid
    ctx.host.ensure_symlink(posixpath.relpath(L.release(cut.rid), L.base), L.current)
    history = state.setdefault("history", [])
    if not history or history[-1] != cut.rid:
        history.append(cut.rid)
    del history[:-50]
    ctx.app.write_state(state)


class Upstream:
    name = "upstream"

    def what(self, ctx: Context) -> str:
        return f"pointing nginx at slot {ctx.serving}"

    def decide(self, ctx: Context) -> Decision:
        assert ctx.serving is not None
        L = ctx.L
        text = R.nginx_upstream(ctx.cfg, L, ctx.serving)
        old = ctx.host.read_file(L.nginx_upstream)
        if old == text.encode():
            return unchanged(self.name, f"already on {ctx.serving}")
        return change(self.name, f"upstream → {ctx.serving}", file_diff(L.nginx_upstream, old, text), data=text)

    def apply(self, ctx: Context, decision: Decision) -> str:
        L = ctx.L
        # Before the site exists (a first deploy) nginx doesn't read the include yet:
        # the site step validates and loads both.
        live_site = ctx.host.exists(L.nginx_site_link)
        notes = nginx.put_live(ctx, nginx.NginxChange(puts={L.nginx_upstream: decision.data}), apply=live_site,
                               also=site_change(ctx))
        if ctx.cutover is not None:
            record_live(ctx)
        return "; ".join([decision.reason] + [n for n in notes if "nginx" in n])
