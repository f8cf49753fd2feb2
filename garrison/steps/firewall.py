"""Step `firewall`: ufw (where installed) admits SSH first, then HTTP and 443."""

from __future__ import annotations

from garrison import facts as F
from garrison.steps import Context, Decision, change, skip, unchanged
from garrison.steps.firewall_rules import allow_ssh_and_web, missing_rules


class Firewall:
    name = "firewall"

    def what(self, ctx: Context) -> str:
        return "ufw rules for SSH, HTTP and HTTPS"

    def decide(self, ctx: Context) -> Decision:
        h = ctx.host
        if not h.which("ufw"):
            return skip(self.name, "ufw is not installed")
        active = F.parse_ufw_active(h.run(F.ufw_status(), check=False).stdout)
        state = "active" if active else "inactive (rules added; enable with `ufw enable`)"
        want, missing = missing_rules(h, ctx.cfg.server.port)
        if missing:
            return change(self.name, f"open {', '.join(missing)}; ufw {state}")
        return unchanged(self.name, f"{', '.join(want)} already allowed; ufw {state}")

    def apply(self, ctx: Context, decision: Decision) -> str:
        _want, opened = allow_ssh_and_web(ctx.host, ctx.cfg.server.port)
        return decision.reason.replace("open ", "opened ", 1)
