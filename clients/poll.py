"""Poll until something holds: the one wait loop of the clients and the reference stack, with one timeout error.

A look answers `(problem, value)`: `problem` None means done and `value` is the result; otherwise
`problem` says, in a few words, why not yet — the last one is what the timeout names. A look may
raise to fail at once (the process is gone: waiting cannot help); that error goes through unchanged.
`poll_value` is the same for a look that answers a value, or None while there is none yet.

Verification never trusts one good answer: `wait_stable` polls until the same healthy state has
held for `STABLE_WINDOW_S`. A resumed process can answer 200 and, milliseconds later, notice that
its ZooKeeper session expired; a Redis set can look whole for a moment while Sentinel is still
failing over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar, cast

from clients.errors import NotSettledError

T = TypeVar("T")

# A verified state must hold, unchanged and healthy, for this long, seen at least STABLE_LOOKS times in
# a row (one look every STABLE_POLL_S). Long enough to see a resumed client drop its dead ZooKeeper
# connection and learn that its session expired (milliseconds to a few hundred here, even under load),
# short enough to add about a second to each verification.
STABLE_WINDOW_S = 1.0
STABLE_POLL_S = 0.2
STABLE_LOOKS = 4


class PollTimeout(NotSettledError, TimeoutError):
    """What was awaited did not happen within the timeout; carries the last reason the look gave.

    A `NotSettledError` (a client error: injectors translate it) and a `TimeoutError`, so callers that
    catch either keep working.
    """

    def __init__(self, what: str, timeout_s: float, last: str, waited_s: float) -> None:
        super().__init__(f"not {what} after {timeout_s:g}s: {last}")
        self.what = what
        self.timeout_s = timeout_s
        self.last = last
        self.waited_s = waited_s


def poll_until(
    look: Callable[[], tuple[str | None, T]],
    timeout_s: float,
    poll_s: float,
    what: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, float]:
    """Call `look` every `poll_s` until it names no problem; its value and the seconds waited.

    Looks at least once, even with a timeout of 0. Raises PollTimeout — "not {what} after {timeout_s}s:
    {last problem}" — once `timeout_s` has passed since the start without a look that holds.
    """
    started = clock()
    while True:
        problem, value = look()
        waited = clock() - started
        if problem is None:
            return value, waited
        if waited >= timeout_s:
            raise PollTimeout(what, timeout_s, problem, waited)
        sleep(poll_s)


def poll_value(
    look: Callable[[], T | None],
    timeout_s: float,
    poll_s: float,
    what: str,
    *,
    pending: str = "not yet",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, float]:
    """`poll_until` for a look that answers a value once there is one (None before); `pending` is the reason."""

    def answered() -> tuple[str | None, T | None]:
        value = look()
        return (None, value) if value is not None else (pending, None)

    value, waited = poll_until(answered, timeout_s, poll_s, what, clock=clock, sleep=sleep)
    assert value is not None  # a look without a problem answered a value
    return value, waited


def wait_stable(
    observe: Callable[[], tuple[str | None, T]],
    timeout_s: float,
    *,
    window_s: float = STABLE_WINDOW_S,
    poll_s: float = STABLE_POLL_S,
    looks: int = STABLE_LOOKS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, float]:
    """Poll `observe` (a problem or None, and the state seen) until no problem and the same state for `window_s`.

    Returns that state and the seconds waited (to the millisecond); raises PollTimeout ("not stable for
    {window_s}s after {timeout_s}s: ...") with the last problem, the state changes, or how long the last
    good state held. `observe` may raise to fail at once (e.g. the process is gone: waiting cannot help).
    """
    since: float | None = None  # when the current good state was first seen
    seen = 0
    state: T | None = None
    last = "never observed"

    def look() -> tuple[str | None, T | None]:
        nonlocal since, seen, state, last
        now = clock()
        reason, current = observe()
        if reason is not None:
            since, seen, last = None, 0, reason
            return reason, None
        if since is not None and current == state:
            seen += 1
        else:
            if since is not None:
                last = f"changed from {state!r} to {current!r} within {window_s:g}s"
            since, seen, state = now, 1, current
        if seen >= looks and now - since >= window_s:
            return None, current
        earlier = f" (before that: {last})" if last != "never observed" else ""
        return f"good for only {now - since:.1f}s{earlier}", None

    settled, waited = poll_until(look, timeout_s, poll_s, f"stable for {window_s:g}s", clock=clock, sleep=sleep)
    return cast(T, settled), round(waited, 3)  # a look without a problem returns the state (which may be None)
