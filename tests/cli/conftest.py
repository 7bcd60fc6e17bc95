"""Fixtures of the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli_world import end_world, new_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A web server (the load's target, never faulted) and a group of two services to fault."""
    state = new_world(tmp_path)
    yield state
    end_world(state)
