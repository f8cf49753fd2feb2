"""Step `slot`: a slot running the release takes the traffic.

Nothing to do when the live slot already runs exactly this (same fingerprint)
and is up; a restart when it is down; otherwise a cut-over: the idle slot
(blue/green) starts the release and must answer its health check on its own
socket, and settle, before anything else happens. A release that fails is
stopped and the old slot keeps serving.
"""

from __future__ import annotations

from garrison.errors import DeployError
from garrison.layout import other_slot
from garrison.steps import Context, Cutover, Decision, change, slots, unchanged
from garrison.steps.slots import kept_note


class Slot:
    name = "slot"

    def what(self, ctx: Context) -> str:
        if ctx.cutover:
            return f"starting release in slot {ctx.cutover.new}"
        return f"slot {ctx.live} serves {ctx.rid}"

    def decide(self, ctx: Context) -> Decision:
        return decide_slot(ctx)

    def apply(self, ctx: Context, decision: Decision) -> str:
        cut = ctx.cutover
        if cut is None:
            assert ctx.live and ctx.rid
            log_offset = ctx.app.log_size(ctx.L.error_log)
            slots.start(ctx, ctx.live, ctx.rid)
            result = slots.wait_healthy(ctx, ctx.live, log_offset)
            if not result.get("ok"):
                raise DeployError(f"slot {ctx.live} was down and does not come back: {slots.health_failure(ctx, result)}")
            return f"slot {ctx.live} was not running: started it"
        log_offset = ctx.app.log_size(ctx.L.error_log)
        slots.start(ctx, cut.new, cut.rid)
        result = slots.wait_healthy(ctx, cut.new, log_offset)
        if not result.get("ok"):
            ev = slots.evidence(ctx, cut.new, log_offset)
            slots.stop(ctx, cut.new)
            why = slots.health_failure(ctx, result)
            raise DeployError(f"release {cut.rid} failed on slot {cut.new}: {why}; {kept_note(ctx)}\n" + "\n".join(ev))
        # Recorded before the switch: if we die right after it, the next run knows what the slot runs.
        ctx.state.setdefault("slots", {})[cut.new] = {"release": cut.rid, "fingerprint": cut.fingerprint}
        ctx.app.write_state(ctx.state)
        return f"{cut.reason}; {cut.rid} healthy on slot {cut.new} after {result.get('attempts')} probe(s)"


def decide_slot(ctx: Context) -> Decision:
    """Decided once per run (the release hook, which comes first, needs the outcome)."""
    if ctx.slot_decision is None:
        ctx.slot_decision = _decide(ctx)
    return ctx.slot_decision


def _decide(ctx: Context) -> Decision:
    name = Slot.name
    rid, reqhash, live, state = ctx.rid, ctx.reqhash, ctx.live, ctx.state
    assert rid is not None and reqhash is not None
    fp = slots.fingerprint(ctx, rid, reqhash)
    live_info = state.get("slots", {}).get(live or "", {})
    if live and live_info.get("fingerprint") == fp:
        ctx.serving = live
        if ctx.app.slot_running(ctx.hf, live):
            return unchanged(name, f"slot {live} runs {rid}, nothing to restart")
        return change(name, f"slot {live} is not running: start it")
    if ctx.rollback:
        reason = f"rollback from {state.get('current')}"
    elif ctx.restart and state.get("current"):
        reason = ctx.restart
    elif not live:
        reason = "first release"
    elif live_info.get("release") != rid:
        reason = "new code"
    else:
        reason = "new venv or gunicorn/service config"
    new = other_slot(live) if live else "blue"
    ctx.cutover = Cutover(new=new, rid=rid, fingerprint=fp, reason=reason)
    ctx.serving = new
    return change(name, f"{reason}: start {rid} in slot {new}, health-check {ctx.cfg.app.health_path}")

