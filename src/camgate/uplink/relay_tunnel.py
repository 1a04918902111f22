"""One device's live tunnel on the relay, the hello that opens it, and the lock that
lets one tunnel per device in at a time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import AsyncIterator

from aiohttp import WSMsgType, web

from .protocol import Hello, ProtocolError, parse_hello
from .session import TunnelSession

HELLO_TIMEOUT = 10.0


class RelayTunnel:
    """One device's live tunnel: its WebSocket session and its public listeners."""

    def __init__(self, camid: int, hello: Hello, session: TunnelSession) -> None:
        self.camid = camid
        self.hello = hello
        self.session = session
        self.proxy_id = uuid.uuid4().hex
        self.listeners: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        # Done once the tunnel is down (a future: an Event's waiter queue costs 0.8 KiB).
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ended(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def close_listeners(self) -> None:
        for server in self.listeners.values():
            server.close()

    async def stop(self, timeout: float = 5.0) -> None:
        """Close listeners at once (so a successor can bind the same ports), then the rest."""
        self.close_listeners()
        self.session.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.finished), timeout)


async def receive_hello(ws: web.WebSocketResponse) -> Hello | None:
    """The first TEXT message, parsed; None when the client went away first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HELLO_TIMEOUT
    while True:
        msg = await asyncio.wait_for(ws.receive(), max(0.0, deadline - loop.time()))
        if msg.type is WSMsgType.TEXT:
            return parse_hello(msg.data)
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is WSMsgType.BINARY:
            raise ProtocolError("a binary frame came before the hello")
        elif msg.type is not WSMsgType.PONG:
            return None


class DeviceLocks:
    """A lock per device, kept only while a tunnel holds or waits for it: a relay meets
    every camid that ever connected, and a lock kept for each would never be freed."""

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, camid: int) -> AsyncIterator[None]:
        held = self._held.get(camid)
        if held is None:
            held = self._held[camid] = _Held()
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:  # also when cancelled while waiting
            held.users -= 1
            if not held.users:
                del self._held[camid]


class _Held:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0  # tunnels holding or waiting for the lock
