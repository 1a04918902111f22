"""The agent's loops stop when cancelled, even as the event they wait for is set."""

from __future__ import annotations

import asyncio

import pytest

from camgate.agent.plan import UplinkSettings
from camgate.agent.reconciler import Agent
from camgate.agent.waiting import event_or_timeout


async def cancelled_as_woken(event: asyncio.Event, waiter) -> None:
    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)  # it waits
    event.set()  # news arrive...
    task.cancel()  # ...as the agent stops
    with pytest.raises(asyncio.CancelledError):  # not TimeoutError: it did stop
        async with asyncio.timeout(5):
            await task


async def test_event_or_timeout_returns_on_the_event_or_the_timeout_and_passes_cancellation_on():
    event = asyncio.Event()
    await event_or_timeout(event, 0.01)  # the timeout
    event.set()
    await event_or_timeout(event, 3600)  # the event

    async def forever():
        while True:
            await event_or_timeout(event, 3600)
            event.clear()

    event.clear()
    await cancelled_as_woken(event, forever)


async def test_the_agents_status_loop_stops_when_cancelled_as_a_status_changes():
    agent = Agent(UplinkSettings(), "0b5d1f8e-7c1e-4d7e-9a55-3f0d3b8f2a10")
    await cancelled_as_woken(agent._status_changed, agent._report_forever)
