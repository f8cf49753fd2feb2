"""Steps `catchall` and `site`: the app's nginx site, enabled, and no random app for unknown hosts.

The catch-all comes first: when this app becomes the default server the
catch-all must be gone before the site claims `default_server`, and when it
is added no other site claims it. Both go live through nginx.put_live.
"""

from __future__ import annotations

from garrison import facts as F
from garrison import render as R
from garrison.errors import DeployError
from garrison.steps import Context, Decision, change, nginx, unchanged

DEFAULT_LINK = "/etc/nginx/sites-enabled/default"
DEFAULT_SITE = "/etc/nginx/sites-available/default"


def site_change(ctx: Context, site: str | None = None) -> nginx.NginxChange:
    L = ctx.L
    text = site if site is not None else R.nginx_site(ctx.cfg, L, ipv6=ctx.hf.ipv6)
    removes = [DEFAULT_LINK] if ctx.cfg.server.default else []
    return nginx.NginxChange(puts={L.nginx_site: text}, links={L.nginx_site_link: L.nginx_site}, removes=removes)


def enabled_configs(ctx: Context) -> dict[str, str]:
    h = ctx.host
    listing = h.run(F.enabled_nginx_configs(), check=False).stdout.split()
    return {p: (h.read_file(p) or b"").decode(errors="replace") for p in listing}


def catchall_change(ctx: Context) -> nginx.NginxChange:
    """Unknown hosts must never land on a random app: when no site is the default server
    on our port, Garrison's catch-all answers them with 444."""
    T, port = ctx.tool, ctx.cfg.server.port
    if ctx.cfg.server.default:
        # This app will be the default server: the catch-all would be a second one.
        return nginx.NginxChange(removes=[T.catchall_link(port)])
    configs = enabled_configs(ctx)
    configs[ctx.L.nginx_site_link] = R.nginx_site(ctx.cfg, ctx.L, ipv6=ctx.hf.ipv6)
    others = [p for p in F.default_server_files(configs, port) if p != T.catchall_link(port)]
    if others:
        return nginx.NginxChange(removes=[T.catchall_link(port)])
    return nginx.NginxChange(puts={T.catchall_site(port): R.nginx_catchall(port, ctx.hf.ipv6)},
                             links={T.catchall_link(port): T.catchall_site(port)})


def catchall_note(ctx: Context, todo: nginx.NginxChange) -> str:
    port = ctx.cfg.server.port
    if todo.puts or todo.links:
        return f"catch-all site: unknown hosts on port {port} get 444"
    if ctx.cfg.server.default:
        return "catch-all removed (this app is the default server)"
    return f"catch-all removed (another site is the default server on port {port})"


class CatchAll:
    name = "catchall"

    def what(self, ctx: Context) -> str:
        return f"unknown hosts on port {ctx.cfg.server.port}"

    def decide(self, ctx: Context) -> Decision:
        todo = catchall_change(ctx).pending(ctx.app)
        if not todo:
            return unchanged(self.name, "catch-all as it should be")
        return change(self.name, catchall_note(ctx, todo), todo.diff(ctx.app), data=todo)

    def apply(self, ctx: Context, decision: Decision) -> str:
        # Validated with the app's site as the next step will put it (a broken live one is replaced).
        # The whole change (its links already in place too): nginx -t must judge the candidate
        # where nginx reads it. put_live itself skips what is already right.
        notes = nginx.put_live(ctx, catchall_change(ctx), also=site_change(ctx))
        return "; ".join([decision.reason, *(n for n in notes if "nginx" in n)])


class Site:
    name = "site"

    def what(self, ctx: Context) -> str:
        return f"nginx site {ctx.L.nginx_site}"

    def decide(self, ctx: Context) -> Decision:
        main = (ctx.host.read_file("/etc/nginx/nginx.conf") or b"").decode(errors="replace")
        if main and "/etc/nginx/sites-enabled/" not in main and not ctx.planning:
            raise DeployError("/etc/nginx/nginx.conf does not include /etc/nginx/sites-enabled/; add "
                              "`include /etc/nginx/sites-enabled/*;` to its http block")
        todo = site_change(ctx).pending(ctx.app)
        running = ctx.app.nginx_running()
        if not todo and running:
            return unchanged(self.name, "site unchanged, nginx running")
        what = todo.describe() + ([] if running else ["start nginx"])
        return change(self.name, "; ".join(what), todo.diff(ctx.app), data=todo)

    def apply(self, ctx: Context, decision: Decision) -> str:
        todo: nginx.NginxChange = decision.data
        if DEFAULT_LINK in todo.removes:
            ctx.state["default_site_disabled"] = True
        notes = nginx.put_live(ctx, site_change(ctx)) if todo else [nginx.reload(ctx)]
        if DEFAULT_LINK in todo.removes:
            notes.append("distribution's default site disabled (server.default = true)")
        return "; ".join(notes)
