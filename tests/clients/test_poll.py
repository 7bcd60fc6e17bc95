"""The one poll-until helper: what it returns, when it gives up, and what its timeout says — on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from clients.errors import ClientError, NotSettledError
from clients.poll import PollTimeout, poll_until, poll_value, wait_stable

T = TypeVar("T")


class FakeClock:
    """Time that moves only when the code under test sleeps (or a look takes `look_s`)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answers(clock: FakeClock, *given: T, look_s: float = 0.0) -> Callable[[], T]:
    """A look that gives `given` in turn, then repeats the last one; each look takes `look_s`."""
    queue = list(given)

    def look() -> T:
        clock.now += look_s
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return look


def test_the_first_good_look_ends_the_wait_with_its_value_and_the_time_waited() -> None:
    clock = FakeClock()
    look = answers(clock, ("503", None), ("still 503", None), (None, "leader"))
    value, waited = poll_until(look, 5.0, 0.5, "healthy", clock=clock, sleep=clock.sleep)
    assert (value, waited, clock.sleeps) == ("leader", 1.0, [0.5, 0.5])


def test_it_looks_once_even_with_no_time_at_all() -> None:
    clock = FakeClock()
    assert poll_until(answers(clock, (None, 7)), 0.0, 1.0, "there", clock=clock, sleep=clock.sleep) == (7, 0.0)
    with pytest.raises(PollTimeout, match=r"^not there after 0s: nope$"):
        poll_until(answers(clock, ("nope", None)), 0.0, 1.0, "there", clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_the_timeout_says_what_was_awaited_and_the_last_reason() -> None:
    clock = FakeClock()
    look = answers(clock, ("connection refused", None), ("GET /health answered 503", None))
    with pytest.raises(PollTimeout) as caught:
        poll_until(look, 2.0, 0.5, "healthy", clock=clock, sleep=clock.sleep)
    error = caught.value
    assert str(error) == "not healthy after 2s: GET /health answered 503"
    assert (error.what, error.timeout_s, error.last, error.waited_s) == (
        "healthy",
        2.0,
        "GET /health answered 503",
        2.0,
    )
    assert clock.sleeps == [0.5] * 4  # looks at 0, 0.5, 1, 1.5 and 2 s: the last one at the bound


def test_the_time_a_look_takes_counts_against_the_timeout() -> None:
    clock = FakeClock()
    with pytest.raises(PollTimeout) as caught:
        poll_until(answers(clock, ("slow", None), look_s=1.5), 2.0, 0.1, "quick", clock=clock, sleep=clock.sleep)
    assert caught.value.waited_s == pytest.approx(3.1) and clock.sleeps == [0.1]


def test_the_timeout_is_a_timeout_error_and_a_client_error_callers_already_catch() -> None:
    assert issubclass(PollTimeout, TimeoutError) and issubclass(PollTimeout, NotSettledError)
    assert issubclass(PollTimeout, ClientError)
    clock = FakeClock()
    for caught in (TimeoutError, NotSettledError):
        with pytest.raises(caught):
            poll_until(answers(clock, ("no", None)), 0.2, 0.1, "yes", clock=clock, sleep=clock.sleep)


def test_a_look_that_raises_fails_at_once() -> None:
    clock = FakeClock()

    def gone() -> tuple[str | None, None]:
        raise ProcessLookupError("pid 42 is gone")

    with pytest.raises(ProcessLookupError, match="pid 42 is gone"):
        poll_until(gone, 10.0, 0.1, "back", clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_poll_value_waits_for_a_value_and_names_what_is_pending() -> None:
    clock = FakeClock()
    value, waited = poll_value(
        answers(clock, None, None, "matcher-2"), 5.0, 0.25, "a leader", clock=clock, sleep=clock.sleep
    )
    assert (value, waited) == ("matcher-2", 0.5)
    with pytest.raises(PollTimeout, match=r"^not a leader after 1s: nobody leads$"):
        poll_value(answers(clock, None), 1.0, 0.25, "a leader", pending="nobody leads", clock=clock, sleep=clock.sleep)


def test_wait_stable_needs_the_same_good_state_seen_often_enough_for_the_whole_window() -> None:
    clock = FakeClock()
    look = answers(clock, (None, "follower"), ("503", None), (None, "candidate"), (None, "follower"))
    state, waited = wait_stable(look, 10.0, window_s=1.0, poll_s=0.25, looks=4, clock=clock, sleep=clock.sleep)
    # Good from the 4th look (0.75 s) on; held for 1 s and 5 looks at 1.75 s.
    assert (state, waited) == ("follower", 1.75)


def test_wait_stable_says_how_long_the_good_state_held_and_what_came_before() -> None:
    clock = FakeClock()
    flapping = answers(clock, (None, "leader"), (None, "follower"), *([(None, "follower")] * 3))
    with pytest.raises(PollTimeout) as caught:
        wait_stable(flapping, 0.5, window_s=1.0, poll_s=0.25, clock=clock, sleep=clock.sleep)
    assert str(caught.value) == (
        "not stable for 1s after 0.5s: good for only 0.2s (before that: changed from 'leader' to 'follower' within 1s)"
    )
    clock = FakeClock()
    with pytest.raises(PollTimeout, match=r"^not stable for 1s after 0\.5s: GET /health answered 503$"):
        wait_stable(answers(clock, ("GET /health answered 503", None)), 0.5, clock=clock, sleep=clock.sleep)


def test_wait_stable_accepts_a_settled_state_of_none() -> None:
    """A process without a role URL is stable with no role: None is a state, not a problem."""
    clock = FakeClock()
    state, waited = wait_stable(
        answers(clock, (None, None)), 5.0, window_s=0.5, poll_s=0.25, looks=3, clock=clock, sleep=clock.sleep
    )
    assert (state, waited) == (None, 0.5)
