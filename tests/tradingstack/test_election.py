"""Matching-engine election for real: a follower whose session expired rejoins; a stuck candidate is unhealthy."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE, make_acl, make_digest_acl

from clients import http
from clients.procs import role_of
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan
from injectors.process.common import verify_instance
from injectors.zookeeper.expire_session import ZooKeeperExpireSessionInjector, ZooKeeperExpireSessionSpec
from stackspec.targets import ProcessInstance, ProcessTarget
from tests.support.helpers import require_programs
from tests.tradingstack.support import wait_for
from tradingstack.election import ELECTION_PATH
from tradingstack.launcher import read_state, stack_status, start_stack, stop_stack
from tradingstack.matcher import CANDIDATE_GRACE_S

pytestmark = [pytest.mark.infra, pytest.mark.slow]

SESSION_TIMEOUT_S = 2.0  # the stack's default
PAUSE_S = SESSION_TIMEOUT_S + 1.5  # past the session timeout: ZooKeeper expires the session meanwhile


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_programs("redis-server", "java")
    directory = tmp_path_factory.mktemp("election")
    try:
        start_stack(directory, session_timeout_s=SESSION_TIMEOUT_S)
        yield directory
    finally:
        stop_stack(directory)


def matchers(directory: Path) -> list[ProcessInstance]:
    description = read_state(directory)
    assert description is not None
    target = description.targets["matcher"]
    assert isinstance(target, ProcessTarget)
    return target.instances


def the_follower(directory: Path) -> ProcessInstance:
    (follower,) = [m for m in matchers(directory) if role_of(m) == "follower"]
    return follower


def health_of(instance: ProcessInstance) -> tuple[int, bytes]:
    assert instance.health is not None and hasattr(instance.health, "http")
    return http.get(instance.health.http, 1.0)


def status_row_problem(directory: Path, name: str) -> str | None:
    (row,) = [r for r in stack_status(directory) if r.instance == name]
    return None if row.healthy else row.problem or "unhealthy"


def paused_past_its_session(follower: ProcessInstance) -> float:
    """SIGSTOP for PAUSE_S, then SIGCONT; returns when it was resumed (monotonic)."""
    assert follower.pid is not None
    os.kill(follower.pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        os.kill(follower.pid, signal.SIGCONT)
    return time.monotonic()


def sessions_lost(instance: ProcessInstance) -> int:
    assert instance.log is not None
    return Path(instance.log).read_text().count("zookeeper session LOST")


def test_a_follower_resumed_after_its_session_expired_rejoins_as_follower(stack: Path) -> None:
    follower = the_follower(stack)
    lost = sessions_lost(follower)
    paused_past_its_session(follower)
    # Right after SIGCONT it still answers as before (it has not noticed yet); then it learns that its
    # session expired (LOST), gets a new one and must queue again: a follower, healthy, and staying so.
    back = verify_instance(follower, timeout_s=15)
    assert back["role"] == "follower", back
    assert sessions_lost(follower) == lost + 1, "the pause did not expire the session"
    assert status_row_problem(stack, follower.name) is None
    time.sleep(CANDIDATE_GRACE_S + 0.5)  # and not for a moment only
    assert role_of(follower) == "follower" and status_row_problem(stack, follower.name) is None
    assert {role_of(m) for m in matchers(stack)} == {"leader", "follower"}


def test_a_candidate_that_cannot_rejoin_is_unhealthy_in_health_and_status(stack: Path) -> None:
    description = read_state(stack)
    assert description is not None
    follower = the_follower(stack)
    admin = KazooClient(hosts=description.endpoints["zookeeper"], auth_data=[("digest", "chaos:drill")], timeout=5)
    admin.start(timeout=10)
    try:
        # ZooKeeper refuses new queue nodes: a follower whose session expires cannot queue again.
        admin.set_acls(
            ELECTION_PATH, [make_digest_acl("chaos", "drill", all=True), make_acl("world", "anyone", read=True)]
        )
        try:
            resumed = paused_past_its_session(follower)
            # Connected, Redis fine, but a candidate: healthy in every other way, not in the election.
            wait_for(
                f"{follower.name}'s health to say it is not in the election",
                lambda: b"not in the election" in health_of(follower)[1],
                timeout_s=15,
            )
            assert time.monotonic() - resumed >= CANDIDATE_GRACE_S - 0.5  # not before the grace
            status, body = health_of(follower)
            assert status == 503 and b"candidate" in body, body
            assert role_of(follower) == "candidate"
            reason = status_row_problem(stack, follower.name)
            assert reason is not None and "candidate" in reason, reason
        finally:
            admin.set_acls(ELECTION_PATH, OPEN_ACL_UNSAFE)
        # Once ZooKeeper lets it queue again, it rejoins by itself.
        assert verify_instance(follower, timeout_s=15)["role"] == "follower"
        assert status_row_problem(stack, follower.name) is None
    finally:
        admin.stop()
        admin.close()


def test_expire_session_is_verified_gone_only_once_the_engine_is_back_in_the_election(stack: Path) -> None:
    description = read_state(stack)
    assert description is not None
    live = LiveStack(description, stack / "state.json")
    ctx = EngineContext("election-test", live, seed=1, bus=EventBus())
    follower = the_follower(stack)
    injector = ZooKeeperExpireSessionInjector(ZooKeeperExpireSessionSpec(client=follower.name))
    refs = injector.resolve("matcher->zookeeper", None, ctx)
    plan = FaultPlan(kind=injector.kind, target="matcher->zookeeper", params=injector.spec.model_dump(), targets=refs)
    lost = sessions_lost(follower)
    assert all(r.ok for r in injector.inject(plan, ctx))
    # Past the session timeout (ZooKeeper expires the session), then the rollback brings the links back.
    time.sleep(SESSION_TIMEOUT_S + 1.0)
    assert all(r.ok for r in injector.rollback(plan, ctx))
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    # At the moment verification says "gone", the engine is back: new session, follower, healthy.
    assert (role_of(follower), health_of(follower)[0]) == ("follower", 200)
    assert sessions_lost(follower) == lost + 1, "the session did not expire"
    assert verified.detail["client_verified"]["role"] == "follower"
