"""Errors raised by injectors; the engine translates them into its own tree at the call site.

Protocol clients raise `clients.errors.ClientError`; the engine treats both trees as a fault that
could not be put in place or undone.
"""

from __future__ import annotations

from clients.errors import NotFoundError


class InjectorError(Exception):
    """Base of every error an injector raises on purpose."""


class TargetNotFoundError(InjectorError, NotFoundError):
    """The fault names a target, link or instance the stack description does not have."""


class SelectionError(InjectorError):
    """The selection (role, name, count, percent) matches nothing or is impossible."""


class InjectionError(InjectorError):
    """The fault could not be put in place."""


class RollbackError(InjectorError):
    """The fault could not be undone."""


class FaultStillPresentError(RollbackError):
    """Verification after rollback found the fault (or its effect) still in place."""
