"""Target selection: filters, pickers, seeded randomness, clear errors."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from injectors.errors import SelectionError
from injectors.selection import Selection, select

NAMES = [f"m-{i}" for i in range(1, 11)]
ROLES = {"m-1": "leader", **{n: "follower" for n in NAMES[1:]}}


def pick(selection: Selection | None, seed: int = 1) -> list[str]:
    return select(NAMES, selection, random.Random(seed), name_of=str, role_of=ROLES.get)


@pytest.mark.parametrize(
    ("selection", "count"),
    [
        (None, 1),
        (Selection(all=True), 10),
        (Selection(count=3), 3),
        (Selection(percent=30), 3),
        (Selection(percent=1), 1),
        (Selection(role="follower", all=True), 9),
        (Selection(role="leader"), 1),
    ],
)
def test_counts(selection: Selection | None, count: int) -> None:
    assert len(pick(selection)) == count


def test_role_and_name_filters() -> None:
    assert pick(Selection(role="leader")) == ["m-1"]
    assert pick(Selection(name="m-4")) == ["m-4"]
    assert "m-1" not in pick(Selection(role="follower", all=True))


def test_same_seed_same_choice_other_seed_can_differ() -> None:
    assert pick(Selection(count=3), seed=42) == pick(Selection(count=3), seed=42)
    assert len({tuple(pick(Selection(count=3), seed=s)) for s in range(20)}) > 1


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(role="observer"), "no instance has role 'observer' right now (m-1=leader"),
        (Selection(name="m-99"), "no instance named 'm-99'"),
        (Selection(count=11), "asked for 11 instance(s) but only 10 match"),
    ],
)
def test_errors(selection: Selection, message: str) -> None:
    with pytest.raises(SelectionError) as info:
        pick(selection)
    assert message in str(info.value)


def test_one_picker_only() -> None:
    with pytest.raises(ValidationError, match="at most one"):
        Selection(all=True, count=2)
