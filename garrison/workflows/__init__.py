"""Orchestration over a host: provision, release, service manager, nginx, health.

Workflows read state through an executor, compare it with what the config
wants and change only what differs. They never print: they report each step's
outcome to a `Reporter`, which the CLI renders.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

CHANGED = "changed"
UNCHANGED = "unchanged"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass
class StepResult:
    name: str
    status: str = UNCHANGED
    detail: str = ""
    seconds: float = 0.0


class Reporter(Protocol):
    def start(self, name: str, what: str) -> None: ...

    def done(self, result: StepResult) -> None: ...

    def note(self, text: str) -> None: ...


class NullReporter:
    def start(self, name: str, what: str) -> None:
        pass

    def done(self, result: StepResult) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class Run:
    """The steps of one workflow run, for the summary and for tests."""

    reporter: Reporter = field(default_factory=NullReporter)
    steps: list[StepResult] = field(default_factory=list)

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[StepResult]:
        result = StepResult(name)
        self.reporter.start(name, what)
        t0 = time.monotonic()
        try:
            yield result
        except BaseException as exc:
            result.status = FAILED
            result.detail = result.detail or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        finally:
            result.seconds = time.monotonic() - t0
            self.steps.append(result)
            self.reporter.done(result)

    @property
    def changed(self) -> bool:
        return any(s.status == CHANGED for s in self.steps)
