"""The node keeper's heartbeat stops when the relay stops, whatever the store does."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from camgate.uplink.relay_node import NodeKeeper


class StoreSwallowingTheCancel:
    """A store call that, like asyncpg's ``wait_for`` on Python < 3.12, returns a result
    instead of raising when the cancel lands as its operation completes."""

    def __init__(self) -> None:
        self.beats = 0
        self.swallowed = False
        self.beating = asyncio.Event()

    def on_device_changed(self, _callback) -> None:
        pass

    async def heartbeat(self, _local):
        self.beats += 1
        self.beating.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed = True  # once: a race, not a habit
            return []
        return []


async def test_stop_ends_the_heartbeat_even_when_the_store_swallows_the_cancel():
    store = StoreSwallowingTheCancel()
    keeper = NodeKeeper(SimpleNamespace(store=store, tunnels={}), interval=0.05)
    keeper.start()
    await asyncio.wait_for(store.beating.wait(), 5)
    stopping = asyncio.ensure_future(keeper.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done  # stop() waited on the next heartbeat's 30 s call before
    assert store.swallowed and store.beats == 1
