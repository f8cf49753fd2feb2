"""Step `drain`: once nginx's old workers have finished their requests, the old slot stops
(gunicorn's graceful TERM), so no request in flight is cut."""

from __future__ import annotations

from garrison.steps import Context, Decision, change, skip, slots


def wait_nginx_drained(ctx: Context) -> str:
    """Wait until nginx's old workers (after a reload) have finished their requests."""
    timeout = ctx.cfg.gunicorn.graceful_timeout
    deadline = ctx.clock.monotonic() + timeout
    while True:
        old = ctx.app.nginx_draining()
        if old == 0:
            return "finished"
        if ctx.clock.monotonic() > deadline:
            return f"still finishing ({old}) after {timeout} s"
        ctx.clock.sleep(0.05)


class Drain:
    name = "drain"

    def what(self, ctx: Context) -> str:
        return f"draining and stopping the old slot {ctx.live}"

    def decide(self, ctx: Context) -> Decision:
        if ctx.cutover is None or not ctx.live:
            return skip(self.name, "no old slot to stop")
        return change(self.name, f"stop slot {ctx.live} once nginx's old workers are done")

    def apply(self, ctx: Context, decision: Decision) -> str:
        assert ctx.live is not None
        drained = wait_nginx_drained(ctx)
        slots.stop(ctx, ctx.live)
        ctx.state.get("slots", {}).pop(ctx.live, None)
        ctx.app.write_state(ctx.state)
        return f"old nginx workers {drained}; slot {ctx.live} stopped gracefully"
