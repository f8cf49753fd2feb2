"""Steps: the small units that a deploy is made of, each one decide-then-apply.

A step reads facts and *decides*: a `Decision` that says "change" (with the
reason and, for files, a diff), "unchanged" or "skip", each with its reason.
Then, only for a change, it *applies*. `up`, `deploy`, `rollback` and a restart
are lists of steps (workflows/up.py); `--plan` runs the same decisions and
stops before applying, so what it prints is what `up` then does.

A decision may record what it found in the shared `Context` (the release id,
the slot a cut-over goes to) so that later decisions see the outcome of the
earlier ones in a plan exactly as in a real run.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from garrison.clock import SYSTEM, Clock
from garrison.config import Config
from garrison.hosts import Executor
from garrison.layout import Layout, ToolLayout
from garrison.project import Project
from garrison.state import AppOnHost, HostFacts
from garrison.workflows import CHANGED, SKIPPED, UNCHANGED, Run

Action = Literal["change", "unchanged", "skip"]


@dataclass
class Decision:
    step: str
    action: Action
    reason: str
    diff: list[str] = field(default_factory=list)
    data: Any = None  # what apply needs (never shown)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "action": self.action, "reason": self.reason, "diff": "".join(self.diff)}


def change(step: str, reason: str, diff: list[str] | None = None, data: Any = None) -> Decision:
    return Decision(step, "change", reason, diff or [], data)


def unchanged(step: str, reason: str, data: Any = None) -> Decision:
    return Decision(step, "unchanged", reason, [], data)


def skip(step: str, reason: str) -> Decision:
    return Decision(step, "skip", reason)


def file_diff(path: str, old: bytes | None, new: str) -> list[str]:
    old_lines = (old or b"").decode(errors="replace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old_lines, new.splitlines(keepends=True), f"{path} (on host)", f"{path} (new)"))
    return [ln if ln.endswith("\n") else ln + "\n" for ln in lines]


@dataclass
class Cutover:
    """A new slot takes the traffic: which slot, running what, and why."""

    new: str
    rid: str
    fingerprint: str
    reason: str


@dataclass
class Context:
    """What one run of a workflow knows: the app on the host, and what earlier steps decided."""

    project: Project
    host: Executor
    run: Run
    clock: Clock = SYSTEM
    tool: ToolLayout = field(default_factory=ToolLayout)
    wheelhouse: Path | None = None
    planning: bool = False
    facts: HostFacts | None = None
    state: dict[str, Any] = field(default_factory=dict)
    live: str | None = None  # the slot nginx serves from when the run began
    rid: str | None = None  # the release this run makes live
    new_release: bool = False  # rid is copied by this run (with its .venv link)
    reqhash: str | None = None
    cutover: Cutover | None = None
    slot_decision: Decision | None = None  # decided once: the hook needs it before the slot step
    serving: str | None = None  # the slot serving after the slot step
    rollback_to: str | None = None
    rollback: bool = False
    restart: str | None = None  # a restart of the current release, and why
    changed_files: dict[str, bool] = field(default_factory=dict)
    lock: tuple[Any, ...] | None = None  # (the app's LockPlan or None,), read once

    @property
    def cfg(self) -> Config:
        return self.project.config

    @property
    def L(self) -> Layout:
        return Layout.of(self.cfg)

    @property
    def app(self) -> AppOnHost:
        return AppOnHost(self.cfg, self.host, self.tool)

    @property
    def hf(self) -> HostFacts:
        assert self.facts is not None, "the system step reads the host's facts first"
        return self.facts


class Step(Protocol):
    name: str

    def what(self, ctx: Context) -> str: ...

    def decide(self, ctx: Context) -> Decision: ...

    def apply(self, ctx: Context, decision: Decision) -> str:
        """Make the change; returns the detail line `up` prints."""
        ...


def execute(ctx: Context, steps: list[Step]) -> list[Decision]:
    """Decide each step, then apply it (unless planning); report every outcome to ctx.run.

    A step with a `check` (health) runs it on every real run: it changes nothing."""
    decisions: list[Decision] = []
    for step in steps:
        if ctx.planning:
            decisions.append(step.decide(ctx))
            continue
        try:
            d = step.decide(ctx)
        except BaseException:
            with ctx.run.step(step.name, step.name):
                raise
        decisions.append(d)
        with ctx.run.step(step.name, step.what(ctx)) as result:
            result.detail = d.reason
            if d.action == "change":
                result.detail = step.apply(ctx, d) or d.reason
                result.status = CHANGED
            else:
                result.status = SKIPPED if d.action == "skip" else UNCHANGED
            check = getattr(step, "check", None)
            if check is not None:
                result.detail = check(ctx)
    return decisions
