"""Waiting for an event or a timeout, whichever comes first, in the agent's loops."""

from __future__ import annotations

import asyncio
import contextlib


async def event_or_timeout(event: asyncio.Event, timeout: float) -> None:
    """Return once ``event`` is set or ``timeout`` seconds have passed.

    Not asyncio.wait_for: in Python 3.11 it swallows a cancellation that lands as the
    event is set, so a loop waiting this way could miss the agent's stop and keep it
    from ever exiting.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
