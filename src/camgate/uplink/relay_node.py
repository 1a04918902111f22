"""A relay node's part in a fleet of nodes sharing one store (PostgreSQL).

It keeps the node's heartbeat, and drops the tunnels of devices that are no longer this
node's: taken over by another node (it is told at once by the store, and checks on every
heartbeat in case it was not, e.g. while the database was down or the node was paused),
re-issued a token or deleted. Another node having taken a device over, its viewers
reconnect to that node's ports, which ``GET /api/device/<camid>`` on any node answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .store.base import StoreUnavailable

if TYPE_CHECKING:
    from .relay import RelayServer

log = logging.getLogger(__name__)


class NodeKeeper:
    def __init__(self, server: "RelayServer", interval: float) -> None:
        self.server = server
        self.interval = interval
        # Tunnels claiming their device in the store, not yet in server.tunnels: they
        # count as this node's, or a heartbeat would forget their fresh holding.
        self.claiming: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._checks: set[asyncio.Task[None]] = set()
        server.store.on_device_changed(self._device_changed)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        # Cancelling alone is not enough: asyncpg (on Python < 3.12) returns a result
        # instead of raising CancelledError when the cancel lands as its operation
        # completes, and the heartbeat would beat on with stop() awaiting it for ever.
        # The flag ends the loop at its next turn then.
        self._stopping = True
        tasks = [task for task in (self._task, *self._checks) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # unlike awaiting each, never swallows stop()'s own cancel
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                # Cancelled in the middle of a query, asyncpg may fail its own cleanup
                # ("another operation is in progress"): the node is stopping anyway.
                log.debug("node keeper: %s while stopping", type(task.exception()).__name__)
        self._task = None

    def local(self) -> dict[int, str]:
        return {camid: tunnel.proxy_id for camid, tunnel in self.server.tunnels.items()} | self.claiming

    async def _beat(self) -> None:
        while not self._stopping:
            local = self.local()
            with contextlib.suppress(StoreUnavailable):  # the link logs when it goes down and up
                await self._drop(await self.server.store.heartbeat(local), local)
            await asyncio.sleep(self.interval)

    def _device_changed(self, camid: int) -> None:
        tunnel = self.server.tunnels.get(camid)
        if tunnel is None:
            return
        task = asyncio.get_running_loop().create_task(self._check({camid: tunnel.proxy_id}))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self, local: dict[int, str]) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._drop(await self.server.store.moved_away(local), local)

    async def _drop(self, camids: list[int], local: dict[int, str]) -> None:
        for camid in camids:
            tunnel = self.server.tunnels.get(camid)
            if tunnel is not None and tunnel.proxy_id == local.get(camid):
                log.info("relay camid %d: held by another node now (or revoked); dropping its tunnel here", camid)
                self.server.metrics.events.tunnels_moved += 1
                await tunnel.stop()
