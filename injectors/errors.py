"""The injectors' error tree, and the one place protocol clients' errors are translated into it.

Protocol clients raise `clients.errors.ClientError`; the engine catches only `InjectorError`. A client
error that escapes an injector step is translated at the injector's edge (`Injector.resolve`, `inject`,
`rollback`, `verify_gone`) with `raise ... from exc`, so the client's error stays the `__cause__`:

| step | `NotFoundError` | `NotSettledError` | any other `ClientError` |
|---|---|---|---|
| resolve | `TargetNotFoundError` | `InjectionError` | `InjectionError` |
| inject | `InjectionError` | `InjectionError` | `InjectionError` |
| rollback, verify | `RollbackError` | `FaultStillPresentError` | `RollbackError` |

A failure on one target inside a step is not raised at all: it is recorded in that target's result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from clients.errors import ClientError, NotFoundError, NotSettledError

Step = Literal["resolve", "inject", "rollback", "verify"]


class InjectorError(Exception):
    """Base of every error an injector raises on purpose."""


class TargetNotFoundError(InjectorError):
    """The fault names a target, link or instance the stack description (or the system) does not have."""


class SelectionError(InjectorError):
    """The selection (role, name, count, percent) matches nothing or is impossible."""


class InjectionError(InjectorError):
    """The fault could not be put in place."""


class RollbackError(InjectorError):
    """The fault could not be undone."""


class FaultStillPresentError(RollbackError):
    """Verification after rollback found the fault (or its effect) still in place."""


def translation(step: Step, exc: ClientError) -> type[InjectorError]:
    """The injector error a client error escaping `step` becomes (the table above)."""
    if step == "resolve":
        return TargetNotFoundError if isinstance(exc, NotFoundError) else InjectionError
    if step == "inject":
        return InjectionError
    return FaultStillPresentError if isinstance(exc, NotSettledError) else RollbackError


@contextmanager
def absent_is_not_found(what: str) -> Iterator[None]:
    """A client error with HTTP status 404 inside the block means `what` does not exist: TargetNotFoundError."""
    try:
        yield
    except ClientError as exc:
        if getattr(exc, "status", None) != 404:
            raise
        raise TargetNotFoundError(f"{what} does not exist ({exc})") from exc


@contextmanager
def translated(step: Step) -> Iterator[None]:
    """Re-raise a `ClientError` escaping the block as the injector error `translation` names."""
    try:
        yield
    except ClientError as exc:
        raise translation(step, exc)(str(exc)) from exc
