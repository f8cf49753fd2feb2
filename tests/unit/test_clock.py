"""garrison/clock.py: the system clock, and wait_until's deadline on a fake clock (no real waiting)."""

from __future__ import annotations

import pytest

from garrison.clock import SYSTEM, WaitTimeout, wait_until
from tests.fakehost import FakeClock


def test_system_clock_is_utc_and_monotonic():
    a = SYSTEM.monotonic()
    assert SYSTEM.monotonic() >= a
    assert SYSTEM.now().utcoffset().total_seconds() == 0


def test_wait_until_returns_the_first_truthy_answer_sleeping_between_checks():
    clock = FakeClock()
    answers = iter([None, [], "ready"])
    assert wait_until(lambda: next(answers), timeout=5, interval=0.1, what="x", clock=clock) == "ready"
    assert clock.slept == [0.1, 0.1]


def test_wait_until_checks_once_more_at_the_deadline_and_then_gives_up():
    clock = FakeClock()
    seen: list[float] = []

    def check():
        seen.append(clock.monotonic() - clock.start)
        return None

    with pytest.raises(WaitTimeout) as exc:
        wait_until(check, timeout=1, interval=0.4, what="sshd to listen again", clock=clock)
    assert seen == pytest.approx([0, 0.4, 0.8, 1.0])  # the last sleep is cut to the deadline
    assert str(exc.value) == "gave up waiting after 1 s (4 checks): sshd to listen again"
    assert exc.value.polls == 4 and exc.value.last is None


def test_wait_until_sees_a_condition_that_turns_true_at_the_deadline():
    clock = FakeClock()
    assert wait_until(lambda: clock.monotonic() - clock.start >= 1, timeout=1, interval=0.3, what="x", clock=clock)


def test_wait_until_counts_time_spent_in_the_check_itself():
    clock = FakeClock()

    def slow_check():
        clock.advance(0.7)  # e.g. a command over SSH
        return False

    with pytest.raises(WaitTimeout) as exc:
        wait_until(slow_check, timeout=1, interval=0.1, what="x", clock=clock)
    assert exc.value.polls == 2  # 0.7 s, sleep 0.1, 1.5 s: past the deadline
