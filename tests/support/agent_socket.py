"""The agent's control socket served from a thread of the test process, with the
handlers a test gives (the real socket and protocol; the handlers are the agent's own
objects, or stand-ins where a test says so)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Callable

from camgate.agent import control
from camgate.agent.control_server import serve_control


@contextmanager
def control_socket(make_handlers: Callable[[], dict]):
    """Serve ``make_handlers()`` (called in the socket's own event loop) until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            server = await serve_control(control.socket_path(), make_handlers())
        except BaseException as error:  # let the test see why, instead of a timeout
            failure.append(error)
            raise
        finally:
            ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    if not ready.wait(10) or failure:
        raise RuntimeError(f"the control socket did not start: {failure}")
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
        control.socket_path().unlink(missing_ok=True)
