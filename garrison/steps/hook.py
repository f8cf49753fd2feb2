"""Steps `hook` and `post_deploy`: the app's own commands around a cut-over.

`hooks.release` runs in the new release before it starts (migrations,
collectstatic): a failure aborts with the old slot still serving.
`hooks.post_deploy` runs once the new release is live.
Both run as the app user with the release's venv and the app's env file; the
secrets reach them through garrison-exec, never through an argv.
"""

from __future__ import annotations

import json
import posixpath

from garrison import commands as C
from garrison import diagnose as D
from garrison.errors import DeployError
from garrison.steps import Context, Decision, change, skip
from garrison.steps.slot import decide_slot
from garrison.steps.slots import kept_note


def run_hook(ctx: Context, name: str, command: str, rid: str, slot: str) -> None:
    h, L = ctx.host, ctx.L
    release = L.release(rid)
    env = {
        "PATH": f"{release}/.venv/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": L.base,
        "VIRTUAL_ENV": f"{release}/.venv",
        "GARRISON_RELEASE": rid,
        "GARRISON_SLOT": slot,
        "GARRISON_HOOK": name,
    }
    res = h.run(C.as_app_shell(ctx.tool, L.env_file, ctx.cfg.user, release, env, command), check=False, timeout=1800)
    if not res.ok:
        text = res.stderr.strip() or res.stdout.strip()
        out = text.splitlines()[-15:]
        fix = D.write_failure_fix(text)
        raise DeployError(f"the {name} hook `{command}` exited {res.returncode} in release {rid}\n"
                          + "\n".join("  " + ln for ln in out) + (f"\nfix: {fix}" if fix else ""))


class ReleaseHook:
    name = "hook"

    def what(self, ctx: Context) -> str:
        return f"release hook in {ctx.rid}"

    def decide(self, ctx: Context) -> Decision:
        command = ctx.cfg.hooks.release
        if not command:
            return skip(self.name, "no hooks.release")
        decide_slot(ctx)
        if ctx.cutover is None:
            return skip(self.name, "no new slot to prepare")
        return change(self.name, f"run `{command}` in {ctx.cutover.rid}")

    def apply(self, ctx: Context, decision: Decision) -> str:
        cut, command = ctx.cutover, ctx.cfg.hooks.release
        assert cut is not None and command
        try:
            # The release is root-owned, but the hook may have to fill the static folders
            # nginx serves (Django's collectstatic into STATIC_ROOT): the missing ones are
            # created for the app user first.
            for static in ctx.cfg.app.static:
                folder = posixpath.join(ctx.L.release(cut.rid), static.path)
                if not ctx.host.exists(folder):
                    ctx.host.ensure_dir(folder, mode=0o755, owner=ctx.cfg.user, group=ctx.cfg.user)
            run_hook(ctx, "release", command, cut.rid, cut.new)
        except DeployError as exc:
            raise DeployError(f"{exc}; {kept_note(ctx)}") from None
        return f"`{command}` succeeded"


def first_deploy_marker(ctx: Context) -> str:
    # In shared/, beside the data it made: `down --purge` removes both, and then it runs again.
    return posixpath.join(ctx.L.shared, ".garrison-first-deploy")


class FirstDeployHook:
    """`hooks.first_deploy` (flask init-db): once per app, before its first release takes
    traffic; never again while the app's data (shared/) exists."""

    name = "first_deploy"

    def what(self, ctx: Context) -> str:
        return "first-deploy hook (once per app)"

    def decide(self, ctx: Context) -> Decision:
        command = ctx.cfg.hooks.first_deploy
        if not command:
            return skip(self.name, "no hooks.first_deploy")
        if ctx.host.exists(first_deploy_marker(ctx)):
            return skip(self.name, f"ran once already ({first_deploy_marker(ctx)})")
        return change(self.name, f"run `{command}` once, in {ctx.rid}")

    def apply(self, ctx: Context, decision: Decision) -> str:
        command = ctx.cfg.hooks.first_deploy
        assert command and ctx.rid
        decide_slot(ctx)
        slot = ctx.cutover.new if ctx.cutover else (ctx.live or "blue")
        try:
            run_hook(ctx, "first_deploy", command, ctx.rid, slot)
        except DeployError as exc:
            raise DeployError(f"{exc}; {kept_note(ctx)}") from None
        record = {"command": command, "release": ctx.rid, "at": ctx.clock.now().isoformat(timespec="seconds")}
        ctx.host.write_file(first_deploy_marker(ctx), (json.dumps(record) + "\n").encode(), mode=0o600)
        return f"`{command}` succeeded; it will not run again while {ctx.L.shared} exists"


class PostDeployHook:
    name = "post_deploy"

    def what(self, ctx: Context) -> str:
        return "post-deploy hook"

    def decide(self, ctx: Context) -> Decision:
        command = ctx.cfg.hooks.post_deploy
        if not command:
            return skip(self.name, "no hooks.post_deploy")
        if ctx.cutover is None:
            return skip(self.name, "no new release went live")
        return change(self.name, f"run `{command}` after the cut-over")

    def apply(self, ctx: Context, decision: Decision) -> str:
        cut, command = ctx.cutover, ctx.cfg.hooks.post_deploy
        assert cut is not None and command
        try:
            run_hook(ctx, "post_deploy", command, cut.rid, cut.new)
        except DeployError as exc:
            raise DeployError(f"{exc}; release {cut.rid} is live and serving (the hook ran after the cut-over)") from None
        return f"`{command}` succeeded"
