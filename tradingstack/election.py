"""Leader election of matching engines through ZooKeeper, on its own thread, plus the leader znode.

Not kazoo's Election recipe: when a queued engine's session expired (paused past its session timeout),
the recipe's Lock re-queued it silently inside its own retry loop, so nothing ever said "follower"
again and the engine reported "candidate" for as long as the other one led (minutes, in a drill).
Here each round is one node in one session, and the role said is the role held.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError

from tradingstack.service import ZooKeeperSession

log = logging.getLogger(__name__)

ELECTION_PATH = "/trading/matchers/election"
LEADER_PATH = "/trading/matchers/leader"
# Queue nodes are named like kazoo's Lock recipe (`<prefix>__lock__<sequence>`), so kazoo's
# `Election(ELECTION_PATH).contenders()` still lists the queue in order.
_MARK = "__lock__"
# A queued contender looks at the queue at least this often, even when no watch fires: it must never
# depend on one notification to find out that it leads, or that its node went with its session.
RECHECK_S = 1.0
# After a round that failed (leadership refused, ZooKeeper errors), wait this long before the next.
RETRY_S = 1.0
_CONNECTION_TROUBLE = (ConnectionLoss, OperationTimeoutError, SessionExpiredError, KazooTimeoutError)


def parse_leader(data: bytes | None) -> dict[str, Any] | None:
    """The leader znode's JSON {"name","url","epoch"}, or None when absent or unreadable."""
    if not data:
        return None
    try:
        leader = json.loads(data)
    except ValueError:
        return None
    if not isinstance(leader, dict) or not {"name", "url", "epoch"} <= leader.keys():
        return None
    return leader


def _sequence(node: str) -> str:
    return node.rpartition(_MARK)[2]


class LeadershipRefused(Exception):
    """`take_over` could not prepare this matcher to lead (e.g. Redis unreachable); contend again later."""


class _RoundOver(Exception):
    """This round's queue node is gone (the session that owned it was lost) or we are stopping."""


