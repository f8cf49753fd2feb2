"""Step `tls`: certificates before the HTTPS site: the user's files, or Let's Encrypt via certbot.

For Let's Encrypt the plain site first serves the HTTP-01 challenge, then
`certbot certonly --webroot` asks for the certificate; certbot's own timer
renews it and a deploy hook reloads nginx.
"""

from __future__ import annotations

import posixpath

from garrison import commands as C
from garrison import render as R
from garrison.errors import DeployError
from garrison.steps import Context, Decision, change, nginx, skip, unchanged
from garrison.steps.site import site_change

RENEW_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/garrison-reload-nginx"
RENEW_HOOK_TEXT = b"#!/bin/sh\n# Garrison: serve renewed certificates.\nnginx -t -q && nginx -s reload\n"


def preflight(ctx: Context) -> None:
    """The user's own certificate must be on the host before anything changes."""
    tls = R.tls_settings(ctx.cfg)
    if tls is not None and ctx.cfg.server.tls != "letsencrypt":
        for key in ("cert", "key"):
            if not ctx.host.exists(str(tls[key])):
                raise DeployError(
                    f"server.tls.{key}: {tls[key]} does not exist on {ctx.host.name}; copy it there "
                    "(mode 0600 for the key) or use tls = \"letsencrypt\""
                )


class Tls:
    name = "tls"

    def what(self, ctx: Context) -> str:
        return "certificate for HTTPS"

    def decide(self, ctx: Context) -> Decision:
        h, s = ctx.host, ctx.cfg.server
        tls = R.tls_settings(ctx.cfg)
        if s.tls is None or tls is None:
            return skip(self.name, "server.tls is not set: HTTP only")
        if s.tls != "letsencrypt":
            return unchanged(self.name, f"using {tls['cert']}")
        todo = []
        if not h.which("certbot"):
            todo.append("install certbot")
        if not h.has_file(RENEW_HOOK, RENEW_HOOK_TEXT, mode=0o755):
            todo.append(f"renewal hook {RENEW_HOOK}")
        if not h.exists(str(tls["cert"])):
            todo.append(f"obtain {tls['cert']} for {', '.join(s.names)}")
        if not todo:
            return unchanged(self.name, f"{tls['cert']} present; certbot renews it (deploy hook reloads nginx)")
        return change(self.name, "; ".join(todo))

    def apply(self, ctx: Context, decision: Decision) -> str:
        h, s = ctx.host, ctx.cfg.server
        tls = R.tls_settings(ctx.cfg)
        assert tls is not None
        acme = ctx.L.p(R.ACME_ROOT)
        h.ensure_dir(acme, mode=0o755)
        if not h.which("certbot"):
            h.run(C.apt_install(["certbot"]), env=C.APT_ENV, timeout=1200)
        h.ensure_dir(posixpath.dirname(RENEW_HOOK), mode=0o755)
        h.ensure_file(RENEW_HOOK, RENEW_HOOK_TEXT, mode=0o755)
        if h.exists(str(tls["cert"])):
            return decision.reason
        # Serve the HTTP-01 challenge from the plain site first, then ask for the certificate.
        bootstrap = R.nginx_site(ctx.cfg, ctx.L, ipv6=ctx.hf.ipv6, acme_bootstrap=True)
        nginx.put_live(ctx, site_change(ctx, bootstrap))
        res = h.run(C.certbot_certonly(s.names, acme, s.tls_email or ""), check=False, timeout=600)
        if not res.ok:
            raise DeployError(f"certbot could not obtain a certificate for {', '.join(s.names)}: "
                              f"{(res.stderr.strip() or res.stdout.strip()).splitlines()[-1:]}; the site keeps serving HTTP")
        return f"obtained {tls['cert']}"
