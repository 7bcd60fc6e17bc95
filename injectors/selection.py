"""Which instances of a target a fault hits: by role, by name, all, a count or a percentage."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from injectors.errors import SelectionError

T = TypeVar("T")


class Selection(BaseModel):
    """Filters (`role`, `name`) narrow the instances; then `all`, `count` or `percent` picks among them.

    With no picker, one instance is chosen at random; the run's seed makes the choice repeatable.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    role: str | None = Field(default=None, description="Live role reported by the instance, e.g. 'leader'.")
    name: str | None = Field(default=None, description="Exact instance name, e.g. 'matcher-2'.")
    all: bool = Field(default=False, description="Every matching instance.")
    count: int | None = Field(default=None, ge=1, description="This many matching instances, at random.")
    percent: float | None = Field(
        default=None, gt=0, le=100, description="This share of matching instances (rounded up), at random."
    )

    @model_validator(mode="after")
    def _one_picker(self) -> Self:
        pickers = [self.all, self.count is not None, self.percent is not None]
        if sum(pickers) > 1:
            raise ValueError("choose at most one of 'all', 'count' and 'percent'")
        return self


def select(
    items: Sequence[T],
    selection: Selection | None,
    rng: random.Random,
    *,
    name_of: Callable[[T], str],
    role_of: Callable[[T], str | None],
) -> list[T]:
    """Apply `selection` to `items`; raises SelectionError when nothing matches."""
    sel = selection or Selection()
    pool = list(items)
    if sel.name is not None:
        pool = [item for item in pool if name_of(item) == sel.name]
        if not pool:
            known = ", ".join(name_of(item) for item in items)
            raise SelectionError(f"no instance named {sel.name!r}; instances are: {known}")
    if sel.role is not None:
        roles = {name_of(item): role_of(item) for item in pool}
        pool = [item for item in pool if roles[name_of(item)] == sel.role]
        if not pool:
            seen = ", ".join(f"{name}={role or 'unknown'}" for name, role in roles.items())
            raise SelectionError(f"no instance has role {sel.role!r} right now ({seen})")
    if sel.all:
        return pool
    by_share = sel.percent is not None
    wanted = max(1, math.ceil(len(pool) * (sel.percent or 0) / 100.0)) if by_share else sel.count or 1
    if wanted > len(pool):
        raise SelectionError(f"asked for {wanted} instance(s) but only {len(pool)} match")
    return rng.sample(pool, wanted)
