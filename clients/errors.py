"""Errors the protocol clients raise; callers (injectors, the reference stack) translate them at their edge."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error a protocol client raises on purpose: the peer refused, was unreachable or odd."""


class NotFoundError(ClientError):
    """The peer does not have the named thing (container, pod, key, node)."""


class NotSettledError(ClientError):
    """The peer did not reach the wanted state in time (no primary yet, no leader, not healthy)."""
