"""Step `health`: the app answers through nginx, as a client would reach it. A check: it
never changes anything, so a plan shows it unchanged and `up` always runs it."""

from __future__ import annotations

from garrison.errors import DeployError
from garrison.steps import Context, Decision, unchanged


class Health:
    name = "health"

    def what(self, ctx: Context) -> str:
        return f"GET {ctx.cfg.app.health_path} through nginx"

    def decide(self, ctx: Context) -> Decision:
        return unchanged(self.name, f"checks GET {ctx.cfg.app.health_path} through nginx")

    def apply(self, ctx: Context, decision: Decision) -> str:
        raise AssertionError("a check has nothing to apply")

    def check(self, ctx: Context) -> str:
        s, L = ctx.cfg.server, ctx.L
        target = f"https://127.0.0.1:{s.https_port}" if s.tls else f"127.0.0.1:{s.port}"
        result = ctx.app.probe(target)
        if not result.get("ok"):
            ev = []
            for path in (L.nginx_error_log, L.error_log):
                tail = (ctx.host.read_file(path) or b"").decode(errors="replace").strip().splitlines()[-10:]
                if tail:
                    ev.append(f"last lines of {path}:")
                    ev += ["  " + t for t in tail]
            why = f"HTTP {result['status']}" if result.get("status") else result.get("error")
            raise DeployError(f"the app does not answer through nginx on port {s.port}: {why}\n" + "\n".join(ev))
        scheme, port = ("https", s.https_port) if s.tls else ("http", s.port)
        return f"HTTP {result['status']} from {scheme}://{s.names[0]}:{port}{ctx.cfg.app.health_path}"