class ElectionThread:
    """Contends for leadership on a dedicated thread, so kazoo never blocks the event loop.

    Each round queues an ephemeral sequential node under ELECTION_PATH; the lowest node leads. A
    session that is lost takes the node with it, so a lost session ends the round and the next one
    queues again in the new session: a participant that was paused past its session timeout rejoins
    as follower (or leader) by itself. `on_role(role)` is told "follower" while our node waits in the
    queue of the current session, "leader" once the leader znode is published and "candidate"
    otherwise. `take_over()` runs once elected and returns the new epoch (raising refuses
    leadership: the round ends and the next one starts after RETRY_S); `can_contend()` gates joining
    the queue (a matcher that cannot reach Redis should not lead).

    Every ZooKeeper call is asynchronous with a timeout: a plain kazoo call blocks for as long as
    the connection is suspended.
    """

    def __init__(
        self,
        session: ZooKeeperSession,
        name: str,
        url: str,
        take_over: Callable[[], int],
        on_role: Callable[[str], None],
        can_contend: Callable[[], bool],
    ) -> None:
        self._session = session
        self._name = name
        self._url = url
        self._take_over = take_over
        self._on_role = on_role
        self._can_contend = can_contend
        self._stopping = threading.Event()
        self._step_down = threading.Event()
        self._wake = threading.Event()
        # Bumped (on kazoo's thread) whenever the session is lost: a round belongs to one generation.
        self._generation = 0
        self._tag = uuid.uuid4().hex  # this process's queue nodes: `<tag>-<round>__lock__<sequence>`
        self._round = 0
        self._leftovers = False  # a node of ours may have outlived its round (a failed create or delete)
        self._thread = threading.Thread(target=self._run, name="election", daemon=True)
        session.add_listener(self._on_session)

    def start(self) -> None:
        self._thread.start()

    def step_down(self) -> None:
        """Give up leadership (fenced, session lost, Redis gone); safe from any thread."""
        self._step_down.set()

    def stop(self) -> None:
        """Leave the election, unpublishing the leader znode if ours. Blocking: call from a thread."""
        self._stopping.set()
        self._step_down.set()
        self._wake.set()
        self._thread.join(timeout=self._session.timeout_s * 2 + 1.0)

    def _on_session(self, state: str) -> None:
        # Runs on kazoo's thread, before any call can reach a new session: the round sees the change.
        if state == "LOST":
            self._generation += 1
            self._step_down.set()
        self._wake.set()

    def _wake_up(self, event: object) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not (self._session.connected and self._can_contend()):
                if self._session.connected and self._leftovers:
                    self._remove_leftovers(keep=None)
                self._stopping.wait(0.1)
                continue
            try:
                self._contend()
            except _RoundOver:
                pass
            except (LeadershipRefused, KazooException, KazooTimeoutError) as exc:
                log.warning("election round ended: %s: %s; contending again soon", type(exc).__name__, exc)
                self._stopping.wait(RETRY_S)
            except Exception:  # kazoo's handler timeout is no KazooException
                log.exception("election round failed; contending again soon")
                self._stopping.wait(RETRY_S)
            self._on_role("candidate")

    def _call(self, result: Any) -> Any:
        return result.get(timeout=self._session.timeout_s * 2)

    def _over(self, generation: int) -> bool:
        return self._stopping.is_set() or self._generation != generation

    def _contend(self) -> None:
        """One round: queue a node, wait for our turn, lead, and always take the node out again."""
        generation = self._generation
        self._round += 1
        prefix = f"{self._tag}-{self._round}"
        try:
            created = self._session.client.create_async(
                f"{ELECTION_PATH}/{prefix}{_MARK}", self._name.encode(), ephemeral=True, sequence=True, makepath=True
            )
            path = self._call(created)
        except BaseException:
            self._leftovers = True  # the create may have happened without its answer reaching us
            raise
        node = str(path).rpartition("/")[2]
        try:
            self._wait_turn(node, generation)
            self._lead(generation)
        finally:
            self._leave(node, generation)

    def _wait_turn(self, node: str, generation: int) -> None:
        """Return once our node is the first in the queue; raise _RoundOver once it is gone."""
        announced = False
        while True:
            self._wake.clear()
            if self._over(generation):
                raise _RoundOver()
            if not self._session.connected:  # suspended: the session (and our node) may still be alive
                self._wake.wait(RECHECK_S)
                continue
            try:
                children = self._call(self._session.client.get_children_async(ELECTION_PATH))
            except _CONNECTION_TROUBLE:  # the next look tells whether the session survived it
                self._wake.wait(RECHECK_S)
                continue
            if node not in children:
                raise _RoundOver()
            queue = sorted((c for c in children if _MARK in c), key=_sequence)
            ahead = queue[: queue.index(node)]
            if any(c.startswith(self._tag) for c in ahead):
                self._remove_leftovers(keep=node)  # our own older nodes must not hold the queue up
                if self._leftovers:
                    self._wake.wait(RECHECK_S)
                continue
            if not ahead:
                return
            if not announced:
                self._on_role("follower")
                announced = True
            try:
                watched = self._call(self._session.client.exists_async(f"{ELECTION_PATH}/{ahead[-1]}", self._wake_up))
            except _CONNECTION_TROUBLE:
                watched = True
            if watched:
                self._wake.wait(RECHECK_S)

    def _lead(self, generation: int) -> None:
        self._step_down.clear()
        if self._over(generation):  # lost between the queue read and here: the node is gone already
            raise _RoundOver()
        epoch = self._take_over()
        self._publish(epoch)
        self._on_role("leader")
        log.info("%s leads epoch %d", self._name, epoch)
        self._step_down.wait()
        log.info("%s steps down from epoch %d", self._name, epoch)
        self._on_role("candidate")
        self._unpublish(epoch)

    def _leave(self, node: str, generation: int) -> None:
        if self._generation != generation:
            return  # the node went with its session
        try:
            self._call(self._session.client.delete_async(f"{ELECTION_PATH}/{node}"))
        except NoNodeError:
            pass
        except Exception as exc:  # suspended, or timed out: the node lives as long as the session
            log.info("could not leave the election queue (%s); removing it later", type(exc).__name__)
            self._leftovers = True

    def _remove_leftovers(self, keep: str | None) -> None:
        """Delete every queue node of this process but `keep`; a leftover ahead would block everyone."""
        try:
            children = self._call(self._session.client.get_children_async(ELECTION_PATH))
            for child in children:
                if child.startswith(self._tag) and child != keep:
                    with contextlib.suppress(NoNodeError):
                        self._call(self._session.client.delete_async(f"{ELECTION_PATH}/{child}"))
                    log.info("removed leftover election node %s", child)
            self._leftovers = False
        except NoNodeError:
            self._leftovers = False
        except Exception as exc:
            log.info("could not remove leftover election nodes yet (%s)", type(exc).__name__)

    def _publish(self, epoch: int) -> None:
        zk = self._session.client
        data = json.dumps({"name": self._name, "url": self._url, "epoch": epoch}).encode()
        try:
            self._call(zk.create_async(LEADER_PATH, data, ephemeral=True, makepath=True))
        except NodeExistsError:
            # We head the election queue, so the node is a leftover of a leader that lost its place.
            _, stat = self._call(zk.get_async(LEADER_PATH))
            self._call(zk.delete_async(LEADER_PATH, version=stat.version))
            self._call(zk.create_async(LEADER_PATH, data, ephemeral=True, makepath=True))

    def _unpublish(self, epoch: int) -> None:
        zk = self._session.client
        try:
            data, stat = self._call(zk.get_async(LEADER_PATH))
            leader = parse_leader(data)
            if leader is not None and leader["name"] == self._name and leader["epoch"] == epoch:
                self._call(zk.delete_async(LEADER_PATH, version=stat.version))
        except NoNodeError:
            pass
        except (KazooException, OSError) as exc:
            log.info("could not remove the leader znode (%r); it goes with the session", exc)
        except Exception:  # kazoo's handler timeout is not a KazooException
            log.info("leader znode removal timed out; it goes with the session")
