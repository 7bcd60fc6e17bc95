"""Fixtures the engine tests of a user's own system share (stack check, discover): a real sshd on loopback
and processes started for one test, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.injectors.sshd_server import Sshd, start_sshd
from tests.support.own_processes import Started, started_processes


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def started() -> Iterator[Started]:
    with started_processes() as processes:
        yield processes
