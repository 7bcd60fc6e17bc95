"""Leader election of matching engines: kazoo's Election recipe on its own thread, plus the leader znode."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError
from kazoo.recipe.election import Election

from tradingstack.service import ZooKeeperSession

log = logging.getLogger(__name__)

ELECTION_PATH = "/trading/matchers/election"
LEADER_PATH = "/trading/matchers/leader"


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


class LeadershipRefused(Exception):
    """`take_over` could not prepare this matcher to lead (e.g. Redis unreachable); contend again later."""


class ElectionThread:
    """Contends for leadership on a dedicated thread, so kazoo never blocks the event loop.

    `take_over()` runs once elected and returns the new epoch (raising refuses leadership, which
    is released and contended for again later); `on_role(role)` is told "follower" while queued,
    "leader" once the leader znode is published and "candidate" otherwise; `can_contend()` gates
    joining the queue (a matcher that cannot reach Redis should not lead).
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
        self._election: Election | None = None
        self._thread = threading.Thread(target=self._run, name="election", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def step_down(self) -> None:
        """Give up leadership (fenced, session lost, Redis gone); safe from any thread."""
        self._step_down.set()

    def stop(self) -> None:
        """Leave the election, unpublishing the leader znode if ours. Blocking: call from a thread."""
        self._stopping.set()
        self._step_down.set()
        if self._election is not None:
            self._election.cancel()
        self._thread.join(timeout=self._session.timeout_s + 1.0)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not (self._session.connected and self._can_contend()):
                self._stopping.wait(0.1)
                continue
            self._election = self._session.client.Election(ELECTION_PATH, self._name)
            self._on_role("follower")
            try:
                self._election.run(self._lead)
            except (LeadershipRefused, KazooException) as exc:
                log.warning("election round ended: %s: %s; contending again in 1 s", type(exc).__name__, exc)
                self._stopping.wait(1.0)
            except Exception:
                log.exception("election round failed; contending again in 1 s")
                self._stopping.wait(1.0)
            self._on_role("candidate")

    def _lead(self) -> None:
        self._step_down.clear()
        if self._stopping.is_set():
            return
        epoch = self._take_over()
        self._publish(epoch)
        self._on_role("leader")
        log.info("%s leads epoch %d", self._name, epoch)
        self._step_down.wait()
        log.info("%s steps down from epoch %d", self._name, epoch)
        self._on_role("candidate")
        self._unpublish(epoch)

    def _call(self, result: Any) -> Any:
        return result.get(timeout=self._session.timeout_s * 2)

    def _publish(self, epoch: int) -> None:
        zk = self._session.client
        data = json.dumps({"name": self._name, "url": self._url, "epoch": epoch}).encode()
        try:
            self._call(zk.create_async(LEADER_PATH, data, ephemeral=True, makepath=True))
        except NodeExistsError:
            # We hold the election lock, so the node is a leftover of a leader that lost it.
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
