"""Time, injectable: the `Clock` every wait loop reads, the real `SYSTEM` clock, and `wait_until`.

Code that waits for a condition takes a clock instead of calling `time`
directly, so a unit test can pass a fake one whose sleep returns at once and
moves its time on (tests/fakehost.py: FakeClock): a deadline of 30 s is then
tested in microseconds, and its expiry too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and durations)."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime:
        """The wall-clock time, timezone-aware UTC (for names and records, never for deadlines)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM: Clock = SystemClock()


class WaitTimeout(Exception):
    """The condition did not hold before the deadline; `last` is the last value it returned."""

    def __init__(self, what: str, timeout: float, polls: int, last: object):
        super().__init__(f"gave up waiting after {timeout:g} s ({polls} checks): {what}")
        self.what, self.timeout, self.polls, self.last = what, timeout, polls, last


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    what: str,
    clock: Clock = SYSTEM,
) -> T:
    """Call check until it returns something truthy, and return that; WaitTimeout at the deadline.

    check runs at least once, and once more at the deadline itself, so a
    condition that becomes true while the last interval passes is not missed.
    """
    deadline = clock.monotonic() + timeout
    polls = 0
    while True:
        value = check()
        polls += 1
        if value:
            return value
        left = deadline - clock.monotonic()
        if left <= 0:
            raise WaitTimeout(what, timeout, polls, value)
        clock.sleep(min(interval, left))
